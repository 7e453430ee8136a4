"""Model registry: public name -> builder function.

Builders are registered with `@register_model` in the file that defines the architecture; the name is the
function's name with '_' turned into '-', or an explicit one. Registering a name twice is an error. Every module
of `vidseg.models` is imported on first use, so a new model is its module and its decorated builders: nothing
lists it elsewhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from vidseg.errors import ConfigError
from vidseg.models.base import VideoSegModel

__all__ = ["register_model", "build", "build_architecture", "list_models", "model_builder"]

_REGISTRY: dict[str, Callable[..., VideoSegModel]] = {}
_loaded = False


def register_model(name: str | Callable | None = None):
    """Decorator: `@register_model` or `@register_model("arseg-psp18-camvid")`."""

    def deco(fn: Callable[..., VideoSegModel]) -> Callable[..., VideoSegModel]:
        key = name if isinstance(name, str) else fn.__name__.replace("_", "-")
        if key in _REGISTRY:
            raise ValueError(f"model name {key!r} is registered twice ({_REGISTRY[key].__module__}, {fn.__module__})")
        _REGISTRY[key] = fn
        return fn

    if callable(name):
        return deco(name)
    return deco


def _load_all() -> None:
    """Import every module of this package (their `@register_model` builders register themselves); on first use
    only, so `import vidseg` stays light."""
    global _loaded
    if _loaded:
        return
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{__package__}.{module.name}")
    _loaded = True


def list_models() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def model_builder(name: str) -> Callable[..., VideoSegModel]:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"unknown model {name!r}.{hint} `vidseg-run --list-models` lists the {len(_REGISTRY)} models."
        ) from None


def build(name: str, **kwargs) -> VideoSegModel:
    """Build a registered model with random (or built-in, for the demo) weights, in eval mode."""
    model = model_builder(name)(**kwargs)
    return model.eval()


def build_architecture(name: str) -> VideoSegModel:
    """The model's modules without any packaged weights (e.g. on the meta device, to count shapes or MACs):
    builders that ship weights (the demo) take pretrained=False."""
    import inspect

    builder = model_builder(name)
    kwargs = {"pretrained": False} if "pretrained" in inspect.signature(builder).parameters else {}
    return builder(**kwargs).eval()

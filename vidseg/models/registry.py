"""Model registry: public name -> builder function.

Builders are registered with `@register_model` in the file that defines the architecture; the name is the
function's name with '_' turned into '-', or an explicit one. Registering a name twice is an error.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from vidseg.errors import ConfigError
from vidseg.models.base import VideoSegModel

__all__ = ["register_model", "build", "build_architecture", "list_models", "model_builder"]

# Modules whose import registers builders; loaded on first use so `import vidseg` stays light.
_MODEL_MODULES = (
    "vidseg.models.pspnet",
    "vidseg.models.bisenet",
    "vidseg.models.swiftnet",
    "vidseg.models.sanet",
    "vidseg.models.arseg",
    "vidseg.models.flowwarp",
    "vidseg.models.swnet_seq",
    "vidseg.models.demo",
)

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
    global _loaded
    if _loaded:
        return
    for mod in _MODEL_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:  # a real import error inside the module: surface it
                raise
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

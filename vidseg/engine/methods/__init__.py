"""Methods: what keyframes and non-keyframes run, per-stream state, frame preparation (see `base.Method`).

| method    | keyframe                                    | non-keyframe                                              |
|-----------|---------------------------------------------|-----------------------------------------------------------|
| per-frame | key(image)                                  | (every frame is a key)                                    |
| arseg     | key(image); keep key_features (, key_image) | nonkey(image, key_features, motion to key)                |
|           |                                             | without codec motion: flow(image, key_image) -> motion    |
| flowwarp  | key(image); keep prev_logits, prev_image    | flow(image, ref_image); refine(image, prev_logits, flow)  |

A method is its module here plus one line in `vidseg.config.METHODS` (name -> "module:Class"); everything else
(engine, CLI, export, eval, bench) asks the method object what it needs.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from vidseg.config import METHODS, EngineConfig
from vidseg.engine.methods.base import Method, MethodState, Note
from vidseg.errors import ConfigError

__all__ = ["Method", "MethodState", "method_class", "make_method", "method_for", "default_method", "baseline_method",
           "Note"]


def method_class(name: str) -> type[Method]:
    """The Method class registered under `name` (imported on first use)."""
    try:
        module, cls = METHODS[name].split(":")
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
    return getattr(importlib.import_module(module), cls)


def make_method(name: str, stages: Sequence[str], **options: Any) -> Method:
    """A method by name for a model offering `stages` (options go to the method's constructor)."""
    return method_class(name)(stages, **options)


def method_for(model: Any, config: EngineConfig, *, note: Note | None = None) -> Method:
    """The config's method (None: the model's default) for this model (anything with `spec`, `methods` and
    `stage_names`), refusing a method the model does not support."""
    name = config.method or default_method(model.methods)
    if name not in model.methods:
        raise ConfigError(
            f"model {model.spec.name!r} does not support method {name!r}; it supports {', '.join(model.methods)}"
        )
    return method_class(name).for_model(model, config, note=note)


def baseline_method() -> str:
    """The method that runs the full network on every frame: what every keyframe method's speed-up and accuracy
    are measured against."""
    return next(m for m in METHODS if not method_class(m).uses_keyframes)


def default_method(methods: Sequence[str]) -> str:
    """A model's default method among those it supports: the first that uses keyframes (the point of vidseg),
    else the first."""
    return next((m for m in methods if method_class(m).uses_keyframes), methods[0])

"""vidseg: real-time video semantic segmentation with keyframe-sparse compute.

Public API (imported lazily, so `import vidseg` is cheap):
    Engine, EngineConfig, FrameResult     run a model over a video (vidseg.engine)
    open_source, open_video, Frame        frames (and codec motion vectors) from any input (vidseg.video)
    SourceOptions                         how streams, cameras and image sequences are opened (time-outs, ...)
    build_model, list_models              the model zoo (vidseg.models)
    load_checkpoint                       load a seed's or vidseg's checkpoint into a model
"""

from __future__ import annotations

import importlib

from vidseg.config import EngineConfig
from vidseg.errors import (
    BackendUnavailable,
    CheckpointError,
    ConfigError,
    InputError,
    ShapeError,
    VidsegError,
)

__version__ = "0.1.0"

__all__ = [
    "Engine",
    "EngineConfig",
    "FrameResult",
    "open_video",
    "open_source",
    "SourceOptions",
    "Frame",
    "build_model",
    "list_models",
    "load_checkpoint",
    "VidsegError",
    "InputError",
    "CheckpointError",
    "ConfigError",
    "ShapeError",
    "BackendUnavailable",
]

_LAZY = {
    "Engine": ("vidseg.engine.engine", "Engine"),
    "FrameResult": ("vidseg.engine.engine", "FrameResult"),
    "open_video": ("vidseg.video.decode", "open_video"),
    "open_source": ("vidseg.video.source", "open_source"),
    "SourceOptions": ("vidseg.video.source", "SourceOptions"),
    "Frame": ("vidseg.video.frame", "Frame"),
    "build_model": ("vidseg.models.registry", "build"),
    "list_models": ("vidseg.models.registry", "list_models"),
    "load_checkpoint": ("vidseg.models.checkpoints", "load_checkpoint"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'vidseg' has no attribute {name!r}")

"""PyTorch definitions of the seeds' networks, as stages (see `vidseg.models.base`)."""

from vidseg.models.base import ModelSpec, Stage, VideoSegModel, logits_to_labels
from vidseg.models.registry import build, list_models, register_model

__all__ = [
    "ModelSpec",
    "Stage",
    "VideoSegModel",
    "build",
    "list_models",
    "logits_to_labels",
    "register_model",
]

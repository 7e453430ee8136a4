"""The key stage of an image segmentation network, and the per-frame model built from it alone.

A network used here implements a small protocol (the seeds' nets in `pspnet.py` and `bisenet.py` do):
    forward_key(x) -> (logits, features)    x: normalised float [N,3,H,W] at the frame's resolution
    feature_size(height, width) -> (h, w)   of `features` for a frame of height x width
    feature_channels: int
"""

from __future__ import annotations

from torch import Tensor, nn

from vidseg.models.base import ModelSpec, Preprocess, Stage, VideoSegModel

__all__ = ["KeyStage", "PerFrameModel"]


class KeyStage(Stage):
    """image (uint8 RGB) -> logits, features: normalisation plus one network's full-resolution pass."""

    input_names = ("image",)
    output_names = ("logits", "features")

    def __init__(self, preprocess: Preprocess, net: nn.Module) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.net = net

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        return self.net.forward_key(self.preprocess(image))


class PerFrameModel(VideoSegModel):
    """One network run on every frame (method "per-frame"); its checkpoint is the network's own file.

    Stages share the model's modules and take its train/eval mode.
    """

    def __init__(self, spec: ModelSpec, net: nn.Module) -> None:
        super().__init__()
        self.spec = spec
        self.net = net
        self.preprocess = Preprocess(spec)

    def stages(self, *, lr_scale: float | None = None) -> dict[str, Stage]:
        return {"key": KeyStage(self.preprocess, self.net).train(self.training)}

    def checkpoint_parts(self) -> dict[str, nn.Module]:
        return {"model": self.net}

    def feature_size(self, height: int, width: int) -> tuple[int, int]:
        return self.net.feature_size(height, width)

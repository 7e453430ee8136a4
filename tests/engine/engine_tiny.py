"""Helpers for the engine tests: a tiny model with all four stages (key, nonkey, flow, refine), small clips.

The stages follow `vidseg.models.base`: uint8 images in, normalisation inside; features at stride 4; flow and
logits at stride 4 too. Weights are random but seeded, and large enough that labels vary across the frame.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidseg.kernels import reference
from vidseg.models.base import ModelSpec, Preprocess, Stage, VideoSegModel

TINY_SPEC = ModelSpec(
    name="tiny",
    num_classes=5,
    mean=(0.5, 0.5, 0.5),
    std=(0.25, 0.25, 0.25),
    input_size=(64, 96),
    feature_channels=8,
    feature_stride=4,
    logits_stride=4,
    logits_align_corners=False,
    methods=("per-frame", "arseg", "flowwarp"),
)


class _Encoder(nn.Module):
    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))))


class KeyStage(Stage):
    input_names = ("image",)
    output_names = ("logits", "features")

    def __init__(self, pre: Preprocess, enc: _Encoder, head: nn.Conv2d) -> None:
        super().__init__()
        self.pre, self.enc, self.head = pre, enc, head

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        features = self.enc(self.pre(image))
        return self.head(features), features


class NonKeyStage(Stage):
    input_names = ("image", "key_features", "motion")
    output_names = ("logits", "features")

    def __init__(self, pre: Preprocess, enc: _Encoder, fuse: nn.Conv2d, head: nn.Conv2d, lr_scale: float) -> None:
        super().__init__()
        self.pre, self.enc, self.fuse, self.head, self.lr_scale = pre, enc, fuse, head, lr_scale

    def forward(self, image: Tensor, key_features: Tensor, motion: Tensor) -> tuple[Tensor, Tensor]:
        x = self.pre(image)
        size = (int(x.shape[-2] * self.lr_scale), int(x.shape[-1] * self.lr_scale))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        lr = F.interpolate(self.enc(x), size=key_features.shape[-2:], mode="bilinear", align_corners=True)
        warped = reference.warp(key_features, motion, "exact")
        # Mostly the warped key feature, as a trained non-key path: its labels follow the key's (low drift, so
        # the engine's drift guard keeps the interval), and the LR branch still changes them.
        fused = warped + 0.1 * self.fuse(lr)
        return self.head(fused), fused

    def input_shapes(self, height: int, width: int, batch: int = 1):
        grid = (-(-height // 4), -(-width // 4))
        return {
            "image": ((batch, 3, height, width), torch.uint8),
            "key_features": ((batch, 8, *grid), torch.float32),
            "motion": ((batch, 2, *grid), torch.float32),
        }


class FlowStage(Stage):
    input_names = ("image", "ref_image")
    output_names = ("flow",)

    def __init__(self, pre: Preprocess) -> None:
        super().__init__()
        self.pre = pre
        self.conv = nn.Conv2d(6, 2, 3, padding=1)

    def forward(self, image: Tensor, ref_image: Tensor) -> tuple[Tensor]:
        x = torch.cat([self.pre(image), self.pre(ref_image)], 1)
        return (2.0 * torch.tanh(self.conv(F.avg_pool2d(x, 4))),)


class RefineStage(Stage):
    input_names = ("image", "prev_logits", "flow")
    output_names = ("logits",)

    def __init__(self, pre: Preprocess, classes: int) -> None:
        super().__init__()
        self.pre = pre
        self.conv = nn.Conv2d(3 + classes, classes, 3, padding=1)

    def forward(self, image: Tensor, prev_logits: Tensor, flow: Tensor) -> tuple[Tensor]:
        warped = reference.warp(prev_logits, flow, "exact")
        x = torch.cat([F.avg_pool2d(self.pre(image), 4), warped], 1)
        return (warped + 0.5 * self.conv(x),)

    def input_shapes(self, height: int, width: int, batch: int = 1):
        grid = (height // 4, width // 4)
        return {
            "image": ((batch, 3, height, width), torch.uint8),
            "prev_logits": ((batch, self.conv.out_channels, *grid), torch.float32),
            "flow": ((batch, 2, *grid), torch.float32),
        }


class TinyModel(VideoSegModel):
    def __init__(self, *, with_flow: bool = True) -> None:
        super().__init__()
        self.spec = TINY_SPEC
        self.pre = Preprocess(TINY_SPEC)
        self.hr = _Encoder()
        self.lr = _Encoder()
        self.head = nn.Conv2d(8, TINY_SPEC.num_classes, 1)
        self.fuse = nn.Conv2d(8, 8, 1)
        self.with_flow = with_flow
        self.flow = FlowStage(self.pre)
        self.refine = RefineStage(self.pre, TINY_SPEC.num_classes)
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        self.eval()

    def stages(self, *, lr_scale: float | None = None) -> dict[str, Stage]:
        scale = self.spec.lr_scale if lr_scale is None else lr_scale
        out: dict[str, Stage] = {
            "key": KeyStage(self.pre, self.hr, self.head),
            "nonkey": NonKeyStage(self.pre, self.lr, self.fuse, self.head, scale),
        }
        if self.with_flow:
            out["flow"] = self.flow
            out["refine"] = self.refine
        return out


def make_frames(n: int, height: int = 64, width: int = 96, seed: int = 0, shift: int = 2) -> np.ndarray:
    """A textured scene translating right by `shift` px per frame: T x H x W x 3 uint8."""
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 256, size=(height // 8 + 2, (width + n * shift) // 8 + 2, 3)).astype(np.uint8)
    big = big.repeat(8, 0).repeat(8, 1)
    return np.stack([big[:height, t * shift : t * shift + width] for t in range(n)])


def encode_clip(path: Path, frames: np.ndarray, *, codec: str = "libx264", gop: int = 6, fps: int = 25) -> Path:
    """Encode frames with PyAV (no B-frames, one reference: motion points at the previous frame)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"g": str(gop), "bf": "0", "refs": "1", "keyint_min": str(gop), "sc_threshold": "0",
                              "crf": "18"}
        else:
            stream.options = {"g": str(gop), "bf": "0"}
            if codec == "libx265":
                stream.options["x265-params"] = f"keyint={gop}:min-keyint={gop}:bframes=0:log-level=error"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path

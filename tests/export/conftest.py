"""A tiny model that honours the Stage contract (all four stages) and uses the vidseg custom ops.

It stands in for the zoo in export tests: small convolutions, so an ONNX export takes well under a second, yet
every path a real model takes is there: uint8 input normalised inside the stage, a downscaled LR branch, the
`vidseg::warp` (both grid conventions) and `vidseg::creff` ops, and logits at a stride.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidseg.kernels import ops
from vidseg.models.base import ModelSpec, Preprocess, Stage, VideoSegModel

NUM_CLASSES = 5
CHANNELS = 8
STRIDE = 4

SPEC = ModelSpec(
    name="tiny",
    num_classes=NUM_CLASSES,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    input_size=(32, 48),
    feature_channels=CHANNELS,
    feature_stride=STRIDE,
    logits_stride=STRIDE,
    methods=("per-frame", "arseg", "flowwarp"),
)


def _encoder(in_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, CHANNELS, 3, stride=2, padding=1),
        nn.BatchNorm2d(CHANNELS),
        nn.ReLU(),
        nn.Conv2d(CHANNELS, CHANNELS, 3, stride=2, padding=1),
        nn.ReLU(),
    )


class _Key(Stage):
    input_names = ("image",)
    output_names = ("logits", "features")

    def __init__(self, m: TinyModel) -> None:
        super().__init__()
        self.pre, self.enc, self.head = m.pre, m.enc, m.head

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        f = self.enc(self.pre(image))
        return self.head(f), f


class _NonKey(Stage):
    input_names = ("image", "key_features", "motion")
    output_names = ("logits", "features")

    def __init__(self, m: TinyModel) -> None:
        super().__init__()
        self.pre, self.lr_enc, self.q, self.k, self.head = m.pre, m.lr_enc, m.q, m.k, m.head
        self.lr_scale = m.lr_scale

    def input_shapes(self, height, width, batch=1):
        h, w = height // STRIDE, width // STRIDE
        return {
            "image": ((batch, 3, height, width), torch.uint8),
            "key_features": ((batch, CHANNELS, h, w), torch.float32),
            "motion": ((batch, 2, h, w), torch.float32),
        }

    def forward(self, image: Tensor, key_features: Tensor, motion: Tensor) -> tuple[Tensor, Tensor]:
        x = self.pre(image)
        x = F.interpolate(x, scale_factor=self.lr_scale, mode="bilinear", align_corners=False)
        lr = self.lr_enc(x)
        lr = F.interpolate(lr, size=key_features.shape[-2:], mode="bilinear", align_corners=False)
        warped = ops.warp(key_features, motion, "arseg")
        fused = ops.creff(self.q(lr), self.k(warped), warped, lr, 3)
        return self.head(fused), fused


class _Flow(Stage):
    input_names = ("image", "ref_image")
    output_names = ("flow",)

    def __init__(self, m: TinyModel) -> None:
        super().__init__()
        self.pre, self.net = m.pre, m.flow_net

    def forward(self, image: Tensor, ref_image: Tensor) -> tuple[Tensor]:
        x = torch.cat((self.pre(image), self.pre(ref_image)), dim=1)
        return (torch.tanh(self.net(x)) * 2.0,)


class _Refine(Stage):
    input_names = ("image", "prev_logits", "flow")
    output_names = ("logits",)

    def __init__(self, m: TinyModel) -> None:
        super().__init__()
        self.pre, self.enc, self.mix = m.pre, m.enc, m.mix

    def input_shapes(self, height, width, batch=1):
        h, w = height // STRIDE, width // STRIDE
        return {
            "image": ((batch, 3, height, width), torch.uint8),
            "prev_logits": ((batch, NUM_CLASSES, h, w), torch.float32),
            "flow": ((batch, 2, h, w), torch.float32),
        }

    def forward(self, image: Tensor, prev_logits: Tensor, flow: Tensor) -> tuple[Tensor]:
        warped = ops.warp(prev_logits, flow, "gsvnet")
        f = self.enc(self.pre(image))
        return (self.mix(torch.cat((warped, f), dim=1)),)


class TinyModel(VideoSegModel):
    spec = SPEC

    def __init__(self) -> None:
        super().__init__()
        self.pre = Preprocess(SPEC)
        self.enc = _encoder(3)
        self.lr_enc = nn.Sequential(nn.Conv2d(3, CHANNELS, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Conv2d(CHANNELS, NUM_CLASSES, 1)
        self.q = nn.Conv2d(CHANNELS, CHANNELS, 1)
        self.k = nn.Conv2d(CHANNELS, CHANNELS, 1)
        self.flow_net = nn.Sequential(_encoder(6), nn.Conv2d(CHANNELS, 2, 3, padding=1))
        self.mix = nn.Conv2d(NUM_CLASSES + CHANNELS, NUM_CLASSES, 3, padding=1)
        self.lr_scale = 0.5
        # Non-trivial BatchNorm statistics, so that folding them is visible in the graph.
        bn = self.enc[1]
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)

    def stages(self, *, lr_scale: float | None = None) -> dict[str, Stage]:
        if lr_scale is not None:
            self.lr_scale = lr_scale
        return {"key": _Key(self), "nonkey": _NonKey(self), "flow": _Flow(self), "refine": _Refine(self)}


@pytest.fixture(scope="session")
def tiny_model_class() -> type[TinyModel]:
    """The class itself, for module-scoped fixtures that build their own instance."""
    return TinyModel


@pytest.fixture
def tiny_model() -> TinyModel:
    torch.manual_seed(0)
    return TinyModel().eval()


@pytest.fixture
def tiny_stages(tiny_model) -> dict[str, Stage]:
    return {name: stage.eval() for name, stage in tiny_model.stages().items()}

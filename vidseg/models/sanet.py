"""SANet: scale-aware real-time segmentation network (kaigelee/SANet, models/sanet.py and models/sanet_tiny.py).

Written from reference/sanet.md. The shipped code does not run (missing backbone file, an `sff1f` typo and
`sff1 = SFF(512, 256, 128)` fed a 128-channel map); this is the *consistent* reading the digest calls PATCHED:
`sff1 = SFF(128, 256, 128)`, every other module as shipped, and the deep-stem ResNet-18 of the only backbone file
present (`resnetv1b.py`) standing in for the missing `resnetv1c`. Module names mirror the seed's, so a checkpoint of
that network loads (219 state_dict entries; 13,030,292 parameters with the auxiliary head `conv_out16`, which the
checkpoint carries and inference never runs; 12,566,548 without).

- Backbone: deep stem [3x3/2 3->64, BN, ReLU, 3x3 64->64, BN, ReLU, 3x3 64->128] + bn1(128), ReLU, maxpool;
  layer1..4 (layer1 with a 1x1 shortcut 128->64); returns layer2 (128 @ 1/8), layer3 (256 @ 1/16),
  layer4 (512 @ 1/32).
- SCE on layer4: x = ConvBNReLU1x1(512->128); for grids (6,3,2,1): adaptive average pool to (g, max(1, round(ar*g)))
  with ar = W/H of layer4, ConvBNReLU1x1, nearest upsampling back; a = sigmoid(Conv1x1(128->4)(ConvBNReLU1x1(
  512->128)(cat pools))) + 1; out = x + sum_i pool_i * a_i.
- SFF(low, high, out): L = ConvBNReLU3x3(low) upsampled bilinear (align_corners=True) to high's size;
  Hh = ConvBNReLU3x3(high); GeM(p=3) channel descriptors of L and Hh interleaved [L0, H0, L1, H1, ...], two
  Conv1d(k=5) in series, de-interleaved and sigmoid -> channel weights; out = wL * L + wH * Hh.
  sff1 = SFF(128, 256, 128) (SCE output with layer3), sff2 = SFF(128, 128, 128) (with layer2): 128 @ 1/8.
- Head `conv_out32`: ConvBNReLU3x3(128->128) -> Conv1x1(128 -> 19*64, bias) -> PixelShuffle(8) (sanet.py), or
  Conv1x1(128->19) -> bilinear x8 align_corners=True (sanet_tiny.py, model "sanet-tiny").
- Inference returns full-resolution logits (the seed returns their argmax); input H, W divisible by 8 (by 32 for
  the SCE grid sizes quoted in the digest).
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidseg.models.backbones import PLAIN, BasicBlock, ResNet18, stride2_size
from vidseg.models.base import ModelSpec
from vidseg.models.perframe import PerFrameModel
from vidseg.models.registry import register_model

__all__ = [
    "DeepStemResNet18",
    "SCE",
    "SFF",
    "SANetOutput",
    "SANet",
    "sanet",
    "sanet_tiny",
    "SANET_CITYSCAPES",
    "SANET_TINY_CITYSCAPES",
]


class DeepStemResNet18(ResNet18):
    """ResNet-18 with the "v1b/v1c" deep stem (SANet's `resnet.*`); forward -> (layer2, layer3, layer4)."""

    def __init__(self) -> None:
        super().__init__(PLAIN)
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 128, 3, padding=1, bias=False),
        )
        self.bn1 = nn.BatchNorm2d(128)
        self.layer1[0] = BasicBlock(128, 64)  # 1x1 conv + BN shortcut, 128 -> 64


class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, ks: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, ks, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class SCE(nn.Module):
    """Selective context encoding: aspect-ratio-aware pyramid pooling with 4-way pixel attention (in (1, 2))."""

    def __init__(self, cin: int = 512, cout: int = 128, grids: tuple[int, ...] = (6, 3, 2, 1)) -> None:
        super().__init__()
        self.grids = tuple(grids)
        self.reduce_channel = ConvBNReLU(cin, cout, 1, 1, 0)
        self.spp = nn.Sequential()
        for i in range(len(self.grids)):
            self.spp.add_module(f"spp_{i + 1}", ConvBNReLU(cout, cout, 1, 1, 0))
        self.spatial_attention = nn.Sequential(
            ConvBNReLU(cout * len(self.grids), cout, 1, 1, 0),
            nn.Conv2d(cout, len(self.grids), kernel_size=1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        size = (int(x.shape[-2]), int(x.shape[-1]))
        ar = size[1] / size[0]  # of the input map, before the reduction
        x = self.reduce_channel(x)
        context = []
        for i, g in enumerate(self.grids):
            pooled = F.adaptive_avg_pool2d(x, (g, max(1, round(ar * g))))  # Python round, as the seed
            context.append(F.interpolate(self.spp[i](pooled), size=size, mode="nearest"))
        att = self.spatial_attention(torch.cat(context, dim=1)) + 1
        for i, c in enumerate(context):
            x = x + c * att[:, i : i + 1]
        return x


def _gem(x: Tensor, p: float = 3.0) -> Tensor:
    """Generalized-mean pooling to 1x1: (mean(x^p) + 1e-12)^(1/p) (the seed's GeneralizedMeanPoolingBase)."""
    return (F.adaptive_avg_pool2d(x.pow(p), 1) + 1e-12).pow(1.0 / p)


class SFF(nn.Module):
    """Scale-aware feature fusion of a low-resolution map into a higher-resolution one (see module docstring)."""

    def __init__(self, low_channels: int, high_channels: int, out_channels: int, k_size: int = 5) -> None:
        super().__init__()
        self.conv_low = nn.Sequential(
            nn.Conv2d(low_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(True)
        )
        self.conv_high = nn.Sequential(
            nn.Conv2d(high_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(True)
        )
        self.conv_1 = nn.Conv1d(1, 1, kernel_size=k_size, padding=(k_size - 1) // 2, bias=False)
        self.conv_2 = nn.Conv1d(1, 1, kernel_size=k_size, padding=(k_size - 1) // 2, bias=False)
        self.out_channels = out_channels

    def forward(self, x_low: Tensor, x_high: Tensor) -> Tensor:
        n = x_high.shape[0]
        c = self.out_channels
        size = (int(x_high.shape[-2]), int(x_high.shape[-1]))
        low = F.interpolate(self.conv_low(x_low), size=size, mode="bilinear", align_corners=True)
        high = self.conv_high(x_high)
        # [N, C, 2] -> [N, 1, 2C]: L0, H0, L1, H1, ...
        d = torch.stack((_gem(low).flatten(1), _gem(high).flatten(1)), dim=2).reshape(n, 1, 2 * c)
        d = self.conv_2(self.conv_1(d))
        w = torch.sigmoid(d.reshape(n, c, 2))
        return w[:, :, 0].reshape(n, c, 1, 1) * low + w[:, :, 1].reshape(n, c, 1, 1) * high


class SANetOutput(nn.Module):
    """The seed's `BiSeNetOutput`: ConvBNReLU3x3 -> Conv1x1 -> x`up_factor` (PixelShuffle, or bilinear for tiny)."""

    def __init__(self, cin: int, mid: int, num_classes: int, up_factor: int, *, pixel_shuffle: bool = True) -> None:
        super().__init__()
        self.up_factor = up_factor
        self.pixel_shuffle = pixel_shuffle
        self.conv = ConvBNReLU(cin, mid, 3, 1, 1)
        out = num_classes * up_factor * up_factor if pixel_shuffle else num_classes
        self.conv_out = nn.Conv2d(mid, out, kernel_size=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_out(self.conv(x))
        if self.pixel_shuffle:
            return F.pixel_shuffle(x, self.up_factor)
        return F.interpolate(x, scale_factor=self.up_factor, mode="bilinear", align_corners=True)


class SANet(nn.Module):
    """SANet (PATCHED reading): normalised image -> (logits [N,K,8h',8w'], fused features [N,128,h',w'])."""

    feature_channels = 128
    checkpoint_optional = ("conv_out16.",)  # the training-only head: files stripped of it load

    def __init__(self, num_classes: int = 19, *, pixel_shuffle: bool = True) -> None:
        super().__init__()
        self.resnet = DeepStemResNet18()
        self.sce = SCE(512, 128)
        self.sff1 = SFF(128, 256, 128)
        self.sff2 = SFF(128, 128, 128)
        self.conv_out32 = SANetOutput(128, 128, num_classes, 8, pixel_shuffle=pixel_shuffle)
        # Training-time auxiliary head on layer3, kept so that the seed's checkpoint loads strictly.
        self.conv_out16 = SANetOutput(256, 64, num_classes, 16, pixel_shuffle=pixel_shuffle)
        self.num_classes = num_classes

    def forward_key(self, x: Tensor) -> tuple[Tensor, Tensor]:
        c2, c3, c4 = self.resnet(x)
        f = self.sff2(self.sff1(self.sce(c4), c3), c2)
        return self.conv_out32(f), f

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_key(x)[0]

    @staticmethod
    def feature_size(height: int, width: int) -> tuple[int, int]:
        """(h, w) of the fused features (stride 8); logits are 8x that."""
        return stride2_size(height, 3), stride2_size(width, 3)


# --------------------------------------------------------------------------------------------------------------
# Weight specs and builders

SANET_CITYSCAPES = ModelSpec(
    weights_hint="a checkpoint you trained (vidseg-train hr); github.com/kaigelee/SANet publishes no weights that "
    "match its README",
    name="sanet",
    num_classes=19,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    scale=255.0,
    channel_order="RGB",
    palette="cityscapes19",
    input_size=(1024, 2048),
    feature_channels=128,
    feature_stride=8,
    logits_stride=1,
    logits_align_corners=True,
    methods=("per-frame",),
    seed="SANet (kaigelee/SANet)",
    source="kaigelee/SANet: models/sanet.py (PATCHED: sff1 = SFF(128, 256, 128)), backbone "
    "models/base_models/resnetv1b.py (deep stem) standing in for the missing resnetv1c",
    paper="no paper reference in the repository (code by Kaige Li)",
    license="MIT",
    notes="The shipped network cannot run; this is the minimal consistent reading. README: SANet-100 "
    "(1024x2048) 79.1 val / 78.1 test mIoU; no released weights or logs match those numbers.",
    extra={"params": 13_030_292, "params_inference": 12_566_548, "head": "pixel_shuffle"},
)

SANET_TINY_CITYSCAPES = replace(
    SANET_CITYSCAPES,
    name="sanet-tiny",
    source="kaigelee/SANet: models/sanet_tiny.py (PATCHED: sff1 = SFF(128, 256, 128)), backbone "
    "models/base_models/resnetv1b.py (deep stem) standing in for the missing resnetv1c",
    extra={"params": 12_560_954, "params_inference": 12_412_135, "head": "bilinear"},
)


@register_model("sanet")
def sanet(*, num_classes: int = 19) -> PerFrameModel:
    """SANet with the sub-pixel (PixelShuffle x8) head (models/sanet.py)."""
    spec = SANET_CITYSCAPES if num_classes == 19 else replace(SANET_CITYSCAPES, num_classes=num_classes)
    return PerFrameModel(spec, SANet(num_classes, pixel_shuffle=True))


@register_model("sanet-tiny")
def sanet_tiny(*, num_classes: int = 19) -> PerFrameModel:
    """SANet with the bilinear x8 head (models/sanet_tiny.py)."""
    spec = SANET_TINY_CITYSCAPES if num_classes == 19 else replace(SANET_TINY_CITYSCAPES, num_classes=num_classes)
    return PerFrameModel(spec, SANet(num_classes, pixel_shuffle=False))

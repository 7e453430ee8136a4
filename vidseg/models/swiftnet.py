"""SwiftNet-R18, single scale, as GSVNet ships it (robert80203/GSVNet, model/swiftnet/).

Orsic et al., "In Defense of Pre-trained ImageNet Architectures for Real-time Semantic Segmentation of Road-driving
Images" (CVPR 2019); the copy inside GSVNet (ICME 2021) is the keyframe network of "gsvnet-swiftnet18" and is
registered here on its own as the per-frame model "swiftnet18".

Module names mirror the seed's (`SemsegModel(resnet18(...), 19)`), so `state_dict()` has the layout of
`weights/cityscapes-swnet-R18.pt`: `backbone.{img_mean,img_std,conv1,bn1,layer1..4,spp.spp.*,upsample.N.*}` and
`logits.{norm,conv}` (195 entries, 11,797,071 parameters).

Architecture (reference/gsvnet.md §7):
- ResNet-18 (7x7 stem). The seed's `BasicBlock.forward` returns `(relu(out), out)` with an *in-place* ReLU, so
  both are the rectified tensor: the ladder skips are the ordinary (post-ReLU) layer outputs.
- SPP on layer4: BN-ReLU-Conv1x1 512->128; 3 levels with grids (8,4,2) x aspect ratio (`round`, at least 1),
  adaptive average pooling, BN-ReLU-Conv1x1 128->42, bilinear (align_corners=False) back; concat 254 ->
  BN-ReLU-Conv1x1 -> 128.
- 3 ladder-style upsampling blocks (skips layer3, layer2, layer1): skip' = BN-ReLU-Conv1x1(c->128),
  x = bilinear(x, skip size, align_corners=False) + skip', x = BN-ReLU-Conv3x3.
- logits = BN-ReLU-Conv1x1(128->19, bias), at output stride 4 (GSVNet's modified forward: no upsampling).
- `img_mean` / `img_std` buffers exist in the checkpoint but are unused: normalisation happens outside the net.

The trunk is `vidseg.models.backbones.ResNet18` with the PLAIN layout (same module names as the seed's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidseg.models.backbones import PLAIN, ResNet18, stride2_size
from vidseg.models.base import ModelSpec, Stage
from vidseg.models.perframe import PerFrameModel
from vidseg.models.registry import register_model

__all__ = [
    "SwiftNetResNet18",
    "SwiftNet",
    "SwiftNetKeyStage",
    "scaled_size",
    "SwiftNetModel",
    "swiftnet18",
    "SWIFTNET18_CITYSCAPES",
    "SWIFTNET_MEAN_RGB",
    "SWIFTNET_STD_RGB",
]

# GSVNet's SwiftNet normalisation ([0, 255] stats), in RGB order (the order the segnet sees; the trainer lists
# them as B,G,R = (72.3, 82.90, 73.15) / (47.73, 48.49, 47.67) before flipping the channels).
SWIFTNET_MEAN_RGB = (73.15, 82.90, 72.3)
SWIFTNET_STD_RGB = (47.67, 48.49, 47.73)


# --------------------------------------------------------------------------------------------------------------
# SwiftNet pieces (names as in the seed's models/util.py)


class _BNReluConv(nn.Sequential):
    """Pre-activation unit: BatchNorm -> ReLU -> Conv (k x k, padding k//2)."""

    def __init__(self, cin: int, cout: int, k: int = 3, *, bias: bool = False, bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(cin, momentum=bn_momentum))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(cin, cout, kernel_size=k, padding=k // 2, bias=bias))


def _up(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class _SpatialPyramidPooling(nn.Module):
    """SwiftNet's SPP: bottleneck + aspect-ratio-aware average-pooling levels, fused by a 1x1 conv."""

    def __init__(
        self,
        cin: int = 512,
        num_levels: int = 3,
        bt_size: int = 128,
        level_size: int = 42,
        out_size: int = 128,
        grids: tuple[int, ...] = (8, 4, 2, 1),
        bn_momentum: float = 0.005,
    ) -> None:
        super().__init__()
        self.grids = tuple(grids)
        self.num_levels = num_levels
        self.spp = nn.Sequential()
        self.spp.add_module("spp_bn", _BNReluConv(cin, bt_size, k=1, bn_momentum=bn_momentum))
        for i in range(num_levels):
            self.spp.add_module(f"spp{i}", _BNReluConv(bt_size, level_size, k=1, bn_momentum=bn_momentum))
        self.spp.add_module(
            "spp_fuse", _BNReluConv(bt_size + num_levels * level_size, out_size, k=1, bn_momentum=bn_momentum)
        )

    def forward(self, x: Tensor) -> Tensor:
        size = (int(x.shape[-2]), int(x.shape[-1]))
        ar = size[1] / size[0]
        x = self.spp[0](x)
        levels = [x]
        for i in range(self.num_levels):
            g = self.grids[i]
            pooled = F.adaptive_avg_pool2d(x, (g, max(1, round(ar * g))))  # Python round, as the seed
            levels.append(_up(self.spp[i + 1](pooled), size))
        return self.spp[-1](torch.cat(levels, 1))


class _Upsample(nn.Module):
    """Ladder-style upsampling: bottleneck the skip, upsample x to it (bilinear, align_corners=False), add, blend."""

    def __init__(self, num_maps_in: int, skip_maps_in: int, num_maps_out: int, k: int = 3) -> None:
        super().__init__()
        self.bottleneck = _BNReluConv(skip_maps_in, num_maps_in, k=1)
        self.blend_conv = _BNReluConv(num_maps_in, num_maps_out, k=k)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        skip = self.bottleneck(skip)
        x = _up(x, (int(skip.shape[-2]), int(skip.shape[-1]))) + skip
        return self.blend_conv(x)


class SwiftNetResNet18(ResNet18):
    """The seed's `backbone`: ResNet-18 + SPP + three upsampling blocks; returns 128 channels at stride 4."""

    def __init__(
        self,
        *,
        num_features: int = 128,
        mean: tuple[float, float, float] = SWIFTNET_MEAN_RGB,
        std: tuple[float, float, float] = SWIFTNET_STD_RGB,
    ) -> None:
        super().__init__(PLAIN)
        # Present in the seed's state_dict, unused in its forward (normalisation is done by the data transform).
        self.register_buffer("img_mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("img_std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.num_features = num_features
        self.spp = _SpatialPyramidPooling(512, 3, num_features, num_features // 3, num_features)
        # Built in the order layer1, layer2, layer3 and reversed: upsample.0 takes layer3's skip.
        self.upsample = nn.ModuleList(
            [
                _Upsample(num_features, 256, num_features),
                _Upsample(num_features, 128, num_features),
                _Upsample(num_features, 64, num_features),
            ]
        )

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        c1 = self.layer1(self.stem(x))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        x = self.spp(c4)
        for skip, up in zip((c3, c2, c1), self.upsample, strict=True):
            x = up(x, skip)
        return x


class SwiftNet(nn.Module):
    """`SemsegModel(resnet18, num_classes)`: normalised image -> logits at output stride 4.

    Implements the per-frame protocol of `vidseg.models.perframe` (`forward_key`, `feature_size`,
    `feature_channels`); the features are the 128-channel decoder output the logits are computed from.
    """

    feature_channels = 128

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        self.backbone = SwiftNetResNet18(num_features=self.feature_channels)
        self.num_classes = num_classes
        self.logits = _BNReluConv(self.backbone.num_features, num_classes, k=1, bias=True)

    def forward_key(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.backbone(x)
        return self.logits(feats), feats

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_key(x)[0]

    @staticmethod
    def feature_size(height: int, width: int) -> tuple[int, int]:
        """(h, w) of logits and features for a network input of height x width (stride 4: conv1 + maxpool)."""
        return stride2_size(height, 2), stride2_size(width, 2)


# --------------------------------------------------------------------------------------------------------------
# Per-frame model


def scaled_size(n: int, scale: float) -> int:
    """The seed's keyframe resize: `n // 4 * 3` for 0.75 (gsvnet_trainer.py), `int(n * scale)` otherwise."""
    if scale == 0.75:
        return n // 4 * 3
    return max(1, int(n * scale))


class SwiftNetKeyStage(Stage):
    """image (uint8 RGB) -> normalise -> bilinear (align_corners=True, as GSVNet) to `input_scale` of the frame ->
    SwiftNet -> logits [N,K,h',w'] and features [N,128,h',w'] at stride 4 of the rescaled frame."""

    input_names = ("image",)
    output_names = ("logits", "features")

    def __init__(self, preprocess: nn.Module, net: SwiftNet, input_scale: float) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.net = net
        self.input_scale = float(input_scale)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        x = self.preprocess(image)
        height, width = int(image.shape[-2]), int(image.shape[-1])
        size = (scaled_size(height, self.input_scale), scaled_size(width, self.input_scale))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.net.forward_key(x)


class SwiftNetModel(PerFrameModel):
    """SwiftNet-R18 run on every frame; `input_scale` != 1 resizes the frame inside the key stage."""

    def __init__(self, spec: ModelSpec, *, input_scale: float = 1.0) -> None:
        super().__init__(spec, SwiftNet(spec.num_classes))
        self.input_scale = float(input_scale)

    def stages(self, *, lr_scale: float | None = None) -> dict[str, Stage]:
        if self.input_scale == 1.0:
            return super().stages(lr_scale=lr_scale)
        return {"key": SwiftNetKeyStage(self.preprocess, self.net, self.input_scale).train(self.training)}

    def feature_size(self, height: int, width: int) -> tuple[int, int]:
        return self.net.feature_size(scaled_size(height, self.input_scale), scaled_size(width, self.input_scale))


# --------------------------------------------------------------------------------------------------------------
# Weight specs and builders

SWIFTNET18_CITYSCAPES = ModelSpec(
    weights_hint="cityscapes-swnet-R18.pt, from github.com/robert80203/GSVNet (weights/)",
    name="swiftnet18",
    num_classes=19,
    mean=SWIFTNET_MEAN_RGB,
    std=SWIFTNET_STD_RGB,
    scale=1.0,
    channel_order="RGB",
    palette="cityscapes19",
    input_size=(1024, 2048),
    feature_channels=128,
    feature_stride=4,
    logits_stride=4,
    logits_align_corners=False,
    methods=("per-frame",),
    seed="GSVNet (ICME 2021) keyframe network; SwiftNet (CVPR 2019)",
    source="robert80203/GSVNet: model/swiftnet/configs/import_swiftnet.py, models/resnet/resnet_single_scale.py, "
    "models/util.py, models/semseg.py; weights/cityscapes-swnet-R18.pt",
    paper="Orsic et al., In Defense of Pre-trained ImageNet Architectures for Real-time Semantic Segmentation of "
    "Road-driving Images, CVPR 2019",
    license="not stated in the GSVNet repository",
    notes="Logits at output stride 4 of the network input (GSVNet's forward, no upsampling); the checkpoint's "
    "img_mean/img_std buffers are unused. GSVNet evaluates this network at 0.75 input scale "
    "(`input_scale=0.75`; logits are then at stride 16/3 of the frame).",
    extra={"checkpoint": "cityscapes-swnet-R18.pt (plain state_dict)", "params": 11_797_071},
)


@register_model("swiftnet18")
def swiftnet18(*, num_classes: int = 19, input_scale: float = 1.0) -> SwiftNetModel:
    """SwiftNet-R18 single scale (Cityscapes, 19 classes); `input_scale` resizes the frame inside the key stage."""
    spec = SWIFTNET18_CITYSCAPES
    if num_classes != spec.num_classes:
        from dataclasses import replace

        spec = replace(spec, num_classes=num_classes)
    return SwiftNetModel(spec, input_scale=input_scale)

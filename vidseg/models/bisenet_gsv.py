"""BiSeNet-R18 in GSVNet's (TorchSeg-derived) layout: robert80203/GSVNet, model/bisenet/bisenet_resnet18.py.

Yu et al., "BiSeNet: Bilateral Segmentation Network for Real-time Semantic Segmentation" (ECCV 2018). GSVNet's
copy comes from TorchSeg and has a different module layout from AR-Seg's BiSeNetV1 (`vidseg.models.bisenet`,
CoinCheung style `cp.*`/`sp.*`): `context_path.*` (plain ResNet-18), `spatial_path.*`, `global_context.*`,
`arms.N.*`, `refines.N.*`, `ffm.*`, `heads.N.*` (218 entries, 13,494,777 parameters including the two auxiliary
heads `heads.0/1`, which the checkpoint carries but inference never runs). Reference: gsvnet.md §8.

- Spatial path: ConvBnRelu 7x7/2 (3->64), 3x3/2, 3x3/2 (64->64), 1x1 (64->128): 128 ch at stride 8.
- Context path: ResNet-18 layer1..4; global context = GAP -> ConvBnRelu1x1(512->128) -> bilinear
  (align_corners=True) to layer4's size.
- ARM(c): ConvBnRelu3x3(c->128); att = sigmoid(BN(Conv1x1(GAP))); fm * att. ARM(512)(layer4) + global context ->
  bilinear (ac=True) to layer3 -> refine ConvBnRelu3x3; ARM(256)(layer3) + that -> bilinear to layer2 -> refine.
- FFM: cat(spatial, context) -> ConvBnRelu1x1(256->256); att = sigmoid(Conv1x1(ReLU(Conv1x1(GAP)))) (no BN, no
  bias); out = fm + fm * att.
- Head `heads[2]`: ConvBnRelu3x3(256->64) -> Conv1x1(64->19, bias): logits at output stride 8.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidseg.models.backbones import PLAIN, ResNet18

__all__ = ["BiSeNetGSV", "BISENET_GSV_MEAN_RGB", "BISENET_GSV_STD_RGB"]

# GSVNet's BiSeNet normalisation: ImageNet statistics on [0, 1], in RGB order (the trainer lists them B,G,R).
BISENET_GSV_MEAN_RGB = (0.485, 0.456, 0.406)
BISENET_GSV_STD_RGB = (0.229, 0.224, 0.225)


class ConvBnRelu(nn.Module):
    """TorchSeg's ConvBnRelu: Conv (no bias unless asked) -> optional BN (eps 1e-5) -> optional ReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        stride: int,
        pad: int,
        *,
        has_bn: bool = True,
        has_relu: bool = True,
        has_bias: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=has_bias)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5) if has_bn else None
        self.relu = nn.ReLU(inplace=True) if has_relu else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.relu is not None:
            x = self.relu(x)
        return x


class SpatialPath(nn.Module):
    def __init__(self, cin: int = 3, cout: int = 128) -> None:
        super().__init__()
        self.conv_7x7 = ConvBnRelu(cin, 64, 7, 2, 3)
        self.conv_3x3_1 = ConvBnRelu(64, 64, 3, 2, 1)
        self.conv_3x3_2 = ConvBnRelu(64, 64, 3, 2, 1)
        self.conv_1x1 = ConvBnRelu(64, cout, 1, 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_1x1(self.conv_3x3_2(self.conv_3x3_1(self.conv_7x7(x))))


class AttentionRefinement(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_3x3 = ConvBnRelu(cin, cout, 3, 1, 1)
        self.channel_attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), ConvBnRelu(cout, cout, 1, 1, 0, has_relu=False), nn.Sigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        fm = self.conv_3x3(x)
        return fm * self.channel_attention(fm)


class FeatureFusion(nn.Module):
    def __init__(self, cin: int, cout: int, reduction: int = 1) -> None:
        super().__init__()
        self.conv_1x1 = ConvBnRelu(cin, cout, 1, 1, 0)
        self.channel_attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            ConvBnRelu(cout, cout // reduction, 1, 1, 0, has_bn=False),
            ConvBnRelu(cout // reduction, cout, 1, 1, 0, has_bn=False, has_relu=False),
            nn.Sigmoid(),
        )

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        fm = self.conv_1x1(torch.cat([x1, x2], dim=1))
        return fm + fm * self.channel_attention(fm)


class BiSeNetHead(nn.Module):
    """ConvBnRelu3x3 -> Conv1x1 (bias); aux heads (256 mid channels) upsample by `scale` (ac=True)."""

    def __init__(self, cin: int, num_classes: int, scale: int, *, is_aux: bool) -> None:
        super().__init__()
        mid = 256 if is_aux else 64
        self.conv_3x3 = ConvBnRelu(cin, mid, 3, 1, 1)
        self.conv_1x1 = nn.Conv2d(mid, num_classes, 1)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_1x1(self.conv_3x3(x))
        if self.scale > 1:
            out = F.interpolate(out, scale_factor=self.scale, mode="bilinear", align_corners=True)
        return out


def _resize_ac(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=(int(like.shape[-2]), int(like.shape[-1])), mode="bilinear", align_corners=True)


class BiSeNetGSV(nn.Module):
    """GSVNet's `BiSeNet(19, is_training=False, real_time=False)`: normalised image -> logits at stride 8."""

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        conv_channel = 128
        self.context_path = ResNet18(PLAIN)
        self.spatial_path = SpatialPath(3, conv_channel)
        self.global_context = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBnRelu(512, conv_channel, 1, 1, 0))
        self.arms = nn.ModuleList([AttentionRefinement(512, conv_channel), AttentionRefinement(256, conv_channel)])
        self.refines = nn.ModuleList(
            [ConvBnRelu(conv_channel, conv_channel, 3, 1, 1), ConvBnRelu(conv_channel, conv_channel, 3, 1, 1)]
        )
        # heads[0], heads[1]: training-time auxiliary heads, kept so that the seed's checkpoint loads strictly.
        self.heads = nn.ModuleList(
            [
                BiSeNetHead(conv_channel, num_classes, 16, is_aux=True),
                BiSeNetHead(conv_channel, num_classes, 8, is_aux=True),
                BiSeNetHead(conv_channel * 2, num_classes, 1, is_aux=False),
            ]
        )
        self.ffm = FeatureFusion(conv_channel * 2, conv_channel * 2, 1)
        self.num_classes = num_classes

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """-> (logits [N,K,h/8,w/8], fused FFM features [N,256,h/8,w/8])."""
        spatial = self.spatial_path(x)
        c2, c3, c4 = self.context_path(x)
        last = _resize_ac(self.global_context(c4), c4)
        fm = self.arms[0](c4) + last
        last = self.refines[0](_resize_ac(fm, c3))
        fm = self.arms[1](c3) + last
        context = self.refines[1](_resize_ac(fm, c2))
        fused = self.ffm(spatial, context)
        return self.heads[-1](fused), fused

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)[0]

"""BiSeNetV1-18 as AR-Seg uses it (`model/bisenet.py`, CoinCheung lineage).

Written from the digest (`shared/reference/arseg.md` §1.5); module names mirror the seed's. Conventions that must
match the released checkpoints:
- ContextPath upsamples x2 with `nn.Upsample(scale_factor=2.)`, i.e. **nearest**; AR-Seg adds a bilinear
  (align_corners=True) resize of the upsampled stride-32 branch to feat16's size. With a 360x480 input feat16 is
  23x30, so feat_cp8 (and the CReFF feature) is 46x60 while layer2 and the spatial path are 45x60.
- The spatial path is resized to feat_cp8 (bilinear, align_corners=True) before the feature fusion module.
- The CReFF/FST feature is the output of `feat_conv_out` (= `conv_out.conv`, ConvBNReLU 3x3 256->256, stride 8);
  the seed's logits are `final_conv` (= `conv_out.conv_out`) of it, upsampled x8 bilinearly with
  align_corners=False. vidseg's `head` stops before that upsample and returns the stride-8 logits: the specs of
  every BiSeNetV1 model say `logits_upsample=LOGITS_UPSAMPLE`, and `logits_to_labels` does the seed's x8 (in row
  bands, without materialising full-size float logits) and its resize to the frame; `upsample_logits` gives the
  seed's full-size logits where they are needed (training losses, returned logits).
  The seed registers both aliases as modules, so its files carry their keys twice; vidseg keeps one module each
  and `vidseg.models.checkpoints` folds/re-emits the aliases.
- The aux heads `conv_out16`/`conv_out32` exist in every file (aux_mode='train', also at evaluation, where they
  are computed and discarded); vidseg keeps them for the layout and does not run them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidseg.models.backbones import PLAIN, ResNet18, scaled, stride2_size
from vidseg.models.labels import upsample_logits

# The seed's x8 logits upsample that BiSeNetV1.head leaves to `logits_to_labels` (`ModelSpec.logits_upsample`).
LOGITS_UPSAMPLE = 8

__all__ = ["BiSeNetV1", "LOGITS_UPSAMPLE", "ConvBNReLU", "ContextPath", "SpatialPath", "FeatureFusionModule",
           "BiSeNetOutput"]


class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, ks: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, ks, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class AttentionRefinementModule(nn.Module):
    """feat = ConvBNReLU3x3(x); feat * sigmoid(bn(conv1x1(mean_HW(feat))))."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, cout, 3, 1, 1)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.conv(x)
        atten = torch.sigmoid(self.bn_atten(self.conv_atten(feat.mean(dim=(2, 3), keepdim=True))))
        return feat * atten


class ContextPath(nn.Module):
    """Plain ResNet-18 + ARMs; returns (feat_cp8: 128 ch, stride 8; feat_cp16: 128 ch, stride 16)."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.resnet = ResNet18(PLAIN, width=width)
        _, _, c16, c32 = self.resnet.widths
        c = scaled(128, width)
        self.arm16 = AttentionRefinementModule(c16, c)
        self.arm32 = AttentionRefinementModule(c32, c)
        self.conv_head32 = ConvBNReLU(c, c, 3, 1, 1)
        self.conv_head16 = ConvBNReLU(c, c, 3, 1, 1)
        self.conv_avg = ConvBNReLU(c32, c, 1, 1, 0)
        self.up32 = nn.Upsample(scale_factor=2.0)  # nearest, as the seed
        self.up16 = nn.Upsample(scale_factor=2.0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _, feat16, feat32 = self.resnet(x)
        avg = self.conv_avg(feat32.mean(dim=(2, 3), keepdim=True))
        feat32_up = self.up32(self.arm32(feat32) + avg)
        feat32_up = F.interpolate(feat32_up, size=feat16.shape[-2:], mode="bilinear", align_corners=True)
        feat32_up = self.conv_head32(feat32_up)
        feat16_up = self.conv_head16(self.up16(self.arm16(feat16) + feat32_up))
        return feat16_up, feat32_up


class SpatialPath(nn.Module):
    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c64, c128 = scaled(64, width), scaled(128, width)
        self.conv1 = ConvBNReLU(3, c64, 7, 2, 3)
        self.conv2 = ConvBNReLU(c64, c64, 3, 2, 1)
        self.conv3 = ConvBNReLU(c64, c64, 3, 2, 1)
        self.conv_out = ConvBNReLU(c64, c128, 1, 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_out(self.conv3(self.conv2(self.conv1(x))))


class FeatureFusionModule(nn.Module):
    """feat = ConvBNReLU1x1(cat[sp, cp]); feat * sigmoid(bn(conv1x1(mean_HW(feat)))) + feat."""

    def __init__(self, cin: int = 256, cout: int = 256) -> None:
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, 1, 1, 0)
        self.conv = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, fsp: Tensor, fcp: Tensor) -> Tensor:
        feat = self.convblk(torch.cat([fsp, fcp], dim=1))
        atten = torch.sigmoid(self.bn(self.conv(feat.mean(dim=(2, 3), keepdim=True))))
        return feat * atten + feat


class BiSeNetOutput(nn.Module):
    """ConvBNReLU3x3 -> conv1x1 (+bias) -> x`up_factor` bilinear (align_corners=False); the seed's full forward
    (BiSeNetV1's main head runs its parts without the upsample, see `BiSeNetV1.head`)."""

    def __init__(self, cin: int, mid: int, num_classes: int, up_factor: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, mid, 3, 1, 1)
        self.conv_out = nn.Conv2d(mid, num_classes, 1)
        self.up_factor = up_factor

    def forward(self, x: Tensor) -> Tensor:
        # The seed's nn.Upsample(scale_factor=8): the same sampling positions (the scale is exactly in/out), so
        # bit-identical (see upsample_logits).
        return upsample_logits(self.conv_out(self.conv(x)), self.up_factor)


class BiSeNetV1(nn.Module):
    """AR-Seg's BiSeNetV1-18; the CReFF feature is `feat_conv_out`'s output (256 channels, stride 8).

    width scales every channel count (1.0 = the seed's network and checkpoint layout; vidseg's built-in demo
    model uses a narrow one).
    """

    checkpoint_aliases = {"feat_conv_out.": "conv_out.conv.", "final_conv.": "conv_out.conv_out."}
    checkpoint_optional = ("conv_out16.", "conv_out32.")  # training-only heads: files stripped of them load

    def __init__(self, num_classes: int = 19, *, width: float = 1.0) -> None:
        super().__init__()
        c128, c256, c64 = scaled(128, width), scaled(256, width), scaled(64, width)
        self.feature_channels = c256
        self.cp = ContextPath(width)
        self.sp = SpatialPath(width)
        self.ffm = FeatureFusionModule(2 * c128, c256)
        self.conv_out = BiSeNetOutput(c256, c256, num_classes, up_factor=8)
        self.conv_out16 = BiSeNetOutput(c128, c64, num_classes, up_factor=8)  # training only
        self.conv_out32 = BiSeNetOutput(c128, c64, num_classes, up_factor=16)  # training only

    @property
    def feat_conv_out(self) -> ConvBNReLU:
        return self.conv_out.conv

    @property
    def final_conv(self) -> nn.Conv2d:
        return self.conv_out.conv_out

    def features(self, x: Tensor) -> Tensor:
        feat_cp8, _ = self.cp(x)
        feat_sp = F.interpolate(self.sp(x), size=feat_cp8.shape[-2:], mode="bilinear", align_corners=True)
        return self.feat_conv_out(self.ffm(feat_sp, feat_cp8))

    def head(self, feature: Tensor) -> Tensor:
        """Stride-8 logits: the seed's head without its x8 upsample (`LOGITS_UPSAMPLE`, the module docstring)."""
        return self.final_conv(feature)

    def forward_key(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feat = self.features(x)
        return self.head(feat), feat

    def fused_head(self, fused: Tensor) -> Tensor:
        return self.head(fused)

    def feature_size(self, height: int, width: int) -> tuple[int, int]:
        """2 * feat16 size (nearest x2 of layer3's output): 46x60 for 360x480, 90x120 for 720x960."""
        return 2 * stride2_size(height, 4), 2 * stride2_size(width, 4)

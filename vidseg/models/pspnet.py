"""PSPNet-18 in the two layouts of the seeds, and ETC's per-frame model.

Written from the digests (`shared/reference/arseg.md` §1.3-1.4, `etc.md` §1); module names mirror the seeds'.

`PSPNetCamVid` is AR-Seg's CamVid PSPNet (`model/pspnet.py`): dilated ResNet-18 (`ARSEG_EXTRACTORS`, OS 8), a PSP
module whose branches are a bare 1x1 conv (no BN/ReLU), upsampled with align_corners=False and concatenated
*before* the input, then three (x2 bilinear, conv3x3-BN-PReLU) upsamplings to a 64-channel feature `p` at the
input's resolution; `final_conv` (1x1), a resize to the input size (align_corners=True) and LogSoftmax over the
classes: the key stage returns log-probabilities, as the seed does. The image-level `classifier` head (training
only) is kept for the checkpoint layout but not run.

`PSPNetSemseg` is the "semseg" PSPNet (hszhao/semseg lineage) used by AR-Seg on Cityscapes
(`model/pspnet_semseg.py`, trunk `ARSEG_SEMSEG`, 512-channel `cls` hidden layer, `final_conv` alias of `cls.4`)
and by ETC (`model/pspnet_18.py`, trunk `ETC`, 256 channels, no alias): PPM branches are conv1x1-BN-ReLU, resized
with align_corners=True and concatenated *after* the input; the feature is `cls[:-1]` (stride 8) and the logits
are `cls[-1]` of it, left at stride 8 (`ModelSpec.logits_stride = 8`): both seeds resize them to the frame
bilinearly with align_corners=True, which `logits_to_labels` does. The `aux` head (training only) is kept for
the layout but not run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidseg.models.backbones import ARSEG_EXTRACTORS, ARSEG_SEMSEG, ETC, ResNet18, ResNetLayout, stride2_size
from vidseg.models.base import ModelSpec
from vidseg.models.perframe import PerFrameModel
from vidseg.models.registry import register_model

__all__ = ["PSPNetCamVid", "PSPNetSemseg", "PSPModule", "PSPUpsample", "PPM", "ETC_PSP18_CITYSCAPES"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PSPModule(nn.Module):
    """AR-Seg CamVid pyramid pooling: [up(conv1x1(pool_b(x))) for b in sizes] + [x] -> conv1x1 -> ReLU."""

    def __init__(self, features: int = 512, out_features: int = 1024, sizes: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), nn.Conv2d(features, features, 1, bias=False)) for s in sizes
        )
        self.bottleneck = nn.Conv2d(features * (len(sizes) + 1), out_features, 1)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        priors = [F.interpolate(stage(x), size=size, mode="bilinear", align_corners=False) for stage in self.stages]
        return self.relu(self.bottleneck(torch.cat([*priors, x], dim=1)))


class PSPUpsample(nn.Module):
    """x2 bilinear (align_corners=False) -> conv3x3 (+bias) -> BN -> PReLU (one shared slope)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.PReLU())

    def forward(self, x: Tensor) -> Tensor:
        size = (2 * x.shape[-2], 2 * x.shape[-1])
        return self.conv(F.interpolate(x, size=size, mode="bilinear", align_corners=False))


class PSPNetCamVid(nn.Module):
    """AR-Seg's CamVid PSPNet-18; the CReFF feature is `p` (64 channels, stride 1)."""

    feature_channels = 64

    def __init__(self, num_classes: int = 12) -> None:
        super().__init__()
        self.feats = ResNet18(ARSEG_EXTRACTORS)
        self.psp = PSPModule(512, 1024, (1, 2, 3, 6))
        self.drop_1 = nn.Dropout2d(0.3)
        self.up_1 = PSPUpsample(1024, 256)
        self.up_2 = PSPUpsample(256, 64)
        self.up_3 = PSPUpsample(64, 64)
        self.drop_2 = nn.Dropout2d(0.15)
        self.final_conv = nn.Conv2d(64, num_classes, 1)
        self.classifier = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, num_classes))  # training only

    def features(self, x: Tensor) -> Tensor:
        p = self.drop_1(self.psp(self.feats(x)[2]))
        p = self.drop_2(self.up_1(p))
        p = self.drop_2(self.up_2(p))
        return self.drop_2(self.up_3(p))

    def head(self, feature: Tensor, size: tuple[int, int]) -> Tensor:
        """final_conv -> bilinear (align_corners=True) to `size` -> log-probabilities over classes."""
        out = F.interpolate(self.final_conv(feature), size=size, mode="bilinear", align_corners=True)
        return F.log_softmax(out, dim=1)

    def forward_key(self, x: Tensor) -> tuple[Tensor, Tensor]:
        p = self.features(x)
        return self.head(p, x.shape[-2:]), p

    def fused_head(self, fused: Tensor) -> Tensor:
        """Logits of a CReFF-fused feature: resized to the fused feature's own size (an identity), as the seed."""
        return self.head(fused, fused.shape[-2:])

    def feature_size(self, height: int, width: int) -> tuple[int, int]:
        return 8 * stride2_size(height, 3), 8 * stride2_size(width, 3)


class PPM(nn.Module):
    """Semseg pyramid pooling: [x] + [up(relu(bn(conv1x1(pool_b(x))))) for b in bins], align_corners=True."""

    def __init__(self, in_dim: int = 512, reduction_dim: int = 128, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.features = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(in_dim, reduction_dim, 1, bias=False),
                nn.BatchNorm2d(reduction_dim),
                nn.ReLU(),
            )
            for b in bins
        )

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(f(x), size=size, mode="bilinear", align_corners=True) for f in self.features]
        return torch.cat([x, *pooled], dim=1)


class PSPNetSemseg(nn.Module):
    """Semseg-layout PSPNet-18 (AR-Seg Cityscapes, ETC); the feature is `cls[:-1]` (`cls_dim` channels, OS 8).

    final_conv_alias: the seed registers `cls[4]` a second time as `final_conv` (AR-Seg), so its files carry both
    key sets; vidseg keeps one module and `vidseg.models.checkpoints` folds/re-emits the alias.
    """

    checkpoint_optional = ("aux.",)  # the training-only head: files stripped of it load (ETC loads non-strictly)

    def __init__(
        self,
        num_classes: int = 19,
        *,
        layout: ResNetLayout = ARSEG_SEMSEG,
        cls_dim: int = 512,
        final_conv_alias: bool = True,
    ) -> None:
        super().__init__()
        trunk = ResNet18(layout)
        self.layer0, self.layer1, self.layer2 = trunk.layer0, trunk.layer1, trunk.layer2
        self.layer3, self.layer4 = trunk.layer3, trunk.layer4
        self.ppm = PPM(512, 128, (1, 2, 3, 6))
        self.cls = nn.Sequential(
            nn.Conv2d(1024, cls_dim, 3, padding=1, bias=False),
            nn.BatchNorm2d(cls_dim),
            nn.ReLU(),
            nn.Dropout2d(0.1),
            nn.Conv2d(cls_dim, num_classes, 1),
        )
        self.aux = nn.Sequential(  # on layer3; training only
            nn.Conv2d(256, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(),
            nn.Dropout2d(0.1),
            nn.Conv2d(256, num_classes, 1),
        )
        self.feature_channels = cls_dim
        self.checkpoint_aliases = {"final_conv.": "cls.4."} if final_conv_alias else {}

    @property
    def final_conv(self) -> nn.Conv2d:
        return self.cls[4]

    def features(self, x: Tensor) -> Tensor:
        x = self.layer1(self.layer0(x))
        x = self.layer4(self.layer3(self.layer2(x)))
        return self.cls[:-1](self.ppm(x))

    def head(self, feature: Tensor) -> Tensor:
        return self.cls[-1](feature)

    def forward_key(self, x: Tensor) -> tuple[Tensor, Tensor]:
        p = self.features(x)
        return self.head(p), p

    def fused_head(self, fused: Tensor) -> Tensor:
        """Logits of a CReFF-fused feature: raw, at the feature's stride 8 (AR-Seg forward_phase2)."""
        return self.head(fused)

    def feature_size(self, height: int, width: int) -> tuple[int, int]:
        return stride2_size(height, 3), stride2_size(width, 3)


# --- weight specs and builders ---------------------------------------------------------------------------------

ETC_PSP18_CITYSCAPES = ModelSpec(
    weights_hint="ckpt/eval_para_ETC.pth, from "
    "github.com/irfanICMLL/ETC-Real-time-Per-frame-Semantic-video-segmentation (README)",
    name="etc-psp18-cityscapes",
    num_classes=19,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    palette="cityscapes19",
    input_size=(1024, 2048),
    feature_channels=256,
    feature_stride=8,
    logits_stride=8,
    logits_align_corners=True,
    methods=("per-frame",),
    seed="ETC (ECCV 2020)",
    source="irfanICMLL/ETC-Real-time-Per-frame-Semantic-video-segmentation: model/pspnet_18.py, model/resnet.py",
    paper="Liu et al., Efficient Semantic Video Segmentation with Per-frame Inference, ECCV 2020",
    license="see the seed repository",
    notes="PSPNet-18 trained with the temporal (motion) loss and distillation; mIoU 73.06, TC 70.56 (README). "
    "Checkpoints: the seed's transfer_ckpt layout (student./module. prefixes; flow, teacher, criterion dropped).",
)


@register_model("etc-psp18-cityscapes")
def etc_psp18_cityscapes() -> PerFrameModel:
    """ETC's per-frame PSPNet-18 (Cityscapes, 19 classes)."""
    net = PSPNetSemseg(19, layout=ETC, cls_dim=256, final_conv_alias=False)
    net.checkpoint_layout = "etc"
    return PerFrameModel(ETC_PSP18_CITYSCAPES, net)

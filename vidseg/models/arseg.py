"""AR-Seg (CVPR 2023): an HR network on keyframes, the same architecture on downscaled non-keyframes, fused with
the keyframe's features by CReFF (warp by codec motion + 7x7 local attention).

Written from the digest (`shared/reference/arseg.md` §1-2, §6, §8). Pairings (evaluation.py:24-36):

| model                     | hr (keyframes)                      | lr (non-keyframes)          | CReFF at (C, stride) |
|---------------------------|-------------------------------------|-----------------------------|----------------------|
| arseg-psp18-camvid        | PSPNetCamVid(12)                    | + fuse_attention            | 64, 1                |
| arseg-bise18-camvid       | BiSeNetV1(12)                       | + fuse_attention            | 256, 8               |
| arseg-psp18-cityscapes    | PSPNetSemseg(19) + fuse_attention*  | PSPNetSemseg(19) + fuse     | 512, 8               |
| arseg-bise18-cityscapes   | BiSeNetV1(19)                       | + fuse_attention            | 256, 8               |

(*) the seed builds the Cityscapes HR net with the same class as the LR net; its HR file has no `fuse_attention.*`
(the seed loads it with strict=False), so that part declares the prefix optional. The HR nets alone are also
registered as per-frame models (`psp18-camvid`, `bise18-camvid`, `psp18-cityscapes`, `bise18-cityscapes`).

Stages (see `vidseg.models.base`):
- key:    image -> logits, features = F_I, the HR net's CReFF feature of the keyframe.
- nonkey: image (full resolution), key_features (F_I), motion (backward map in F_I's pixels, already resized to
  F_I's grid) -> logits, features = the fused feature. Inside: downscale by lr_scale with bilinear
  align_corners=True to (int(H*s), int(W*s)) as the seed, then normalise (the seed normalises first: equal up to
  rounding, on a quarter of the pixels), LR feature, `warp(F_I, motion, "arseg")`, CReFF, the LR
  net's classifier with the seed's model-specific output (log-probs / raw stride-8 logits; BiSeNet's x8 upsample
  is left to the labels step, `ModelSpec.logits_upsample`, in both stages).

Must-match conventions kept here: the "arseg" warp convention by default (normalised by W-1 but sampled with
align_corners=False: zero motion shifts by half a feature pixel and fades the border; `warp_convention="exact"`
is offered for models trained with an exact warp), the LR feature upsampled with align_corners=True, depthwise
3x3 Q/K/V convs with bias, raw dot-product scores (no 1/sqrt(C)), zero-padded 7x7 window, residual add.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidseg.errors import ConfigError
from vidseg.kernels import ops
from vidseg.kernels.reference import WARP_CONVENTIONS
from vidseg.models.base import ModelSpec, Preprocess, Stage, VideoSegModel
from vidseg.models.bisenet import LOGITS_UPSAMPLE, BiSeNetV1
from vidseg.models.perframe import KeyStage, PerFrameModel
from vidseg.models.pspnet import IMAGENET_MEAN, IMAGENET_STD, PSPNetCamVid, PSPNetSemseg
from vidseg.models.registry import register_model

__all__ = ["CReFF", "NonKeyStage", "ARSegModel", "ARSEG_SPECS"]


class CReFF(nn.Module):
    """Cross-Resolution Feature Fusion (AR-Seg `MyAttention(C, 7, 7)`), registered as `fuse_attention`.

    forward(hr_feat, lr_feat): lr_up = bilinear(lr_feat -> hr size, align_corners=True);
    Q = dw3x3(lr_up), K = dw3x3(hr_feat), V = dw3x3(hr_feat); out = lr_up + local_attention(Q, K, V, 7).
    """

    def __init__(self, channels: int, window: int = 7) -> None:
        super().__init__()
        self.window = window
        self.lr_query_conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.hr_key_conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.hr_value_conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        for conv in (self.lr_query_conv, self.hr_key_conv, self.hr_value_conv):  # the seed's init
            nn.init.kaiming_normal_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)

    def forward(self, hr_feat: Tensor, lr_feat: Tensor) -> Tensor:
        lr_up = F.interpolate(lr_feat, size=hr_feat.shape[-2:], mode="bilinear", align_corners=True)
        q = self.lr_query_conv(lr_up)
        k = self.hr_key_conv(hr_feat)
        v = self.hr_value_conv(hr_feat)
        return ops.creff(q, k, v, lr_up, self.window)

    def profile_macs(self, inputs: tuple[Tensor, ...], output: Tensor) -> int:
        """MACs of the attention itself (scores + weighting), beyond the convs: 2 * N*C*H*W * window^2."""
        return 2 * output.numel() * self.window**2


class NonKeyStage(Stage):
    """image, key_features, motion -> logits, features (the fused feature); see the module docstring."""

    input_names = ("image", "key_features", "motion")
    output_names = ("logits", "features")

    def __init__(
        self,
        preprocess: Preprocess,
        lr: nn.Module,
        *,
        lr_scale: float,
        warp_convention: str,
        key_feature_size,
        feature_channels: int,
    ) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.lr = lr
        self.lr_scale = lr_scale
        self.warp_convention = warp_convention
        self._key_feature_size = key_feature_size
        self._channels = feature_channels

    def forward(self, image: Tensor, key_features: Tensor, motion: Tensor) -> tuple[Tensor, Tensor]:
        # The seed normalises, then downscales; this downscales, then normalises (`Preprocess.to_float`).
        x = self.preprocess.to_float(image)
        # The seed's (int(H*s), int(W*s)) with align_corners=True, given as a scale factor: the same output size
        # and, with align_corners=True, the same samples (the scale then only sets the size), but an exported graph
        # keeps it as a scale, so it runs at any frame size (ONNX --dynamic).
        x = self.preprocess.normalise(F.interpolate(x, scale_factor=self.lr_scale, mode="bilinear",
                                                    align_corners=True))
        lr_feat = self.lr.features(x)
        warped = ops.warp(key_features, motion, self.warp_convention)
        fused = self.lr.fuse_attention(warped, lr_feat)
        return self.lr.fused_head(fused), fused

    def input_shapes(self, height: int, width: int, batch: int = 1):
        hf, wf = self._key_feature_size(height, width)
        return {
            "image": ((batch, 3, height, width), torch.uint8),
            "key_features": ((batch, self._channels, hf, wf), torch.float32),
            "motion": ((batch, 2, hf, wf), torch.float32),
        }


class ARSegModel(VideoSegModel):
    """AR-Seg's HR/LR pair: stages "key" (hr) and "nonkey" (lr + CReFF); checkpoint parts "hr" and "lr"."""

    def __init__(self, spec: ModelSpec, hr: nn.Module, lr: nn.Module, *, warp_convention: str = "arseg") -> None:
        super().__init__()
        if warp_convention not in WARP_CONVENTIONS:
            raise ConfigError(
                f"unknown warp convention {warp_convention!r} for {spec.name}; choose one of "
                f"{', '.join(WARP_CONVENTIONS)} ('arseg' reproduces the released checkpoints)"
            )
        # The seed's warp goes with the seed's motion resize (the engine reads it from the spec).
        self.spec = dataclasses.replace(spec, motion_convention="arseg" if warp_convention == "arseg" else "exact")
        self.hr = hr
        self.lr = lr
        self.preprocess = Preprocess(self.spec)
        self.warp_convention = warp_convention

    def stages(self, *, lr_scale: float | None = None) -> dict[str, Stage]:
        scale = self.spec.lr_scale if lr_scale is None else float(lr_scale)
        if not 0.0 < scale <= 1.0:
            raise ConfigError(f"lr_scale must be in (0, 1], got {scale}")
        nonkey = NonKeyStage(
            self.preprocess,
            self.lr,
            lr_scale=scale,
            warp_convention=self.warp_convention,
            key_feature_size=self.hr.feature_size,
            feature_channels=self.spec.feature_channels,
        )
        key = KeyStage(self.preprocess, self.hr)
        return {"key": key.train(self.training), "nonkey": nonkey.train(self.training)}

    def checkpoint_parts(self) -> dict[str, nn.Module]:
        return {"hr": self.hr, "lr": self.lr}

    def feature_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the key features (and of the motion the nonkey stage takes) for height x width frames."""
        return self.hr.feature_size(height, width)


# --- weight specs and builders ---------------------------------------------------------------------------------

CAMVID_MEAN = (0.39068785, 0.40521392, 0.41434407)
CAMVID_STD = (0.29652068, 0.30514979, 0.30080369)
CITYSCAPES_BISENET_MEAN = (0.3257, 0.3690, 0.3223)  # CoinCheung's statistics (the Cityscapes HR BiSeNet)
CITYSCAPES_BISENET_STD = (0.2112, 0.2148, 0.2115)

_SEED = dict(
    seed="AR-Seg (CVPR 2023)",
    paper="Hu et al., Efficient Semantic Segmentation by Altering Resolutions for Compressed Videos, CVPR 2023",
    license="see the seed repository",
    lr_scale=0.5,
    methods=("per-frame", "arseg"),
    logits_align_corners=True,
)

_AR_WEIGHTS = ("HR.pth,AR.pth, or the folder checkpoints/{folder} holding HR/ and AR/, from "
               "github.com/THU-LYJ-Lab/AR-Seg (README, 'checkpoints')")

ARSEG_SPECS: dict[str, ModelSpec] = {
    "arseg-psp18-camvid": ModelSpec(
        name="arseg-psp18-camvid",
        weights_hint=_AR_WEIGHTS.format(folder="camvid-psp18"),
        num_classes=12,
        mean=CAMVID_MEAN,
        std=CAMVID_STD,
        palette="camvid12",
        input_size=(720, 960),
        feature_channels=64,
        feature_stride=1,
        logits_stride=1,
        source="THU-LYJ-Lab/AR-Seg: model/pspnet.py PSPNet / PSPNetWithFuse, model/extractors.py",
        notes="Logits are log-probabilities (LogSoftmax over classes). CamVid 12 classes incl. void (11). "
        "Checkpoints: checkpoints/camvid-psp18/{HR,AR}/PSPNet_resnet18_<scale>_<epoch>_.pth.",
        **_SEED,
    ),
    "arseg-bise18-camvid": ModelSpec(
        name="arseg-bise18-camvid",
        weights_hint=_AR_WEIGHTS.format(folder="camvid-bise18"),
        num_classes=12,
        mean=CAMVID_MEAN,
        std=CAMVID_STD,
        palette="camvid12",
        input_size=(720, 960),
        feature_channels=256,
        feature_stride=8,
        logits_stride=8,
        logits_upsample=LOGITS_UPSAMPLE,
        source="THU-LYJ-Lab/AR-Seg: model/bisenet.py BiSeNetV1 / BiSeNetV1WithFuse",
        notes="Stages return stride-8 logits; the seed's x8 bilinear (align_corners=False) upsampling happens in "
        "the labels step. The LR feature is 46x60 at 360x480 (nearest x2 in the context path).",
        **_SEED,
    ),
    "arseg-psp18-cityscapes": ModelSpec(
        name="arseg-psp18-cityscapes",
        weights_hint=_AR_WEIGHTS.format(folder="cityscapes-psp18"),
        num_classes=19,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        palette="cityscapes19",
        input_size=(1024, 2048),
        feature_channels=512,
        feature_stride=8,
        logits_stride=8,
        source="THU-LYJ-Lab/AR-Seg: model/pspnet_semseg.py PSPNetWithFuse, model/extractors.py",
        notes="Raw logits at stride 8. The HR file has no fuse_attention.* (loaded as optional).",
        **_SEED,
    ),
    "arseg-bise18-cityscapes": ModelSpec(
        name="arseg-bise18-cityscapes",
        weights_hint=_AR_WEIGHTS.format(folder="cityscapes-bise18"),
        num_classes=19,
        mean=CITYSCAPES_BISENET_MEAN,
        std=CITYSCAPES_BISENET_STD,
        palette="cityscapes19",
        input_size=(1024, 2048),
        feature_channels=256,
        feature_stride=8,
        logits_stride=8,
        logits_upsample=LOGITS_UPSAMPLE,
        source="THU-LYJ-Lab/AR-Seg: model/bisenet.py BiSeNetV1 / BiSeNetV1WithFuse (HR from CoinCheung/BiSeNet)",
        notes="Stages return stride-8 logits; the seed's x8 bilinear (align_corners=False) upsampling happens in "
        "the labels step.",
        **_SEED,
    ),
}


def _hr_spec(name: str) -> ModelSpec:
    """The spec of an AR-Seg HR net registered alone (per-frame)."""
    spec = ARSEG_SPECS[f"arseg-{name}"]
    hint = spec.weights_hint.replace("HR.pth,AR.pth, or the folder ", "HR.pth: the HR/ file of ").replace(
        " holding HR/ and AR/", "")
    return dataclasses.replace(spec, name=name, methods=("per-frame",), notes=f"AR-Seg's HR net. {spec.notes}",
                               weights_hint=hint)


def _with_creff(net: nn.Module) -> nn.Module:
    net.fuse_attention = CReFF(net.feature_channels)
    return net


def _arseg_net(kind: str, num_classes: int, *, fuse: bool) -> nn.Module:
    if kind == "psp18-camvid":
        net = PSPNetCamVid(num_classes)
    elif kind == "psp18-cityscapes":
        net = PSPNetSemseg(num_classes, cls_dim=512, final_conv_alias=True)
    else:
        net = BiSeNetV1(num_classes)
    net.checkpoint_layout = "arseg"
    return _with_creff(net) if fuse else net


def _hr_net(kind: str, num_classes: int) -> nn.Module:
    if kind == "psp18-cityscapes":  # the seed's HR net is PSPNetWithFuse; its HR file lacks fuse_attention.*
        net = _arseg_net(kind, num_classes, fuse=True)
        net.checkpoint_optional = (*getattr(net, "checkpoint_optional", ()), "fuse_attention.")
        return net
    return _arseg_net(kind, num_classes, fuse=False)


def _build_pair(kind: str, warp_convention: str) -> ARSegModel:
    spec = ARSEG_SPECS[f"arseg-{kind}"]
    hr = _hr_net(kind, spec.num_classes)
    lr = _arseg_net(kind, spec.num_classes, fuse=True)
    return ARSegModel(spec, hr, lr, warp_convention=warp_convention)


def _build_hr(kind: str) -> PerFrameModel:
    spec = _hr_spec(kind)
    return PerFrameModel(spec, _hr_net(kind, spec.num_classes))


@register_model("arseg-psp18-camvid")
def arseg_psp18_camvid(*, warp_convention: str = "arseg") -> ARSegModel:
    """AR-Seg PSPNet-18 pair, CamVid (12 classes), CReFF on the 64-channel full-resolution feature."""
    return _build_pair("psp18-camvid", warp_convention)


@register_model("arseg-bise18-camvid")
def arseg_bise18_camvid(*, warp_convention: str = "arseg") -> ARSegModel:
    """AR-Seg BiSeNetV1-18 pair, CamVid (12 classes)."""
    return _build_pair("bise18-camvid", warp_convention)


@register_model("arseg-psp18-cityscapes")
def arseg_psp18_cityscapes(*, warp_convention: str = "arseg") -> ARSegModel:
    """AR-Seg PSPNet-18 (semseg layout) pair, Cityscapes (19 classes)."""
    return _build_pair("psp18-cityscapes", warp_convention)


@register_model("arseg-bise18-cityscapes")
def arseg_bise18_cityscapes(*, warp_convention: str = "arseg") -> ARSegModel:
    """AR-Seg BiSeNetV1-18 pair, Cityscapes (19 classes)."""
    return _build_pair("bise18-cityscapes", warp_convention)


@register_model("psp18-camvid")
def psp18_camvid() -> PerFrameModel:
    """AR-Seg's CamVid HR PSPNet-18 alone (per-frame)."""
    return _build_hr("psp18-camvid")


@register_model("bise18-camvid")
def bise18_camvid() -> PerFrameModel:
    """AR-Seg's CamVid HR BiSeNetV1-18 alone (per-frame)."""
    return _build_hr("bise18-camvid")


@register_model("psp18-cityscapes")
def psp18_cityscapes() -> PerFrameModel:
    """AR-Seg's Cityscapes HR PSPNet-18 alone (per-frame)."""
    return _build_hr("psp18-cityscapes")


@register_model("bise18-cityscapes")
def bise18_cityscapes() -> PerFrameModel:
    """AR-Seg's Cityscapes HR BiSeNetV1-18 (CoinCheung's weights) alone (per-frame)."""
    return _build_hr("bise18-cityscapes")

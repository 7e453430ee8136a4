"""GSVNet: keyframe segnet + light optical flow + guided spatially-varying refinement (robert80203/GSVNet).

Lee et al., "GSVNet: Guided Spatially-Varying Convolution for Fast Semantic Segmentation on Video" (ICME 2021).
Written from reference/gsvnet.md (§1-§5, §13); module names mirror the seed's so that its files load:

| part   | module                                | seed file (entry)                          | keys              |
|--------|---------------------------------------|--------------------------------------------|-------------------|
| segnet | `SwiftNet`                            | cityscapes-swnet-R18.pt                    | backbone.*, logits.* |
| segnet | `BiSeNetGSV`                          | cityscapes-bisenet-R18.pth ("state_dict")  | context_path.*, ... |
| flow   | `FlowLight`                           | gsvnet_*_r18.tar ("state_dict_of")         | conv1.0.*, ...    |
| flow   | `GSVFlowNetS` (flow="flownets")       | gsvnet_*_r18.tar ("state_dict_of")         | deconv5.0.*, ...  |
| gsv    | `End2End(GuidedSpatiallyVaryingConv)` | gsvnet_*_r18.tar ("state_dict")            | grm.*             |

Per frame (H x W full resolution, h = H // 8, w = W // 8; `bil` = bilinear, align_corners=True):

    key:    S = bil(segnet(bil(norm_rgb(I), (H//4*3, W//4*3))), (h, w))        # 0.75 scale at inference
    flow:   F = bil(FlowLight(cat[bil(norm_bgr(I_t), (h,w)), bil(norm_bgr(I_t-1), (h,w))]), (h, w)) / 4
    refine: S_t = GSV(warp(S_t-1, F, "gsvnet"), bil(norm_bgr(I_t), (h, w)))

- Flow choice (`--optical-flow-network` in the seed): "light" (FlowLight, the default) or "flownets" (GSVNet's
  FlowNetS, `vidseg.models.flownet.GSVFlowNetS`, registered as `gsvnet-*-flownets`). FlowNetS takes the pair in
  the other order, cat[previous, current] (gsvnet_trainer.py forward), and returns its raw flow at 1/8 of its
  input (1/64 of the frame); both are upsampled to h x w without rescaling and divided by 4, so the flow stage's
  units and direction are the same for both choices.
- The segnet sees RGB; the flow net and the GSV nets see the same per-channel normalisation in **BGR** order
  (GSVNet's loader flips the channels and `tensor_flip_channel` flips them back for the segnet only).
- FlowLight's raw output is at 1/32 of the frame; it is upsampled to h x w *without* rescaling the values and
  divided by 4 (`MC_Module_Batch`): the flow stage returns that, i.e. pixels of the h x w grid, backward
  (p + F(p) in the previous frame). The warp uses GSVNet's align_corners=True grid (zero flow = identity).
- GSV: intra net on the low-res image -> A (19 ch); binary Laplacian edge map of argmax(S^) (zero padding, so the
  border is an edge unless the label there is 0); guiding net on cat[A, E] -> 11 ReLU weights, normalised by their
  sum + 1e-9; out = sum of weights x [S^, 8 one-pixel shifts of S^, 0, A] (`kernels.reference.guided_sv_conv`).
- The state propagated between frames is the previous *refined* logits; the keyframe logits already pass through
  the 1/8 bottleneck.

Generalisation beyond the seed: the guiding net's two x2 upsamplings resize to the exact size of the matching
encoder map, so h and w need not be multiples of 4 (the seed requires H, W divisible by 32; results are identical
there).
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidseg.errors import ConfigError
from vidseg.kernels import ops
from vidseg.models.base import ModelSpec, Preprocess, Stage, VideoSegModel
from vidseg.models.bisenet_gsv import BISENET_GSV_MEAN_RGB, BISENET_GSV_STD_RGB, BiSeNetGSV
from vidseg.models.flownet import GSV_FLOWNETS_PARAMS, GSVFlowNetS
from vidseg.models.gsv import (
    End2End,
    GuidedSpatiallyVaryingConv,
    GuidingNetwork,
    IdealDelayKernels,
    IntraNetwork,
    gsv_edge_map,
    ideal_delay_filters,
)
from vidseg.models.registry import register_model
from vidseg.models.swiftnet import SWIFTNET_MEAN_RGB, SWIFTNET_STD_RGB, SwiftNet, scaled_size

__all__ = [
    "FlowLight",
    "IdealDelayKernels",
    "IntraNetwork",
    "GuidingNetwork",
    "GuidedSpatiallyVaryingConv",
    "End2End",
    "GSVKeyStage",
    "GSVFlowStage",
    "GSVRefineStage",
    "GSVNetModel",
    "ideal_delay_filters",
    "gsv_edge_map",
    "gsvnet_swiftnet18",
    "gsvnet_bisenet18",
    "GSVNET_SWIFTNET18_CITYSCAPES",
    "GSVNET_BISENET18_CITYSCAPES",
    "GSVNET_SWIFTNET18_FLOWNETS_CITYSCAPES",
    "GSVNET_BISENET18_FLOWNETS_CITYSCAPES",
    "FLOW_NETWORKS",
    "gsvnet_swiftnet18_flownets",
    "gsvnet_bisenet18_flownets",
]

# Units: the seed divides the (unscaled, upsampled) flow net output by this before warping.
FLOW_DIVISOR = 4.0


def _bil(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def low_res_size(height: int, width: int) -> tuple[int, int]:
    """The grid of logits, flow and refinement: 1/8 of the frame, floored (`height // 8`, as the seed)."""
    return height // 8, width // 8


# --------------------------------------------------------------------------------------------------------------
# Light optical flow net (model/flownet/networks.py, FlowLight)


def _conv_bn_lrelu(cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dilation),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.1, inplace=True),
    )


class FlowLight(nn.Module):
    """6-ch (current, previous) image pair -> raw 2-ch flow (x, y) at 1/4 of the input resolution."""

    checkpoint_entry = "state_dict_of"  # where the seed's gsvnet_*.tar keeps this part

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        c2 = channels * 2
        self.conv1 = _conv_bn_lrelu(6, channels, 3, stride=2)
        self.conv2 = _conv_bn_lrelu(channels, c2, 3, stride=2)
        self.conv_dilate_1 = _conv_bn_lrelu(c2, c2, 3, dilation=1)
        self.conv_dilate_2 = _conv_bn_lrelu(c2, c2, 3, dilation=2)
        self.conv_dilate_3 = _conv_bn_lrelu(c2, c2, 3, dilation=4)
        self.conv_dilate_4 = _conv_bn_lrelu(c2, c2, 3, dilation=8)
        self.conv_merge = _conv_bn_lrelu(c2 * 4, c2, 1)
        self.toflow = nn.Conv2d(c2, 2, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv2(self.conv1(x))
        x1 = self.conv_dilate_1(x)
        x2 = self.conv_dilate_2(x) + x1
        x3 = self.conv_dilate_3(x) + x2
        x4 = self.conv_dilate_4(x) + x3
        out = self.conv_merge(torch.cat((x1, x2, x3, x4), dim=1)) + x
        return self.toflow(out)


# --------------------------------------------------------------------------------------------------------------
# Stages


class GSVKeyStage(Stage):
    """image (uint8 RGB, full res) -> logits = features [N,19,H//8,W//8] (segnet at `key_scale`, resized)."""

    input_names = ("image",)
    output_names = ("logits", "features")

    def __init__(self, preprocess: Preprocess, segnet: nn.Module, key_scale: float) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.segnet = segnet
        self.key_scale = float(key_scale)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        height, width = int(image.shape[-2]), int(image.shape[-1])
        x = self.preprocess(image)
        if self.key_scale != 1.0:
            x = _bil(x, (scaled_size(height, self.key_scale), scaled_size(width, self.key_scale)))
        logits = _bil(self.segnet(x), low_res_size(height, width))
        return logits, logits


class GSVFlowStage(Stage):
    """image, ref_image (uint8 RGB, full res; ref = previous frame) -> flow [N,2,H//8,W//8] in pixels of that grid,
    backward: p + flow(p) is where p was in ref_image. `reference_first`: the net takes cat[ref, current]
    (GSVNet's FlowNetS) instead of cat[current, ref] (FlowLight)."""

    input_names = ("image", "ref_image")
    output_names = ("flow",)

    def __init__(self, preprocess_bgr: Preprocess, flownet: nn.Module, *, reference_first: bool = False) -> None:
        super().__init__()
        self.preprocess = preprocess_bgr
        self.flownet = flownet
        self.reference_first = reference_first

    def forward(self, image: Tensor, ref_image: Tensor) -> tuple[Tensor]:
        size = low_res_size(int(image.shape[-2]), int(image.shape[-1]))
        cur = _bil(self.preprocess(image), size)
        prev = _bil(self.preprocess(ref_image), size)
        pair = (prev, cur) if self.reference_first else (cur, prev)
        raw = self.flownet(torch.cat(pair, dim=1))
        return (_bil(raw, size) / FLOW_DIVISOR,)


class GSVRefineStage(Stage):
    """image (uint8 RGB, full res), prev_logits [N,19,H//8,W//8], flow [N,2,H//8,W//8] -> logits (same grid)."""

    input_names = ("image", "prev_logits", "flow")
    output_names = ("logits",)

    def __init__(self, preprocess_bgr: Preprocess, gsv: End2End, num_classes: int) -> None:
        super().__init__()
        self.preprocess = preprocess_bgr
        self.gsv = gsv
        self.num_classes = num_classes

    def input_shapes(self, height: int, width: int, batch: int = 1) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        h, w = low_res_size(height, width)
        return {
            "image": ((batch, 3, height, width), torch.uint8),
            "prev_logits": ((batch, self.num_classes, h, w), torch.float32),
            "flow": ((batch, 2, h, w), torch.float32),
        }

    def forward(self, image: Tensor, prev_logits: Tensor, flow: Tensor) -> tuple[Tensor]:
        size = low_res_size(int(image.shape[-2]), int(image.shape[-1]))
        low = _bil(self.preprocess(image), size)
        warped = ops.warp(prev_logits, flow, "gsvnet")
        return (self.gsv(warped, low),)


# --------------------------------------------------------------------------------------------------------------
# Model


FLOW_NETWORKS = ("light", "flownets")


class GSVNetModel(VideoSegModel):
    """GSVNet with a SwiftNet-R18 or BiSeNet-R18 keyframe network and the light or FlowNetS flow; methods
    "per-frame" (key stage on every frame) and "flowwarp" (key / flow + refine)."""

    def __init__(self, spec: ModelSpec, segnet: nn.Module, *, key_scale: float = 0.75, flow: str = "light") -> None:
        super().__init__()
        if not 0.0 < key_scale <= 1.0:
            raise ConfigError(f"GSVNet key_scale must be in (0, 1], got {key_scale}")
        if flow not in FLOW_NETWORKS:
            raise ConfigError(f"unknown GSVNet flow network {flow!r}; choose one of {', '.join(FLOW_NETWORKS)}")
        self.spec = spec
        self.key_scale = float(key_scale)
        self.flow = flow
        self.segnet = segnet
        self.flownet = FlowLight() if flow == "light" else GSVFlowNetS()
        self.gsv = End2End(GuidedSpatiallyVaryingConv(spec.num_classes))
        self.preprocess = Preprocess(spec)
        # Flow and GSV nets: the same per-channel statistics, in BGR order.
        bgr = replace(spec, channel_order="BGR", mean=spec.mean[::-1], std=spec.std[::-1])
        self.preprocess_bgr = Preprocess(bgr)

    def stages(self, *, lr_scale: float | None = None) -> dict[str, Stage]:
        self.gsv.grm.ideal_dk.refresh()
        stages: dict[str, Stage] = {
            "key": GSVKeyStage(self.preprocess, self.segnet, self.key_scale),
            "flow": GSVFlowStage(self.preprocess_bgr, self.flownet, reference_first=self.flow == "flownets"),
            "refine": GSVRefineStage(self.preprocess_bgr, self.gsv, self.spec.num_classes),
        }
        for stage in stages.values():
            stage.train(self.training)  # the wrappers follow the model's mode (their modules are shared)
        return stages

    def checkpoint_parts(self) -> dict[str, nn.Module]:
        return {"segnet": self.segnet, "flow": self.flownet, "gsv": self.gsv}

    def feature_size(self, height: int, width: int) -> tuple[int, int]:
        return low_res_size(height, width)


# --------------------------------------------------------------------------------------------------------------
# Weight specs and builders

_GSV_SOURCE = (
    "robert80203/GSVNet: trainer/gsvnet_trainer.py (forward, transforms), model/flownet/networks.py (FlowLight), "
    "model/warp/{mc_mod,grid_sampler}.py, model/gsv/network.py, model/intra/networks.py, model/guide/networks.py"
)
_GSV_PAPER = (
    "Lee et al., GSVNet: Guided Spatially-Varying Convolution for Fast Semantic Segmentation on Video, ICME 2021"
)
_GSV_NOTES = (
    "Key stage: segnet at 0.75 input scale, logits resized (align_corners=True) to 1/8 of the frame. Flow and refine "
    "stages normalise in BGR order (mean/std reversed); the flow is the seed's raw output upsampled without "
    "rescaling and divided by 4, in pixels of the 1/8 grid. README: SN-R18 l=3 avg 72.5 / min 70.3 mIoU."
)

GSVNET_SWIFTNET18_CITYSCAPES = ModelSpec(
    weights_hint="cityscapes-swnet-R18.pt,gsvnet_swnet_r18.tar, from github.com/robert80203/GSVNet (weights/)",
    name="gsvnet-swiftnet18",
    num_classes=19,
    mean=SWIFTNET_MEAN_RGB,
    std=SWIFTNET_STD_RGB,
    scale=1.0,
    channel_order="RGB",
    palette="cityscapes19",
    input_size=(1024, 2048),
    feature_channels=19,
    feature_stride=8,
    logits_stride=8,
    logits_align_corners=True,
    methods=("per-frame", "flowwarp"),
    seed="GSVNet (ICME 2021)",
    source=_GSV_SOURCE + "; segnet model/swiftnet (weights/cityscapes-swnet-R18.pt), GSV + flow "
    "weights/gsvnet_swnet_r18.tar",
    paper=_GSV_PAPER,
    license="not stated in the GSVNet repository",
    notes=_GSV_NOTES,
    extra={"key_scale": 0.75, "flow_channel_order": "BGR", "keyframe_interval": 3, "params": 12_193_558},
)

GSVNET_BISENET18_CITYSCAPES = replace(
    GSVNET_SWIFTNET18_CITYSCAPES,
    name="gsvnet-bisenet18",
    mean=BISENET_GSV_MEAN_RGB,
    std=BISENET_GSV_STD_RGB,
    scale=255.0,
    source=_GSV_SOURCE + "; segnet model/bisenet/bisenet_resnet18.py (weights/cityscapes-bisenet-R18.pth, entry "
    "'state_dict' or 'model'), GSV + flow weights/gsvnet_bisenet_r18.tar",
    notes=_GSV_NOTES.replace("SN-R18 l=3 avg 72.5 / min 70.3", "BN-R18 l=3 avg 72.0 / min 70.5"),
    weights_hint="cityscapes-bisenet-R18.pth,gsvnet_bisenet_r18.tar, from github.com/robert80203/GSVNet (weights/)",
    extra={"key_scale": 0.75, "flow_channel_order": "BGR", "keyframe_interval": 3, "params": 13_891_264},
)


def _flownets_spec(spec: ModelSpec) -> ModelSpec:
    """The same GSVNet with its FlowNetS flow (`--optical-flow-network flownet`)."""
    extra = dict(spec.extra, flow="flownets", params=int(spec.extra["params"]) - 186_402 + GSV_FLOWNETS_PARAMS)
    return replace(spec, name=spec.name + "-flownets", extra=extra,
                   weights_hint=spec.weights_hint.replace("_r18.tar,", "_r18.tar (FlowNetS under state_dict_of),"),
                   notes=spec.notes.split(" README:")[0] + " Flow: GSVNet's FlowNetS (cat[previous, current], raw "
                   "flow at 1/64 of the frame); the README reports no numbers for this option.")


GSVNET_SWIFTNET18_FLOWNETS_CITYSCAPES = _flownets_spec(GSVNET_SWIFTNET18_CITYSCAPES)
GSVNET_BISENET18_FLOWNETS_CITYSCAPES = _flownets_spec(GSVNET_BISENET18_CITYSCAPES)


def _spec_for(spec: ModelSpec, num_classes: int, flow: str) -> ModelSpec:
    if flow == "flownets":
        spec = _flownets_spec(spec)
    return spec if num_classes == spec.num_classes else replace(spec, num_classes=num_classes)


@register_model("gsvnet-swiftnet18")
def gsvnet_swiftnet18(*, num_classes: int = 19, key_scale: float = 0.75, flow: str = "light") -> GSVNetModel:
    """GSVNet with SwiftNet-R18 keyframes (Cityscapes); flow "light" (default) or "flownets"."""
    spec = _spec_for(GSVNET_SWIFTNET18_CITYSCAPES, num_classes, flow)
    return GSVNetModel(spec, SwiftNet(num_classes), key_scale=key_scale, flow=flow)


@register_model("gsvnet-bisenet18")
def gsvnet_bisenet18(*, num_classes: int = 19, key_scale: float = 0.75, flow: str = "light") -> GSVNetModel:
    """GSVNet with BiSeNet-R18 (TorchSeg layout) keyframes (Cityscapes); flow "light" (default) or "flownets"."""
    spec = _spec_for(GSVNET_BISENET18_CITYSCAPES, num_classes, flow)
    return GSVNetModel(spec, BiSeNetGSV(num_classes), key_scale=key_scale, flow=flow)


@register_model("gsvnet-swiftnet18-flownets")
def gsvnet_swiftnet18_flownets(*, num_classes: int = 19, key_scale: float = 0.75) -> GSVNetModel:
    """GSVNet with SwiftNet-R18 keyframes and GSVNet's FlowNetS flow (Cityscapes)."""
    return gsvnet_swiftnet18(num_classes=num_classes, key_scale=key_scale, flow="flownets")


@register_model("gsvnet-bisenet18-flownets")
def gsvnet_bisenet18_flownets(*, num_classes: int = 19, key_scale: float = 0.75) -> GSVNetModel:
    """GSVNet with BiSeNet-R18 keyframes and GSVNet's FlowNetS flow (Cityscapes)."""
    return gsvnet_bisenet18(num_classes=num_classes, key_scale=key_scale, flow="flownets")

"""SwNet-seq ("Video sequence semantic segmentation", shared/seeds/001): SwiftNet-R18 keyframes, FlowNet2-S flow
from the keyframe, the keyframe's logits warped to every non-keyframe.

The seed's repository is GSVNet's training code (its main.py builds `GSVNet_Trainer` with the same options, and its
README links the same FlowNet2-S file as GSVNet's) with a SwiftNet keyframe network and NVIDIA's FlowNet2-S. Its
README states the algorithm and the numbers (Cityscapes val, Tesla V100 and GTX 1060); the code of its
non-keyframe step is not among our references, so the choices below that the README does not fix are marked
*vidseg's choice*.

Stages (h x w: the logits grid, below):
- key: image -> logits [N,19,h,w], features [N,128,h,w]: SwiftNet-R18 on the frame resized to `input_scale` (0.75,
  the seed's --eval-scale; bilinear, align_corners=True, `n//4*3` as GSVNet), output stride 4 of the scaled frame.
- flow: image, ref_image -> flow [N,2,h,w]: FlowNet2-S (`vidseg.models.flownet.FlowNet2S`) between the current
  frame and the keyframe, both resized to h x w.
- refine: prev_logits, flow -> logits [N,19,h,w]: backward warp of the keyframe's logits by the flow (no weights).

- Grid: h x w = SwiftNet's stride-4 grid of the scaled frame (192x384 for 1024x2048 at 0.75; 128x256 at 0.5 and
  256x512 at 1.0 - multiples of 64 at the seed's three scales, so FlowNet2-S runs there exactly as NVIDIA's, with
  no padding). *vidseg's choice*: the flow runs on that grid and the warp happens there, on the 19-channel
  logits (not on the 128-channel features, nor upsampled to the frame). It is cheap enough for the README's
  frames/s (a non-keyframe costs 5.9 GMACs against SwiftNet's 58.3 at 0.75), and the README's SwiftNet-only
  rows (i = 0) are the same key stage.
- Flow: units = pixels of the h x w grid; direction: `FlowNet2S.flow(current, keyframe)`, so current(p) ~
  keyframe(p + flow(p)) - the backward map the engine's warp needs. Frames are fed as NVIDIA's inference feeds
  them: RGB in [0, 255], rgb_max 255, per-channel mean of the pair subtracted inside.
- Warp: `ops.warp(logits, flow, "gsvnet")`: bilinear, sample point exactly p + flow(p), zero outside the map
  (GSVNet's MC module, which the seed's code base uses; the same mapping as "exact").
- Method: `flowwarp` with `ModelSpec.flow_reference = "key"`: the flow is computed from the keyframe and the
  keyframe's logits are warped to each non-keyframe; nothing is carried from non-keyframes. The seed's interval
  i counts the non-keyframes between keys: `--keyframe-interval i+1`.
- Evaluation: the seed's avg mIoU pools the confusion matrices over distances 0..i and its min mIoU is the worst
  distance (the last non-keyframe): `vidseg-eval --model swnet-seq --method flowwarp --keyframe-interval i+1`
  prints both (GSVNet's protocol, which its trainer shares). The README's "min IoU w/ edge" column comes from an
  edge refinement whose code is not among our references; the pure warp here is its "wo edge" setting.

Checkpoints: `--weights cityscapes-swnet-R18.pt,FlowNet2-S_checkpoint.pth.tar` (parts "segnet" then "flow"),
both loaded strictly with weights_only. 11,797,071 + 38,676,506 = 50,473,577 parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import Tensor, nn

from vidseg.errors import ConfigError
from vidseg.kernels import ops
from vidseg.models.base import ModelSpec, Preprocess, Stage, VideoSegModel
from vidseg.models.flownet import FLOWNET2S_PARAMS, FlowNet2S, FlowNet2SFlowStage
from vidseg.models.registry import register_model
from vidseg.models.swiftnet import SWIFTNET18_CITYSCAPES, SwiftNet, SwiftNetKeyStage, scaled_size

__all__ = [
    "KeyWarpStage",
    "SwNetSeqModel",
    "swnet_seq",
    "SWNET_SEQ_CITYSCAPES",
    "SWNET_SEQ_SCALES",
]

SWNET_SEQ_SCALES = {"swnet-seq": 0.75, "swnet-seq-0.5": 0.5, "swnet-seq-1.0": 1.0}


class KeyWarpStage(Stage):
    """prev_logits [N,K,h,w] (the keyframe's), flow [N,2,h,w] (pixels of that grid, backward) -> logits: the
    keyframe's logits warped to the current frame; nothing learned."""

    input_names = ("prev_logits", "flow")
    output_names = ("logits",)

    def __init__(self, num_classes: int, grid: Callable[[int, int], tuple[int, int]]) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.grid = grid  # (H, W) -> (h, w)

    def input_shapes(self, height: int, width: int, batch: int = 1) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        h, w = self.grid(height, width)
        return {"prev_logits": ((batch, self.num_classes, h, w), torch.float32),
                "flow": ((batch, 2, h, w), torch.float32)}

    def forward(self, prev_logits: Tensor, flow: Tensor) -> tuple[Tensor]:
        return (ops.warp(prev_logits, flow, "gsvnet"),)


class SwNetSeqModel(VideoSegModel):
    """SwiftNet-R18 (key) + FlowNet2-S (flow) + warp of the keyframe's logits (refine); see the module doc."""

    def __init__(self, spec: ModelSpec, *, input_scale: float = 0.75) -> None:
        super().__init__()
        if not 0.0 < input_scale <= 1.0:
            raise ConfigError(f"SwNet-seq input_scale must be in (0, 1], got {input_scale}")
        self.spec = spec
        self.input_scale = float(input_scale)
        self.segnet = SwiftNet(spec.num_classes)
        self.flownet = FlowNet2S()
        self.preprocess = Preprocess(spec)

    def logits_size(self, height: int, width: int) -> tuple[int, int]:
        """The grid of the key logits, the flow and the warp for frames of height x width."""
        return SwiftNet.feature_size(scaled_size(height, self.input_scale), scaled_size(width, self.input_scale))

    feature_size = logits_size

    def stages(self, *, lr_scale: float | None = None) -> dict[str, Stage]:
        stages: dict[str, Stage] = {
            "key": SwiftNetKeyStage(self.preprocess, self.segnet, self.input_scale),
            "flow": FlowNet2SFlowStage(self.flownet, self.logits_size),
            "refine": KeyWarpStage(self.spec.num_classes, self.logits_size),
        }
        for stage in stages.values():
            stage.train(self.training)
        return stages

    def checkpoint_parts(self) -> dict[str, nn.Module]:
        return {"segnet": self.segnet, "flow": self.flownet}


_SOURCE = (
    "'Video sequence semantic segmentation' (shared/seeds/001; GSVNet's trainer with SwiftNet + FlowNet2-S): "
    "weights/cityscapes-swnet-R18.pt (SwiftNet-R18, GSVNet's layout) and FlowNet2-S_checkpoint.pth.tar "
    "(NVIDIA/flownet2-pytorch models.py FlowNet2S, networks/FlowNetS.py, networks/submodules.py)"
)

SWNET_SEQ_CITYSCAPES = replace(
    SWIFTNET18_CITYSCAPES,  # the same network, normalisation, classes and input as the per-frame SwiftNet
    name="swnet-seq",
    feature_stride=6,  # ceil(4 / 0.75): the logits grid of the scaled frame
    logits_stride=6,
    logits_align_corners=True,  # GSVNet's evaluation (the seed's code base) resizes logits with align_corners=True
    methods=("per-frame", "flowwarp"),
    flow_reference="key",
    weights_hint="cityscapes-swnet-R18.pt,FlowNet2-S_checkpoint.pth.tar, from github.com/robert80203/GSVNet "
    "(weights/) and NVIDIA/flownet2-pytorch (README, FlowNet2-S)",
    seed="SwNet-seq (Video sequence semantic segmentation)",
    source=_SOURCE,
    paper="Orsic et al., In Defense of Pre-trained ImageNet Architectures for Real-time Semantic Segmentation of "
    "Road-driving Images, CVPR 2019; Ilg et al., FlowNet 2.0: Evolution of Optical Flow Estimation with Deep "
    "Networks, CVPR 2017",
    license="not stated in the seed's repository; FlowNet2-S weights: see NVIDIA/flownet2-pytorch's license",
    notes="Key: SwiftNet-R18 at 0.75 input scale, logits at stride 4 of the scaled frame. Flow: FlowNet2-S between "
    "the current frame and the keyframe on that grid (pixels of the grid, backward). Refine: the keyframe's logits "
    "warped (align_corners=True grid, zeros outside). Interval i of the README = --keyframe-interval i+1. README "
    "(V100): i=2 at 0.75: avg 72.6 / min 70.1 (wo edge) mIoU, 181 frames/s.",
    extra={"key_scale": 0.75, "keyframe_interval": 3, "params": 11_797_071 + FLOWNET2S_PARAMS},
)


@register_model("swnet-seq")
def swnet_seq(*, num_classes: int = 19, input_scale: float = 0.75) -> SwNetSeqModel:
    """SwNet-seq (Cityscapes): SwiftNet-R18 keyframes at `input_scale`, FlowNet2-S, warp of the key logits."""
    spec = SWNET_SEQ_CITYSCAPES
    if input_scale != 0.75 or num_classes != spec.num_classes:
        stride = math.ceil(4 / input_scale)
        name = next((n for n, s in SWNET_SEQ_SCALES.items() if s == input_scale), f"swnet-seq-{input_scale:g}")
        spec = replace(spec, name=name, num_classes=num_classes, feature_stride=stride, logits_stride=stride,
                       extra=dict(spec.extra, key_scale=input_scale),
                       notes=spec.notes.replace("at 0.75 input scale", f"at {input_scale:g} input scale"))
    return SwNetSeqModel(spec, input_scale=input_scale)


@register_model("swnet-seq-0.5")
def swnet_seq_050(*, num_classes: int = 19) -> SwNetSeqModel:
    """SwNet-seq with keyframes at 0.5 input scale (the README's second table)."""
    return swnet_seq(num_classes=num_classes, input_scale=0.5)


@register_model("swnet-seq-1.0")
def swnet_seq_100(*, num_classes: int = 19) -> SwNetSeqModel:
    """SwNet-seq with keyframes at full input scale (the README's second table)."""
    return swnet_seq(num_classes=num_classes, input_scale=1.0)

"""The built-in demo model: a narrow AR-Seg pair (BiSeNetV1-18 at 1/4 width) trained on vidseg's synthetic roads.

It exists so that `vidseg-run` works out of the box, with no download: its weights ship inside the package
(`vidseg/assets/demo.pt`, fp16, under 5 MB) and are reproduced by `vidseg-train demo` (see README). It runs every
method the seeds' AR-Seg pairs run: per-frame (the HR net on every frame) and arseg (HR keyframes, LR branch +
CReFF on non-keyframes fed by codec motion). Its warp is the exact one (it was trained with it), not AR-Seg's
half-pixel-shifted grid, which only the seed's own checkpoints need.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from vidseg.errors import CheckpointError
from vidseg.models.arseg import ARSegModel, CReFF
from vidseg.models.base import ModelSpec
from vidseg.models.bisenet import LOGITS_UPSAMPLE, BiSeNetV1
from vidseg.models.pspnet import IMAGENET_MEAN, IMAGENET_STD
from vidseg.models.registry import register_model

__all__ = ["DEMO_SPEC", "DEMO_WIDTH", "demo_weights_path", "build_demo"]

DEMO_WIDTH = 0.25
DEMO_SPEC = ModelSpec(
    name="demo", num_classes=19, mean=IMAGENET_MEAN, std=IMAGENET_STD, palette="cityscapes19",
    input_size=(256, 512), feature_channels=64, feature_stride=8, logits_stride=8, logits_align_corners=True,
    logits_upsample=LOGITS_UPSAMPLE,
    methods=("per-frame", "arseg"), lr_scale=0.5, builtin_weights=True,
    seed="vidseg (AR-Seg architecture, BiSeNetV1-18 x0.25)",
    source="vidseg/models/demo.py; weights: vidseg-train demo (vidseg/train/demo.py)",
    paper="Hu et al., CVPR 2023 (AR-Seg)", license="Apache-2.0 (vidseg)",
    notes="Trained on synthetic city, suburban and rural road scenes (Cityscapes trainIds) at 256x512; not a "
          "real-world model.",
)


def demo_weights_path() -> Path:
    """Where the packaged demo weights live (they may be absent in a checkout that has not trained them)."""
    return Path(str(resources.files("vidseg.assets") / "demo.pt"))


def build_demo(*, pretrained: bool = True) -> ARSegModel:
    hr = BiSeNetV1(DEMO_SPEC.num_classes, width=DEMO_WIDTH)
    lr = BiSeNetV1(DEMO_SPEC.num_classes, width=DEMO_WIDTH)
    lr.fuse_attention = CReFF(lr.feature_channels)
    model = ARSegModel(DEMO_SPEC, hr, lr, warp_convention="exact")
    if pretrained:
        path = demo_weights_path()
        if not path.is_file():
            raise CheckpointError(
                f"the demo model's weights are not installed ({path} is missing); train them with "
                "`vidseg-train demo --install` or pass --model/--weights"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()}
        model.load_state_dict(state, strict=True)
    return model.eval()


@register_model("demo")
def demo(*, pretrained: bool = True) -> ARSegModel:
    """The built-in demo model (see the module docstring); pretrained=False gives random weights."""
    return build_demo(pretrained=pretrained)

"""The contract between models and everything that runs them.

A model is a set of *stages*: `nn.Module`s with fixed, named tensor inputs and outputs. Every backend (eager,
torch.compile, ONNX Runtime, TensorRT, AOTInductor) runs the same stages and addresses tensors by these names;
the names become the ONNX/TensorRT binding names. Stage names and their tensors:

| stage    | inputs                                              | outputs             | used by              |
|----------|-----------------------------------------------------|---------------------|----------------------|
| key      | image                                               | logits, features    | every method (HR)    |
| nonkey   | image, key_features, motion                         | logits, features    | arseg (LR + CReFF)   |
| flow     | image, ref_image                                    | flow                | flowwarp; arseg (no MVs) |
| refine   | image, prev_logits, flow                            | logits              | flowwarp             |

- image, ref_image: uint8 RGB [N, 3, H, W] at the frame's full resolution; normalisation (and any downscale,
  e.g. the LR branch's) happens inside the stage, so exported engines take raw frames.
- features / key_features: float [N, C, h, w], the model's fusion feature (see `ModelSpec.feature_stride`).
- motion, flow: float32 [N, 2, h, w] backward maps in pixels *of that grid*: for pixel p of the current frame,
  p + m(p) is where it came from in the reference frame (channel 0 = x, channel 1 = y).
- logits, prev_logits: float [N, K, h_o, w_o]; `logits_to_labels` resizes them to the frame and takes argmax
  (after the seed's own final upsample, `ModelSpec.logits_upsample`, where the stage leaves it out).

Stages are positional in `input_names` order and return a tuple in `output_names` order (what ONNX and
torch.export need); `Stage.run(**named)` is the by-name form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from vidseg.classes import LabelSet, label_set
from vidseg.errors import ShapeError
from vidseg.models.labels import logits_to_labels, upsample_logits  # re-exported: the stage contract's last step

__all__ = [
    "ModelSpec",
    "Preprocess",
    "Stage",
    "VideoSegModel",
    "logits_to_labels",
    "upsample_logits",
]

@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to feed a model and interpret its output, next to where its weights come from."""

    name: str
    num_classes: int
    mean: tuple[float, float, float]  # per channel, in the order the network sees (after channel_order)
    std: tuple[float, float, float]
    scale: float = 255.0  # uint8 is divided by this before (x - mean) / std: 255 for [0,1] stats, 1 for [0,255]
    channel_order: str = "RGB"  # "BGR" when the seed feeds BGR (GSVNet's flow/refine nets)
    palette: str = "cityscapes19"  # the label set (vidseg.classes): "cityscapes19", "camvid11", "camvid12"
    input_size: tuple[int, int] = (1024, 2048)  # (H, W) the seed evaluates at
    feature_channels: int = 0
    feature_stride: int = 8  # input pixels per feature pixel (1 for AR-Seg's CamVid PSPNet)
    logits_stride: int = 1  # input pixels per logits pixel of the key stage
    logits_align_corners: bool = True  # how the seed resizes logits to the label map
    # The seed's network ends in a x`logits_upsample` bilinear upsample (align_corners=False) that the stages leave
    # to `logits_to_labels` (BiSeNet: 8), before the resize to the label map above; 1: no such step
    logits_upsample: int = 1
    methods: tuple[str, ...] = ("per-frame",)
    lr_scale: float = 0.5
    # flowwarp: the frame a non-keyframe's flow and warp start from: "previous" (GSVNet: the last frame's
    # result is carried forward) or "key" (SwiftNet-seq: the keyframe's result is warped to every non-keyframe)
    flow_reference: str = "previous"
    # arseg: how codec motion is resized to the key feature grid: "exact" (per-axis area resize) or "arseg"
    # (AR-Seg's evaluation resize, which its released checkpoints were evaluated with)
    motion_convention: str = "exact"
    builtin_weights: bool = False  # trained weights ship with vidseg (the demo): no --weights needed
    weights_hint: str = ""  # what --weights takes for this model and where the seed publishes it
    seed: str = ""  # the seed system, e.g. "AR-Seg (CVPR 2023)"
    source: str = ""  # repository and file of the original definition
    paper: str = ""
    license: str = ""
    notes: str = ""
    extra: Mapping[str, object] = field(default_factory=dict)

    def label_set(self) -> LabelSet:
        """The classes and colours of this model's outputs (`vidseg.classes`), found by `palette`."""
        return label_set(self.palette)


class Preprocess(nn.Module):
    """uint8 RGB [N,3,H,W] -> normalised float in the network's channel order; part of stage 0."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1) * spec.scale
        std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1) * spec.scale
        # Folded into one multiply-add: x * (1/std) - mean/std.
        self.register_buffer("inv_std", 1.0 / std, persistent=False)
        self.register_buffer("shift", mean / std, persistent=False)
        self.bgr = spec.channel_order.upper() == "BGR"

    def forward(self, image: Tensor) -> Tensor:
        return self.normalise(self.to_float(image))

    def to_float(self, image: Tensor) -> Tensor:
        """The first half: float pixels in the network's channel order, not yet normalised. A stage that resizes the
        frame first (AR-Seg's non-key stage) resizes these and normalises the smaller map: the same values up to
        rounding (a bilinear resize commutes with the per-channel affine map), and two fewer full-size passes."""
        x = image.to(self.inv_std.dtype)
        return x.flip(1) if self.bgr else x

    def normalise(self, x: Tensor) -> Tensor:
        return x * self.inv_std - self.shift


class Stage(nn.Module):
    """One deployable step of a model: named tensors in, named tensors out (see the module docstring)."""

    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()

    def input_shapes(self, height: int, width: int, batch: int = 1) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Shape and dtype of each input for frames of height x width; subclasses with non-image inputs extend."""
        shapes: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        for name in self.input_names:
            if name in ("image", "ref_image"):
                shapes[name] = ((batch, 3, height, width), torch.uint8)
            else:
                raise NotImplementedError(f"{type(self).__name__} must describe input {name!r}")
        return shapes

    def example_inputs(self, height: int, width: int, batch: int = 1, seed: int = 0) -> tuple[Tensor, ...]:
        """Seeded inputs of the right shapes (for export, validation and tests)."""
        gen = torch.Generator().manual_seed(seed)
        out = []
        for shape, dtype in self.input_shapes(height, width, batch).values():
            if dtype == torch.uint8:
                out.append(torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8))
            else:
                out.append(torch.randn(shape, generator=gen).to(dtype))
        return tuple(out)

    def run(self, **named: Tensor) -> dict[str, Tensor]:
        missing = [n for n in self.input_names if n not in named]
        if missing:
            raise ShapeError(f"stage {type(self).__name__} needs inputs {list(self.input_names)}, missing {missing}")
        outputs = self(*(named[n] for n in self.input_names))
        return dict(zip(self.output_names, outputs, strict=True))


class VideoSegModel(nn.Module):
    """A registered model: its spec plus the stages it offers.

    Subclasses build their networks in __init__ and return stage modules (sharing the same parameters) from
    `stages()`. `state_dict()` of the model is vidseg's own layout; `vidseg.models.checkpoints` maps the
    seeds' layouts onto it.
    """

    spec: ModelSpec

    def stages(self, *, lr_scale: float | None = None) -> dict[str, Stage]:
        raise NotImplementedError

    @property
    def methods(self) -> tuple[str, ...]:
        return self.spec.methods

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The stages this model offers (`stages()`'s keys)."""
        return tuple(self.stages())

    def checkpoint_parts(self) -> dict[str, nn.Module]:
        """Part name -> submodule whose state_dict has the layout of one seed checkpoint file.

        Submodules mirror the seeds' module names, so a seed file maps onto a part after stripping `module.`
        and folding alias keys. A part module may declare `checkpoint_aliases = {alias_prefix: canonical_prefix}`
        (the same tensor saved twice, e.g. `final_conv.` = `cls.4.`) and `checkpoint_optional = (prefix, ...)`
        (keys a seed's file may lack, e.g. AR-Seg HR files without `fuse_attention.`). Two-branch models
        return e.g. {"hr": ..., "lr": ...}.
        """
        return {"model": self}

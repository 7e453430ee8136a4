"""Validation of an artifact against the PyTorch stage it came from: same inputs, compared outputs.

Inputs are textured frames (`validation_frames`) and seeded maps; figures are the max |difference| of every
float output and, for logits, the fraction of pixels whose argmax agrees. fp32 artifacts must stay within
LOGIT_TOLERANCE and MIN_ARGMAX_AGREEMENT; reduced precisions have their own, looser, tolerance.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from vidseg.errors import ExportError
from vidseg.export.program import example_inputs
from vidseg.models.base import Stage

__all__ = [
    "LOGIT_TOLERANCE",
    "MIN_ARGMAX_AGREEMENT",
    "REDUCED_TOLERANCE",
    "ValidationReport",
    "compare_outputs",
    "validate_onnx",
    "validation_frames",
    "validation_inputs",
]

LOGIT_TOLERANCE = 1e-3  # max |artifact - torch| on float outputs, fp32
MIN_ARGMAX_AGREEMENT = 0.999  # fraction of logits pixels whose argmax must agree
REDUCED_TOLERANCE = 5e-2  # fp16 / bf16 round every layer: a label-level tolerance


@dataclass(frozen=True)
class ValidationReport:
    """An artifact vs PyTorch on the same inputs."""

    frames: int
    max_abs_diff: dict[str, float]  # output name -> max |artifact - torch| over all frames
    argmax_agreement: dict[str, float]  # logits output name -> fraction of pixels with the same argmax
    tolerance: float = LOGIT_TOLERANCE
    min_agreement: float = MIN_ARGMAX_AGREEMENT
    sizes: tuple[tuple[int, int], ...] = ()  # frame sizes (H, W) validated (two for dynamic height/width)

    @property
    def passed(self) -> bool:
        return all(d <= self.tolerance for d in self.max_abs_diff.values()) and all(
            a >= self.min_agreement for a in self.argmax_agreement.values()
        )

    def summary(self) -> str:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in self.max_abs_diff.items())
        agree = ", ".join(f"{k} {100 * v:.3f}%" for k, v in self.argmax_agreement.items())
        verdict = "ok" if self.passed else "FAILED"
        sizes = f" at {', '.join(f'{h}x{w}' for h, w in self.sizes)}" if len(self.sizes) > 1 else ""
        return f"{verdict}{sizes}: max|diff| {diffs}" + (f"; argmax agreement {agree}" if agree else "")

    def to_json(self) -> dict:
        return {
            "frames": self.frames,
            "sizes": [list(s) for s in self.sizes],
            "max_abs_diff": self.max_abs_diff,
            "argmax_agreement": self.argmax_agreement,
            "tolerance": self.tolerance,
            "passed": self.passed,
        }


def validation_frames(height: int, width: int, count: int = 2, seed: int = 0) -> Tensor:
    """Textured uint8 RGB frames [count,3,H,W]: smooth gradients, hard-edged regions and fine noise.

    Natural-image statistics matter for validation: on uniform noise a segmentation net's logits sit near
    decision boundaries everywhere, on a flat image nowhere. Consecutive frames are the scene shifted a few
    pixels, as in video.
    """
    gen = torch.Generator().manual_seed(seed)
    ys = torch.linspace(0, 1, height).view(height, 1)
    xs = torch.linspace(0, 1, width + 4 * count).view(1, -1)
    channels = []
    for c in range(3):
        phase = torch.rand(3, generator=gen) * 2 * math.pi
        base = 0.5 + 0.25 * torch.sin(2 * math.pi * (1.5 + c) * xs + phase[0]) * torch.cos(
            2 * math.pi * (1 + 0.5 * c) * ys + phase[1]
        )
        blocks = (torch.sin(9 * xs + phase[2]) > 0).float() * (torch.cos(7 * ys) > 0.3).float()
        channels.append(base + 0.3 * blocks)
    scene = torch.stack(channels)  # [3, H, W + 4*count]
    frames = []
    for i in range(count):
        view = scene[:, :, 4 * i : 4 * i + width]
        noise = 0.03 * torch.randn(view.shape, generator=gen)
        frames.append(((view + noise).clamp(0, 1) * 255).round().to(torch.uint8))
    return torch.stack(frames)


def validation_inputs(
    stage: Stage, height: int, width: int, *, batch: int = 1, frames: Tensor | None = None, seed: int = 0
) -> list[tuple[Tensor, ...]]:
    """Input sets (input_names order) for validation: real frames for images, seeded maps for the rest.

    One set per `batch` frames; `ref_image` is the frame after `image` (wrapping), as a flow stage sees.
    """
    frames = frames if frames is not None else validation_frames(height, width, count=max(2, batch))
    if frames.dtype != torch.uint8 or tuple(frames.shape[1:]) != (3, height, width):
        raise ExportError(
            f"validation frames must be uint8 [N,3,{height},{width}], got {frames.dtype} {tuple(frames.shape)}"
        )
    count = max(1, frames.shape[0] // batch)
    sets = []
    for i in range(count):
        idx = torch.arange(i * batch, (i + 1) * batch) % frames.shape[0]
        randoms = example_inputs(stage, height, width, batch, seed=seed + i)
        inputs = []
        for name, default in zip(stage.input_names, randoms, strict=True):
            if name == "image":
                inputs.append(frames[idx].contiguous())
            elif name == "ref_image":
                inputs.append(frames[(idx + 1) % frames.shape[0]].contiguous())
            else:
                inputs.append(default)
        sets.append(tuple(inputs))
    return sets


def compare_outputs(
    reference: Callable[..., Sequence[Tensor]],
    candidate: Callable[..., Sequence[Tensor]],
    output_names: Sequence[str],
    input_sets: Sequence[tuple[Tensor, ...]],
    *,
    tolerance: float = LOGIT_TOLERANCE,
    sizes: Sequence[tuple[int, int]] = (),
) -> ValidationReport:
    """Run `reference` (the PyTorch stage) and `candidate` (the artifact) on every input set and compare."""
    max_diff = {n: 0.0 for n in output_names}
    agree: dict[str, int] = {}
    total: dict[str, int] = {}
    for inputs in input_sets:
        with torch.no_grad():
            want = reference(*inputs)
            got = candidate(*inputs)
        for name, g, w in zip(output_names, got, want, strict=True):
            g, w = g.detach().float().cpu(), w.detach().float().cpu()
            if g.shape != w.shape:
                raise ExportError(f"artifact output {name!r} has shape {tuple(g.shape)}, PyTorch {tuple(w.shape)}")
            max_diff[name] = max(max_diff[name], (g - w).abs().max().item())
            if "logits" in name:
                agree[name] = agree.get(name, 0) + int((g.argmax(1) == w.argmax(1)).sum())
                total[name] = total.get(name, 0) + g.argmax(1).numel()
    return ValidationReport(
        frames=len(input_sets),
        max_abs_diff=max_diff,
        argmax_agreement={n: agree[n] / total[n] for n in agree},
        tolerance=tolerance,
        sizes=tuple(sizes),
    )


def validate_onnx(
    path: str | os.PathLike,
    stage: Stage,
    input_sets: Sequence[tuple[Tensor, ...]],
    *,
    sizes: Sequence[tuple[int, int]] = (),
) -> ValidationReport:
    """Run the ONNX graph (ONNX Runtime, CPU) and the PyTorch stage on the same inputs and compare."""
    from vidseg.export.ort_session import cpu_session

    session = cpu_session(str(path))
    names = list(stage.output_names)

    def run_onnx(*inputs: Tensor) -> list[Tensor]:
        feed = {n: t.numpy() for n, t in zip(stage.input_names, inputs, strict=True)}
        return [torch.from_numpy(a) for a in session.run(names, feed)]

    return compare_outputs(stage.eval(), run_onnx, names, input_sets, sizes=sizes)

"""torch.export of one stage, with vidseg's custom ops decomposed to their reference composition.

Both the ONNX and the AOTInductor artifacts start here, so they carry the same graph. The `vidseg::warp` and
`vidseg::creff` custom ops are opaque nodes for torch.export (they have fake implementations); an artifact that
kept them would need vidseg's Python code, and its kernels, wherever it is loaded. We decompose them to
`vidseg.kernels.reference` instead: GridSample plus pointwise math, and Pad/Slice/Mul/ReduceSum/Softmax, which
every runtime has. The artifact is then self-contained; the price is that the fused Triton kernels do not run
inside it (TensorRT and Inductor fuse the composition themselves).

`kernel_ops=True` keeps the ops instead, as calls to vidseg's own kernels, fed channels-last on a CPU
(`vidseg.kernels.ops.channels_last_for_cpu_kernels`): AOTInductor CPU packages, where Inductor's code for the
composition ran the warp and CReFF ~3x slower than the CPU kernels (`vidseg.export.aoti`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from vidseg.errors import ExportError
from vidseg.kernels import ops, reference  # ops: registers the vidseg:: custom ops decomposed below
from vidseg.models.base import Stage

__all__ = ["REFERENCE_DECOMPOSITIONS", "CREFF_LOWERING", "BATCH_DIM_NAME", "example_inputs", "export_stage",
           "remaining_custom_ops"]

BATCH_DIM_NAME = "batch"

# custom op -> its semantics in standard PyTorch ops (see vidseg.kernels.ops and vidseg.kernels.reference), as
# every artifact carries them. CReFF's is `reference.creff_channels_last`, the reference's arithmetic with the sums
# over contiguous channels, which runtimes run faster than the NCHW composition: ONNX Runtime 2.6x on a CPU (287
# against 745 ms at C=256, 64x128, one thread), Inductor 1.1-2x (`reference.creff_channels_last`). The op set is
# the reference's plus Transpose.
REFERENCE_DECOMPOSITIONS = {
    torch.ops.vidseg.warp.default: reference.warp,
    torch.ops.vidseg.creff.default: reference.creff_channels_last,
}
# Which CReFF composition artifacts carry: part of their cache keys, so a change rebuilds them.
CREFF_LOWERING = "channels-last"


def example_inputs(
    stage: Stage,
    height: int,
    width: int,
    batch: int = 1,
    seed: int = 0,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, ...]:
    """The stage's seeded example inputs, in input_names order (uint8 frames, float maps cast to dtype)."""
    out = []
    for t in stage.example_inputs(height, width, batch=batch, seed=seed):
        out.append((t.to(dtype) if t.is_floating_point() else t).to(device))
    return tuple(out)


def export_stage(
    stage: Stage,
    height: int,
    width: int,
    *,
    batch: int = 1,
    dynamic_batch: bool = False,
    dynamic_size: bool = False,
    max_batch: int = 64,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    kernel_ops: bool = False,
) -> torch.export.ExportedProgram:
    """torch.export `stage` for frames of height x width, vidseg ops decomposed (or, kernel_ops, kept as calls to
    vidseg's kernels); batch static or dynamic.

    A dynamic batch is traced with an example batch of at least 2 (torch.export specialises a size of 1).
    dynamic_size: the spatial dimensions of every 4-D input are dynamic; a stage whose code fixes one (a
    hard-coded size, a shape-dependent branch) raises ExportError saying so, never a graph that only works
    at the traced size.
    The stage must already be on `device` in `dtype`; float example inputs are made to match.
    """
    stage = stage.eval()
    trace_batch = max(batch, 2) if dynamic_batch else batch
    args = example_inputs(stage, height, width, trace_batch, device=device, dtype=dtype)
    dynamic_shapes = None
    if dynamic_batch or dynamic_size:
        batch_dim = torch.export.Dim(BATCH_DIM_NAME, min=1, max=max_batch)
        dynamic_shapes = tuple(_dynamic_dims(t, batch_dim if dynamic_batch else None, dynamic_size) for t in args)
    layout = ops.channels_last_for_cpu_kernels() if kernel_ops else contextlib.nullcontext()
    try:
        with torch.no_grad(), warnings.catch_warnings(), layout:
            warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)  # torch-internal
            program = torch.export.export(stage, args, dynamic_shapes=dynamic_shapes, strict=False)
            return program.run_decompositions({} if kernel_ops else REFERENCE_DECOMPOSITIONS)
    except Exception as err:  # torch.export raises many types; all mean "this stage does not export"
        if dynamic_size:
            raise ExportError(
                f"stage {type(stage).__name__} cannot take a dynamic height/width ({type(err).__name__}: "
                f"{_first_line(err)}); export it at a fixed size (without --dynamic)"
            ) from err
        raise ExportError(
            f"torch.export of stage {type(stage).__name__} at {height}x{width} (batch {batch}, dynamic "
            f"{dynamic_batch}) failed: {type(err).__name__}: {_first_line(err)}"
        ) from err


def _dynamic_dims(t: Tensor, batch_dim, dynamic_size: bool) -> dict:
    dims = {0: batch_dim} if batch_dim is not None else {}
    if dynamic_size and t.dim() == 4:
        dims.update({2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC})
    return dims


def remaining_custom_ops(program: torch.export.ExportedProgram, namespaces: Sequence[str] = ("vidseg",)) -> list[str]:
    """Names of custom-op calls still in the graph (should be none after export_stage)."""
    found = []
    for node in program.graph.nodes:
        if node.op == "call_function" and getattr(node.target, "namespace", None) in namespaces:
            found.append(str(node.target))
    return found


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ""

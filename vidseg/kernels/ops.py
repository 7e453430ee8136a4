"""`torch.library` custom ops vidseg::warp and vidseg::creff.

One entry point per op for model code: `warp(...)` and `creff(...)` below. They call the custom ops so that
torch.compile and torch.export see one opaque node with a fake (meta) implementation, and dispatch to the
Triton kernels on CUDA (`vidseg.kernels.triton`, imported on the first CUDA call, when Triton is installed), creff
to the tiled GEMM kernel on CPU (`vidseg.kernels.cpu`), and to the reference elsewhere (warp on CPU: grid_sample is
already a fused kernel); `implementation(device, op)` says which one runs. While exporting to ONNX (the flag is set
by both the TorchScript and the dynamo exporter), or when autograd needs a gradient, they call the reference
composition directly, which lowers to standard operators (GridSample, Pad, Mul, ReduceSum, Softmax).
An ExportedProgram that already holds vidseg:: nodes is lowered by `vidseg.export.program`, which decomposes them
to the reference.

Every implementation returns a contiguous NCHW tensor, as the fake implementations promise.
"""

from __future__ import annotations

import functools
from types import ModuleType

import torch
from torch import Tensor

from vidseg.kernels import cpu, reference

__all__ = ["warp", "creff", "implementation"]


@torch.library.custom_op("vidseg::warp", mutates_args=())
def _warp_op(x: Tensor, motion: Tensor, convention: str) -> Tensor:
    return reference.warp(x, motion, convention).contiguous()


@_warp_op.register_fake
def _(x: Tensor, motion: Tensor, convention: str) -> Tensor:
    return x.new_empty(x.shape)


@torch.library.custom_op("vidseg::creff", mutates_args=())
def _creff_op(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int) -> Tensor:
    return reference.creff(q, k, v, residual, window).contiguous()


@_creff_op.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int) -> Tensor:
    return residual.new_empty(residual.shape)


@functools.cache
def _fused() -> ModuleType | None:
    """The Triton kernels module, or None when Triton is not installed (the reference runs instead)."""
    try:
        from vidseg.kernels import triton as kernels
    except ImportError:
        return None
    return kernels


def implementation(device: torch.device | str, op: str = "creff") -> str:
    """Which implementation `op` ("warp" or "creff") runs on `device`: "triton" (fused kernels), "cpu" (creff's
    tiled CPU kernel) or "reference" (PyTorch)."""
    kind = torch.device(device).type
    if kind == "cuda" and _fused() is not None:
        return "triton"
    return "cpu" if kind == "cpu" and op == "creff" else "reference"


@_warp_op.register_kernel("cuda")
def _warp_cuda(x: Tensor, motion: Tensor, convention: str) -> Tensor:
    kernels = _fused()
    if kernels is None:
        return reference.warp(x, motion, convention).contiguous()
    return kernels.warp(x, motion, convention)


@_creff_op.register_kernel("cuda")
def _creff_cuda(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int) -> Tensor:
    kernels = _fused()
    if kernels is None:
        return reference.creff(q, k, v, residual, window).contiguous()
    return kernels.creff(q, k, v, residual, window)


@_creff_op.register_kernel("cpu")
def _creff_cpu(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int) -> Tensor:
    return cpu.creff(q, k, v, residual, window)


def _use_reference(*tensors: Tensor) -> bool:
    if torch.onnx.is_in_onnx_export():
        return True
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _like(out: Tensor, layout_of: Tensor) -> Tensor:
    """`out` in `layout_of`'s memory format. The ops return NCHW; a channels_last network keeps channels_last
    after them, or every later layer runs the slow NCHW path and the logits need a full-resolution transpose
    (on the CPU that alone cost the demo's non-key frame more than its network did)."""
    if layout_of.dim() == 4 and not layout_of.is_contiguous() and \
            layout_of.is_contiguous(memory_format=torch.channels_last):
        return out.contiguous(memory_format=torch.channels_last)
    return out


def warp(x: Tensor, motion: Tensor, convention: str = "exact") -> Tensor:
    """Backward bilinear warp (semantics: `vidseg.kernels.reference.warp`); keeps x's memory format."""
    if _use_reference(x, motion):
        return reference.warp(x, motion, convention)
    return _like(torch.ops.vidseg.warp(x, motion, convention), x)


def creff(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int = 7) -> Tensor:
    """CReFF aggregation plus residual (semantics: `vidseg.kernels.reference.creff`); keeps the residual's
    memory format."""
    if _use_reference(q, k, v, residual):
        return reference.creff(q, k, v, residual, window)
    return _like(torch.ops.vidseg.creff(q, k, v, residual, window), residual)

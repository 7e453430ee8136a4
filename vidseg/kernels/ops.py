"""`torch.library` custom ops vidseg::warp and vidseg::creff.

One entry point per op for model code: `warp(...)` and `creff(...)` below. They call the custom ops so that
torch.compile and torch.export see one opaque node with a fake (meta) implementation, and dispatch to the
Triton kernels on CUDA (registered by `vidseg.kernels.triton` when importable) and to the reference elsewhere.
While exporting to ONNX, or when autograd needs a gradient, they call the reference composition directly, which
lowers to standard operators (GridSample, Pad, Mul, ReduceSum, Softmax).
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidseg.kernels import reference

__all__ = ["warp", "creff"]


@torch.library.custom_op("vidseg::warp", mutates_args=())
def _warp_op(x: Tensor, motion: Tensor, convention: str) -> Tensor:
    return reference.warp(x, motion, convention)


@_warp_op.register_fake
def _(x: Tensor, motion: Tensor, convention: str) -> Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("vidseg::creff", mutates_args=())
def _creff_op(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int) -> Tensor:
    return reference.creff(q, k, v, residual, window)


@_creff_op.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int) -> Tensor:
    return torch.empty_like(residual)


def _use_reference(*tensors: Tensor) -> bool:
    if torch.onnx.is_in_onnx_export():
        return True
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def warp(x: Tensor, motion: Tensor, convention: str = "exact") -> Tensor:
    """Backward bilinear warp (semantics: `vidseg.kernels.reference.warp`)."""
    if _use_reference(x, motion):
        return reference.warp(x, motion, convention)
    return torch.ops.vidseg.warp(x, motion, convention)


def creff(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int = 7) -> Tensor:
    """CReFF aggregation plus residual (semantics: `vidseg.kernels.reference.creff`)."""
    if _use_reference(q, k, v, residual):
        return reference.creff(q, k, v, residual, window)
    return torch.ops.vidseg.creff(q, k, v, residual, window)

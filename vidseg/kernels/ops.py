"""`torch.library` custom ops vidseg::warp and vidseg::creff.

One entry point per op for model code: `warp(...)` and `creff(...)` below. They call the custom ops so that
torch.compile and torch.export see one opaque node with a fake (meta) implementation, and dispatch to the
Triton kernels on CUDA (`vidseg.kernels.triton`, imported on the first CUDA call, when Triton is installed), to the
CPU kernels on CPU (creff: `vidseg.kernels.cpu`, GEMMs over channels-last strips; warp: `vidseg.kernels.cpu_warp`,
a channels-last gather, grid_sample for NCHW), and to the reference elsewhere; `implementation(device, op)` says
which one runs. Plain eager calls (nothing tracing) go straight to the kernel the dispatcher would pick
(`_direct_kernel`). While exporting to ONNX (the flag is set by both the TorchScript and the dynamo exporter), or when
autograd needs a gradient, they call the reference composition directly, which lowers to standard operators
(GridSample, Pad, Transpose, Mul, ReduceSum, Softmax; CReFF's sums over contiguous channels while exporting).
An ExportedProgram that already holds vidseg:: nodes is lowered by `vidseg.export.program`, which decomposes them
to the reference.

Every implementation returns its input's memory format (x for warp, residual for creff; see
`vidseg.kernels.layout`), as the fake implementations promise: a channels_last network keeps channels_last through
the ops without a copy (on CPU the kernels write channels_last directly; the Triton kernels compute NCHW, and their
wrappers here convert).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from types import ModuleType

import torch
from torch import Tensor
from torch.utils import _python_dispatch

from vidseg.kernels import cpu, cpu_warp, reference
from vidseg.kernels.layout import in_format_of, memory_format_of

__all__ = ["warp", "creff", "implementation", "channels_last_for_cpu_kernels"]

# Set while an AOTInductor CPU package is traced (`channels_last_for_cpu_kernels`). A plain module flag, not a
# ContextVar: torch.compile must read it inside traced code (it guards on module globals; ContextVar.get breaks
# its graph). Exports run one at a time in a process.
_cpu_kernel_layout = False


@torch.library.custom_op("vidseg::warp", mutates_args=())
def _warp_op(x: Tensor, motion: Tensor, convention: str) -> Tensor:
    return in_format_of(reference.warp(x, motion, convention), x)


@_warp_op.register_fake
def _(x: Tensor, motion: Tensor, convention: str) -> Tensor:
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=memory_format_of(x))


@torch.library.custom_op("vidseg::creff", mutates_args=())
def _creff_op(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int) -> Tensor:
    return in_format_of(reference.creff(q, k, v, residual, window), residual)


@_creff_op.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int) -> Tensor:
    return torch.empty(residual.shape, dtype=residual.dtype, device=residual.device,
                       memory_format=memory_format_of(residual))


@functools.cache
def _fused() -> ModuleType | None:
    """The Triton kernels module, or None when Triton is not installed (the reference runs instead)."""
    try:
        from vidseg.kernels import triton as kernels
    except ImportError:
        return None
    return kernels


def implementation(device: torch.device | str, op: str = "creff") -> str:
    """Which implementation `op` ("warp" or "creff") runs on `device`: "triton" (fused kernels), "cpu" (the CPU
    kernels; warp's falls back on grid_sample, i.e. the reference, for NCHW input) or "reference" (PyTorch)."""
    kind = torch.device(device).type
    if kind == "cuda" and _fused() is not None:
        return "triton"
    return "cpu" if kind == "cpu" else "reference"


@_warp_op.register_kernel("cuda")
def _warp_cuda(x: Tensor, motion: Tensor, convention: str) -> Tensor:
    kernels = _fused()
    if kernels is None:
        return in_format_of(reference.warp(x, motion, convention), x)
    return in_format_of(kernels.warp(x, motion, convention), x)


@_creff_op.register_kernel("cuda")
def _creff_cuda(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int) -> Tensor:
    kernels = _fused()
    if kernels is None:
        return in_format_of(reference.creff(q, k, v, residual, window), residual)
    return in_format_of(kernels.creff(q, k, v, residual, window), residual)


@_warp_op.register_kernel("cpu")
def _warp_cpu(x: Tensor, motion: Tensor, convention: str) -> Tensor:
    return cpu_warp.warp(x, motion, convention)


@_creff_op.register_kernel("cpu")
def _creff_cpu(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int) -> Tensor:
    return cpu.creff(q, k, v, residual, window)


def _use_reference(*tensors: Tensor) -> bool:
    if torch.onnx.is_in_onnx_export():
        return True
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


_DIRECT = {"warp": {"cpu": _warp_cpu, "cuda": _warp_cuda}, "creff": {"cpu": _creff_cpu, "cuda": _creff_cuda}}


def _direct_kernel(op: str, *tensors: Tensor):
    """The kernel the dispatcher would run for plain eager tensors, to be called directly; None while anything
    traces (torch.compile, torch.export, jit, a dispatch or function mode) or for tensor subclasses, which must see
    the custom op. Why: torch.library wraps each kernel so that its first call imports torch._dynamo, ~1.6 s of
    every run's start-up on a CPU, for an engine that never compiles."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch._C._is_torch_function_mode_enabled():
        return None
    if _python_dispatch._get_current_dispatch_mode() is not None:
        return None
    device = tensors[0].device.type
    if any(type(t) is not torch.Tensor or t.device.type != device for t in tensors):
        return None
    return _DIRECT[op].get(device)


@contextlib.contextmanager
def channels_last_for_cpu_kernels() -> Iterator[None]:
    """While a graph that keeps the custom ops (an AOTInductor CPU package, `vidseg.export.aoti`) is traced, hand
    the ops channels-last CPU tensors. Why: the compiled graph otherwise feeds them Inductor's NCHW, which the warp
    serves with grid_sample and CReFF with strided reads: 19 and 90 ms instead of 3 and 27 in arseg-bise18's
    non-key package at 512x1024 (one thread)."""
    global _cpu_kernel_layout
    before, _cpu_kernel_layout = _cpu_kernel_layout, True
    try:
        yield
    finally:
        _cpu_kernel_layout = before


def _kernel_layout(*tensors: Tensor) -> tuple[Tensor, ...]:
    if not _cpu_kernel_layout or tensors[0].device.type != "cpu":
        return tensors
    return tuple(t.contiguous(memory_format=torch.channels_last) for t in tensors)


def warp(x: Tensor, motion: Tensor, convention: str = "exact") -> Tensor:
    """Backward bilinear warp (semantics: `vidseg.kernels.reference.warp`); keeps x's memory format."""
    if _use_reference(x, motion):
        return reference.warp(x, motion, convention)
    kernel = _direct_kernel("warp", x, motion)
    if kernel is not None:
        return kernel(x, motion, convention)
    (x,) = _kernel_layout(x)
    return torch.ops.vidseg.warp(x, motion, convention)


def creff(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int = 7) -> Tensor:
    """CReFF aggregation plus residual (semantics: `vidseg.kernels.reference.creff`); keeps the residual's
    memory format."""
    if _use_reference(q, k, v, residual):
        # ONNX gets the composition every exported artifact carries (`vidseg.export.program`); autograd the reference.
        lowering = reference.creff_channels_last if torch.onnx.is_in_onnx_export() else reference.creff
        return lowering(q, k, v, residual, window)
    kernel = _direct_kernel("creff", q, k, v, residual)
    if kernel is not None:
        return kernel(q, k, v, residual, window)
    q, k, v, residual = _kernel_layout(q, k, v, residual)
    return torch.ops.vidseg.creff(q, k, v, residual, window)

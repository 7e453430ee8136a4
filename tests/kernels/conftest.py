"""Kernel tests: the Triton kernels run on CPU tensors under Triton's interpreter when no GPU is present.

TRITON_INTERPRET must be set before `vidseg.kernels.triton` is imported (`triton.jit` picks the interpreter when a
kernel is defined), so it is set here, at conftest import, and the kernels are imported only through the
`kernels` fixture. With a GPU the kernels are compiled and the CPU cases are skipped.
"""

from __future__ import annotations

import importlib
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def kernels():
    """The Triton kernels module (tests using it are skipped where Triton is not installed)."""
    pytest.importorskip("triton")
    from vidseg.kernels import triton as kernels

    return kernels


def _interpreted() -> bool:
    if os.environ.get("TRITON_INTERPRET") != "1":
        return False
    try:
        warp_module = importlib.import_module("vidseg.kernels.triton.warp")
    except ImportError:
        return False
    return type(warp_module._warp_kernel).__name__ == "InterpretedFunction"


@pytest.fixture(
    params=[
        pytest.param("cpu", id="cpu-interpreter"),
        pytest.param("cuda", marks=pytest.mark.cuda),
    ]
)
def device(request, kernels):
    """Where the kernels run: CPU tensors under the interpreter, or a CUDA GPU (marked `cuda`)."""
    if request.param == "cpu" and not _interpreted():
        pytest.skip("the Triton kernels were compiled for the GPU (TRITON_INTERPRET unset at import)")
    return request.param

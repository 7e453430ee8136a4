"""Checks shared by the Triton wrappers: dtypes, devices, layout, index ranges."""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from vidseg.errors import ConfigError, ShapeError

# Dtypes the kernels load and store; arithmetic is always fp32.
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Offsets inside one image (C*H*W elements) are int32; image bases are int64.
INT32_MAX = 2**31 - 1
# CUDA limits grid dimensions 1 and 2 to 65535 programs.
MAX_GRID_YZ = 65535


def check_float(op: str, name: str, t: Tensor) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise ShapeError(
            f"{op} kernel: {name} has dtype {t.dtype}; it supports float32, float16 and bfloat16 "
            f"(cast it, or call vidseg.kernels.reference.{op})"
        )


def check_same_device(op: str, **tensors: Tensor) -> torch.device:
    devices = {name: t.device for name, t in tensors.items()}
    first = next(iter(devices.values()))
    if any(d != first for d in devices.values()):
        raise ShapeError(f"{op} kernel: tensors on different devices: {devices}; move them to one device")
    return first


def nchw_contiguous(t: Tensor) -> Tensor:
    """The kernels index contiguous NCHW memory; other layouts (channels_last, views) are copied once."""
    return t if t.is_contiguous() else t.contiguous()


def device_guard(device: torch.device):
    """Triton launches on the current CUDA device and its current stream: make that the tensors' GPU (a kernel
    launched on another GPU would read foreign pointers). CPU tensors (the interpreter) need no guard."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def check_image(op: str, channels: int, height: int, width: int) -> None:
    if channels * height * width > INT32_MAX:
        raise ShapeError(
            f"{op} kernel: one image of {channels}x{height}x{width} exceeds the int32 per-image index limit "
            f"({INT32_MAX} elements); split the channels or the map"
        )


def check_grid_dim(op: str, what: str, value: int) -> None:
    if value > MAX_GRID_YZ:
        raise ShapeError(f"{op} kernel: {what} = {value} exceeds the CUDA grid limit of {MAX_GRID_YZ}; split the batch")


def check_launch(op: str, **blocks: int) -> None:
    """Block sizes become tl.arange extents, which must be powers of two."""
    for name, value in blocks.items():
        if value < 1 or value & (value - 1):
            raise ConfigError(f"{op} kernel: {name}={value} must be a power of two")

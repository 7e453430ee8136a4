"""Large CPU buffers kept between frames: glibc malloc's thresholds set for a per-frame inference loop.

A CPU model allocates and frees the same large tensors every frame (a 64-channel map at 256x512 is 32 MiB).
glibc serves an allocation above its mmap threshold (adaptive, at most 32 MiB by default) with a fresh mapping
and unmaps it on free, so every frame page-faults its activations in again and the kernel zeroes each page
first: on our 2-core VM BiSeNet-18 at 512x1024 (one thread) ran 1.71x faster in the seed's own eager code and
1.16x faster through vidseg's AOTInductor package once those buffers stayed in the heap
(benchmarks/seed_bisenet.py, its seed-heap row).
Raising the mmap and trim thresholds keeps them there: the process holds its peak footprint, which the next
frame needs again anyway.

The thresholds are process-wide, so `Engine` sets them once, on a CPU device, unless VIDSEG_HEAP=system. Other
C libraries (musl, macOS, Windows) keep their own allocator: nothing is changed there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

__all__ = ["retain_large_buffers", "ENV"]

ENV = "VIDSEG_HEAP"  # "system": leave the C library's allocator as it is
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
# glibc refuses thresholds above its limit (half its heap size on some versions): the largest one it takes wins.
_MMAP_THRESHOLDS = (1 << 30, 32 << 20)
_TRIM_THRESHOLD = (1 << 31) - 1

_lock = threading.Lock()
_state: dict[str, bool] = {}


def retain_large_buffers() -> bool:
    """Serve large allocations from the heap and keep freed memory there (glibc only; once per process).

    Returns whether the thresholds are set: False on other C libraries or with VIDSEG_HEAP=system.
    """
    with _lock:
        if "applied" not in _state:
            _state["applied"] = _apply()
        return _state["applied"]


def _apply() -> bool:
    if os.environ.get(ENV, "").strip().lower() == "system":
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    if not any(mallopt(_M_MMAP_THRESHOLD, value) == 1 for value in _MMAP_THRESHOLDS):
        return False
    return mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1


def _glibc_mallopt():
    """glibc's mallopt(int, int), or None where the C library is another one."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: musl and others lack it
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt

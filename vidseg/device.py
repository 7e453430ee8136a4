"""Where the work runs: the resolved torch device and the CPU cores the process may use.

Both are derived values (the config holds the user's words, "auto", "cuda"); every part that needs the real
device (engine, exporters, runners, CLI) resolves it here, once, the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vidseg.errors import BackendUnavailable, ConfigError

__all__ = ["resolve_device", "physical_cores"]


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU -> BackendUnavailable. A bare 'cuda' gets
    the current GPU's index: tensors always name theirs ("cuda:0"), and ONNX Runtime / TensorRT need it."""
    device = str(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(
            f"device {device!r} was asked for, but this PyTorch ({torch.__version__}) sees no CUDA GPU; "
            "use --device cpu, or install a CUDA build of PyTorch on a machine with a GPU"
        )
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported; use cpu, cuda, cuda:N or auto")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def physical_cores() -> int:
    """Physical cores available to this process (SMT siblings counted once): convolutions gain nothing from a
    second hardware thread on the same core, so this is the useful thread count for compute."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in allowed:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))

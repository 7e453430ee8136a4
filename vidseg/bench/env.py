"""The environment a benchmark ran in, stored with every result so numbers are never compared blindly."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from importlib import metadata

import torch

__all__ = ["environment", "device_slug"]

_PACKAGES = ("vidseg", "torch", "numpy", "av", "onnx", "onnxruntime", "onnxscript", "triton", "tensorrt")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(__file__))
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: torch.device) -> dict:
    """Versions, device and host facts as a JSON-able dict."""
    env = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "packages": {p: _version(p) for p in _PACKAGES},
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            compute_capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
        try:
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    return env


def device_slug(env: dict) -> str:
    """Short file-name-safe device name: 'cpu-2c' or 'nvidia-h100-80gb-hbm3'."""
    if env.get("gpu"):
        name = env["gpu"]
    else:
        name = f"cpu-{env.get('cpu_count')}c"
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")

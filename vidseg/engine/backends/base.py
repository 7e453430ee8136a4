"""The Runner interface: the only coupling between model stages and the backends that execute them.

A runner is built for one model's stages, one device, one precision and one frame size (compiled backends fix
shapes). `run(stage, inputs)` takes and returns torch tensors by name (see `vidseg.models.base` for the names);
tensors live on `runner.device`, so consecutive stages never round-trip through the host.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from vidseg.config import EngineConfig
from vidseg.errors import BackendUnavailable, ConfigError
from vidseg.models.base import Stage

__all__ = ["Runner", "runner_class", "BACKEND_MODULES"]

# backend name -> (module, class); heavy imports (onnxruntime, tensorrt) happen only when chosen.
BACKEND_MODULES = {
    "torch": ("vidseg.engine.backends.eager", "EagerRunner"),
    "compile": ("vidseg.engine.backends.compiled", "CompiledRunner"),
    "onnx": ("vidseg.engine.backends.onnxrt", "OnnxRuntimeRunner"),
    "aoti": ("vidseg.engine.backends.aoti", "AOTInductorRunner"),
    "trt": ("vidseg.engine.backends.tensorrt", "TensorRTRunner"),
}


class Runner(ABC):
    """Runs named stages on named tensors.

    stages: stage name -> Stage module (already on CPU, eval mode, weights loaded).
    config: precision, device, cache_dir, ...; never mutated.
    frame_size: (H, W) of the frames, fixed for compiled backends.
    """

    name: str = "?"
    max_in_flight: int = 1  # calls that may be queued before the caller must wait on results

    def __init__(self, stages: dict[str, Stage], config: EngineConfig, frame_size: tuple[int, int],
                 device: torch.device) -> None:
        self.stages = stages
        self.config = config
        self.frame_size = frame_size
        self.device = device

    @abstractmethod
    def run(self, stage: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Run one stage; inputs and outputs are tensors on self.device, addressed by name."""

    def describe(self) -> str:
        """One line for summaries: backend, device, precision (and the provider actually used)."""
        return f"{self.name} on {self.device} ({self.config.precision})"

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions, engines, graphs."""


def runner_class(backend: str) -> type[Runner]:
    """Backend name -> Runner class, importing only that backend. Unknown or unavailable -> clear error."""
    if backend not in BACKEND_MODULES:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_MODULES)}")
    module, cls = BACKEND_MODULES[backend]
    try:
        return getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as err:
        if err.name == module:
            raise BackendUnavailable(f"backend {backend!r} is not available in this version of vidseg") from err
        raise BackendUnavailable(
            f"backend {backend!r} needs the Python package {err.name!r}, which is not installed"
        ) from err

"""The Runner interface: the only coupling between model stages and the backends that execute them.

A runner is built for one model's stages, one device, one precision and one frame size (compiled backends fix
shapes). `run(stage, inputs)` takes and returns torch tensors by name (see `vidseg.models.base` for the names);
tensors live on `runner.device`, so consecutive stages never round-trip through the host.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from vidseg.config import BACKENDS, EngineConfig
from vidseg.errors import BackendUnavailable, ConfigError, VidsegError
from vidseg.models.base import Stage

__all__ = ["ArtifactRunner", "Runner", "runner_class"]


class Runner(ABC):
    """Runs named stages on named tensors.

    stages: stage name -> Stage module (already on CPU, eval mode, weights loaded).
    config: precision, device, cache_dir, ...; never mutated.
    frame_size: (H, W) of the frames, fixed for compiled backends.
    """

    name: str = "?"
    max_in_flight: int = 1  # calls that may be queued before the caller must wait on results
    # --engine auto: the device types it is measured on, the ones where it is tried only when its artifacts are
    # already built (building takes minutes there), and its rank when timings tie (lower first).
    auto_devices: tuple[str, ...] = ()
    auto_prebuilt_only: tuple[str, ...] = ()
    auto_rank: int = 50

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


class ArtifactRunner(Runner):
    """A runner of exported artifacts, one per stage (the onnx, trt and aoti backends).

    From live stages it asks `vidseg.export.builder.ArtifactBuilder` for their artifacts (exported, validated
    and cached in config.cache_dir, or `cache`); given `artifacts` (stage name -> StageArtifact, e.g. from an
    export folder through `vidseg.export.load_export`) it only loads them, and `stages` may be empty: no
    PyTorch model is needed. Either way each stage is checked against its declaration (`self.io`).
    """

    format: str = "?"  # the export format this backend runs (vidseg.export.formats)

    def __init__(self, stages: dict[str, Stage], config: EngineConfig, frame_size: tuple[int, int],
                 device: torch.device, *, artifacts: Mapping[str, Any] | None = None, cache: Any = None) -> None:
        from vidseg.export.cache import ArtifactCache

        super().__init__(stages, config, frame_size, device)
        self.cache = cache if cache is not None else ArtifactCache(config.cache_dir)
        self.check_request()
        if artifacts is None:
            artifacts = self.build_artifacts(stages)
        self.io = {name: artifact.io for name, artifact in artifacts.items()}
        for name, artifact in artifacts.items():
            self.load(name, artifact)

    def build_request(self, **extra: Any):
        """The BuildRequest for this runner's config, frame size and device."""
        return self.request_for(self.config, self.frame_size, self.device, **extra)

    @classmethod
    def request_for(cls, config: EngineConfig, frame_size: tuple[int, int], device: torch.device, **extra: Any):
        from vidseg.export.builder import BuildRequest

        fields = {"precision": config.precision, "batch": config.batch, "device": str(device),
                  "model_name": config.model or "demo", **extra}
        return BuildRequest(cls.format, tuple(frame_size), **fields)

    @classmethod
    def is_built(cls, stages: dict[str, Stage], config: EngineConfig, frame_size: tuple[int, int],
                 device: torch.device) -> bool:
        """Whether a runner for these stages would only load artifacts from the cache (nothing to export or
        compile first)."""
        from vidseg.export.builder import ArtifactBuilder
        from vidseg.export.cache import ArtifactCache

        try:
            request = cls.request_for(config, frame_size, device)
        except VidsegError:
            return False
        return ArtifactBuilder(request, ArtifactCache(config.cache_dir)).is_built(stages)

    def build_artifacts(self, stages: dict[str, Stage]) -> Mapping[str, Any]:
        from vidseg.export.builder import ArtifactBuilder

        return ArtifactBuilder(self.build_request(), self.cache).build(stages)

    def check_request(self) -> None:  # noqa: B027 - optional hook
        """Refuse what this backend cannot honour (precision, device, providers) before any export."""

    @abstractmethod
    def load(self, name: str, artifact: Any) -> None:
        """Load one stage's artifact and check it against `artifact.io`."""


def runner_class(backend: str) -> type[Runner]:
    """Backend name -> Runner class (`vidseg.config.BACKENDS`), importing only that backend. Unknown or
    unavailable -> clear error."""
    if backend not in BACKENDS or backend == "auto":
        names = ", ".join(b for b in BACKENDS if b != "auto")
        raise ConfigError(f"unknown backend {backend!r}; choose one of {names}")
    module, cls = BACKENDS[backend].split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as err:
        if err.name == module:
            raise BackendUnavailable(f"backend {backend!r} is not available in this version of vidseg") from err
        raise BackendUnavailable(
            f"backend {backend!r} needs the Python package {err.name!r}, which is not installed"
        ) from err

"""Backends: one Runner interface (`base.Runner`) and one place that picks and builds a runner.

`build_runner(config, stages, frame_size, device)` builds the backend the config names. With backend "auto" it
tries, in order, the fastest backend for the device (CUDA: trt, compile, torch; CPU: torch) and reports every
candidate it skipped and why, so the run summary says which backend actually ran and never hides a fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vidseg.config import EngineConfig
from vidseg.engine.backends.base import BACKEND_MODULES, Runner, runner_class
from vidseg.errors import BackendUnavailable
from vidseg.models.base import Stage

__all__ = ["Runner", "runner_class", "build_runner", "auto_candidates", "BuiltRunner", "BACKEND_MODULES"]


@dataclass(frozen=True)
class BuiltRunner:
    runner: Runner
    skipped: tuple[str, ...]  # "backend: why" for each auto candidate that could not run


def auto_candidates(device: torch.device) -> tuple[str, ...]:
    """Backends `--engine auto` tries, fastest first."""
    if device.type == "cuda":
        return ("trt", "compile", "torch")
    return ("torch",)


def build_runner(config: EngineConfig, stages: dict[str, Stage], frame_size: tuple[int, int],
                 device: torch.device) -> BuiltRunner:
    if config.backend != "auto":
        return BuiltRunner(runner_class(config.backend)(stages, config, frame_size, device), ())
    skipped = []
    candidates = auto_candidates(device)
    for i, backend in enumerate(candidates):
        try:
            cls = runner_class(backend)
            return BuiltRunner(cls(stages, config.replace(backend=backend), frame_size, device), tuple(skipped))
        except BackendUnavailable as err:
            if i == len(candidates) - 1:
                raise
            skipped.append(f"{backend}: {err}")
    raise AssertionError("unreachable")

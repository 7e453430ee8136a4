"""Backends: one Runner interface (`base.Runner`) and one place that picks and builds a runner.

`build_runner(config, stages, frame_size, device, mix=...)` builds the backend the config names. With backend
"auto" it measures the engines that can run here on the method's frame mix and keeps the fastest
(`auto.choose_runner`); the choice, its timings and every candidate skipped are reported, so the run summary
says which backend actually ran and never hides a fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from vidseg.config import EngineConfig
from vidseg.engine.backends.auto import AutoChoice, auto_candidates, choose_runner
from vidseg.engine.backends.base import Runner, runner_class
from vidseg.models.base import Stage

__all__ = ["Runner", "runner_class", "build_runner", "auto_candidates", "BuiltRunner", "AutoChoice"]


@dataclass(frozen=True)
class BuiltRunner:
    runner: Runner
    skipped: tuple[str, ...]  # "backend: why" for each auto candidate that could not run
    choice: AutoChoice | None = None  # what auto measured (None when a backend was named)


def build_runner(config: EngineConfig, stages: dict[str, Stage], frame_size: tuple[int, int],
                 device: torch.device, *, mix: Mapping[str, float] | None = None) -> BuiltRunner:
    """The runner of the config's backend; for "auto", the fastest here on `mix` (stage -> calls per frame;
    default: the key stage on every frame)."""
    if config.backend != "auto":
        return BuiltRunner(runner_class(config.backend)(stages, config, frame_size, device), ())
    runner, choice = choose_runner(config, stages, frame_size, device, mix or {"key": 1.0})
    return BuiltRunner(runner, choice.skipped, choice)

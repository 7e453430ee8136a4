"""What the engine hands back: one `FrameResult` per frame, and a `RunSummary` per run."""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FrameResult", "LatencyStats", "RunSummary", "RunStats"]


@dataclass(frozen=True)
class FrameResult:
    """One frame's answer.

    labels: uint8 [H, W] class ids at the frame's size. is_key / key_distance / reason: the policy's decision.
    timings: stage name -> seconds spent in that stage for this frame. latency: seconds from the start of this
    frame's processing to its labels on the host. logits: float [K, h, w] when the config asks for them.
    stream: the source's position in `run_many`, or the ``stream`` key given to `process_frame` (0 otherwise).
    """

    index: int
    pts: Any
    labels: np.ndarray
    is_key: bool
    key_distance: int
    timings: Mapping[str, float]
    logits: np.ndarray | None = None
    reason: str = ""
    latency: float = 0.0
    stream: Hashable = 0


@dataclass(frozen=True)
class LatencyStats:
    count: int
    mean_ms: float
    p99_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencyStats:
        if not seconds:
            return cls(0, float("nan"), float("nan"))
        ms = np.asarray(seconds) * 1000.0
        return cls(len(ms), float(ms.mean()), float(np.percentile(ms, 99)))


@dataclass(frozen=True)
class RunSummary:
    """What a run did: counts, speed, latency per frame type, time per stage, drops and every fallback taken."""

    source: str
    method: str
    backend: str
    policy: str
    frames: int
    keyframes: int
    dropped: int
    wall_s: float
    latency: Mapping[str, LatencyStats]  # "key", "non-key", "all"
    stage_s: Mapping[str, float]  # total seconds per stage
    fallbacks: tuple[str, ...]
    interrupted: bool = False
    startup_s: float = 0.0  # building the runner at the first frame (in wall_s; not in any frame's latency)
    lr_scale: float | None = None  # the arseg LR branch's scale (None for other methods)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else float("nan")


class RunStats:
    """Counts a run's results as they are delivered; `summary(...)` turns them into a RunSummary."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.frames = 0
        self.keyframes = 0
        self.latency: dict[str, list[float]] = {"key": [], "non-key": []}
        self.stage_s: dict[str, float] = {}

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        self.keyframes += result.is_key
        self.latency["key" if result.is_key else "non-key"].append(result.latency)
        for stage, seconds in result.timings.items():
            self.stage_s[stage] = self.stage_s.get(stage, 0.0) + seconds

    def summary(self, **fields: Any) -> RunSummary:
        """The summary of the results so far; `fields` fill the rest (source, method, backend, ...)."""
        latency = {k: LatencyStats.of(v) for k, v in self.latency.items()}
        latency["all"] = LatencyStats.of(self.latency["key"] + self.latency["non-key"])
        return RunSummary(frames=self.frames, keyframes=self.keyframes, wall_s=time.perf_counter() - self.start,
                          latency=latency, stage_s=dict(self.stage_s), **fields)

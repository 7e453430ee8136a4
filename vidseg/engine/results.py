"""What the engine hands back: one `FrameResult` per frame, and a `RunSummary` per run."""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
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
    """Latency of a set of frames in milliseconds: count, mean, median, 90th and 99th percentile."""

    count: int
    mean_ms: float
    p99_ms: float
    p50_ms: float = float("nan")
    p90_ms: float = float("nan")

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencyStats:
        if not seconds:
            return cls(0, float("nan"), float("nan"))
        ms = np.asarray(seconds) * 1000.0
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(len(ms), float(ms.mean()), float(p99), float(p50), float(p90))


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
    stage_calls: Mapping[str, int] = field(default_factory=dict)  # calls per stage (a frame's call counts once)
    class_pixels: tuple[int, ...] = ()  # labelled pixels per class id over all frames (index = class id)
    engine_choice: str = ""  # what --engine auto measured and chose

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else float("nan")

    def stage_ms_per_call(self, stage: str) -> float:
        """Mean milliseconds of one call of `stage` (total time over its calls, not over all frames)."""
        calls = self.stage_calls.get(stage, 0)
        return self.stage_s.get(stage, 0.0) / calls * 1000.0 if calls else float("nan")

    def class_shares(self) -> dict[int, float]:
        """Class id -> share of all labelled pixels (0..1), for the classes that occur."""
        total = sum(self.class_pixels)
        return {k: n / total for k, n in enumerate(self.class_pixels) if n} if total else {}


class RunStats:
    """Counts a run's results as they are delivered; `summary(...)` turns them into a RunSummary."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.frames = 0
        self.keyframes = 0
        self.latency: dict[str, list[float]] = {"key": [], "non-key": []}
        self.stage_s: dict[str, float] = {}
        self.stage_calls: dict[str, int] = {}
        self.class_pixels = np.zeros(0, np.int64)

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        self.keyframes += result.is_key
        self.latency["key" if result.is_key else "non-key"].append(result.latency)
        for stage, seconds in result.timings.items():
            self.stage_s[stage] = self.stage_s.get(stage, 0.0) + seconds
            self.stage_calls[stage] = self.stage_calls.get(stage, 0) + 1
        counts = np.bincount(result.labels.ravel())
        if len(counts) > len(self.class_pixels):
            counts[: len(self.class_pixels)] += self.class_pixels
            self.class_pixels = counts
        else:
            self.class_pixels[: len(counts)] += counts

    def summary(self, **fields: Any) -> RunSummary:
        """The summary of the results so far; `fields` fill the rest (source, method, backend, ...)."""
        latency = {k: LatencyStats.of(v) for k, v in self.latency.items()}
        latency["all"] = LatencyStats.of(self.latency["key"] + self.latency["non-key"])
        ignore = 255  # the ignore id is not a class
        pixels = tuple(int(n) for n in self.class_pixels[:ignore])
        return RunSummary(frames=self.frames, keyframes=self.keyframes, wall_s=time.perf_counter() - self.start,
                          latency=latency, stage_s=dict(self.stage_s), stage_calls=dict(self.stage_calls),
                          class_pixels=pixels, **fields)

"""What the engine hands back: one `FrameResult` per frame, and a `RunSummary` per run."""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FrameResult", "LatencyStats", "LatencyHistogram", "RunSummary", "RunStats"]


@dataclass(frozen=True)
class FrameResult:
    """One frame's answer.

    labels: uint8 [H, W] class ids at the frame's size. is_key / key_distance / reason: the policy's decision.
    timings: stage name -> seconds spent in that stage for this frame ("labels": logits to label maps).
    latency: seconds until its labels were on the host, from the frame's arrival in a live run (a camera or
    stream's packet read, a paced file's release), else from the start of its processing; never counting the
    one-off engine start-up. logits: float [K, h, w]
    when the config asks for them. stream: the source's position in `run_many`, or the ``stream`` key given to
    `process_frame` (0 otherwise). motion: where a non-keyframe's motion came from ("codec" vectors, the "flow"
    stage, "zero" motion), "" for keyframes and methods without motion.
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
    motion: str = ""


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
        if not len(seconds):
            return cls(0, float("nan"), float("nan"))
        ms = np.asarray(seconds) * 1000.0
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(len(ms), float(ms.mean()), float(p99), float(p50), float(p90))



class LatencyHistogram:
    """Latencies counted in fixed log-spaced bins, so that a run of any length keeps constant memory: the mean is
    exact, percentiles are within half a bin (about 0.5 %) of the exact value, clipped to the extremes seen.
    Bins span 10 us to 1000 s; values outside land in the end bins."""

    _LOW, _HIGH, _RATIO = 1e-5, 1e3, 1.01
    _BINS = int(np.ceil(np.log(_HIGH / _LOW) / np.log(_RATIO))) + 1

    def __init__(self) -> None:
        self.counts = np.zeros(self._BINS, np.int64)
        self.count = 0
        self.total = 0.0
        self.low = float("inf")
        self.high = float("-inf")

    def add(self, seconds: float) -> None:
        seconds = float(seconds)
        i = int(np.log(max(seconds, self._LOW) / self._LOW) / np.log(self._RATIO))
        self.counts[min(i, self._BINS - 1)] += 1
        self.count += 1
        self.total += seconds
        self.low, self.high = min(self.low, seconds), max(self.high, seconds)

    def merged(self, other: LatencyHistogram) -> LatencyHistogram:
        out = LatencyHistogram()
        out.counts = self.counts + other.counts
        out.count, out.total = self.count + other.count, self.total + other.total
        out.low, out.high = min(self.low, other.low), max(self.high, other.high)
        return out

    def percentile(self, q: float) -> float:
        """The q-th percentile in seconds (the geometric middle of its bin, within the extremes seen)."""
        rank = max(1, math.ceil(q / 100.0 * self.count))  # nearest rank: the value of at least q % of them
        i = int(np.searchsorted(np.cumsum(self.counts), rank, side="left"))
        middle = self._LOW * self._RATIO ** (i + 0.5)
        return float(min(max(middle, self.low), self.high))

    def stats(self) -> LatencyStats:
        if not self.count:
            return LatencyStats(0, float("nan"), float("nan"))
        return LatencyStats(self.count, self.total / self.count * 1000.0, self.percentile(99) * 1000.0,
                            self.percentile(50) * 1000.0, self.percentile(90) * 1000.0)


@dataclass(frozen=True)
class RunSummary:
    """What a run did: counts, speed, latency per frame type, time per stage, drops, reconnects, where motion
    came from and every fallback taken."""

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
    reconnects: int = 0  # times a live source reopened a lost stream
    motion: Mapping[str, int] = field(default_factory=dict)  # non-keyframes per motion source ("codec", "flow", ...)
    # seconds the run loop spent outside the model stages, by cause: "decode wait" (for the next frame) and "write
    # wait" (for room in the writer's queue and the files' closing); the labels step is a stage ("labels")
    outside: Mapping[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def outside_share(self) -> float:
        """Share of the wall time outside the model stages (start-up, waits, the loop's own work): what
        the pipeline around the model costs, 0..1."""
        return 1.0 - sum(self.stage_s.values()) / self.wall_s if self.wall_s > 0 else float("nan")

    def outside_breakdown(self) -> dict[str, float]:
        """Seconds outside the model stages by cause: start-up, the `outside` causes, and "other" (the rest of
        the loop: policy, method preparation, results)."""
        parts = {"startup": self.startup_s, **self.outside}
        parts["other"] = max(0.0, self.wall_s - sum(self.stage_s.values()) - sum(parts.values()))
        return parts

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
        self.latency = {"key": LatencyHistogram(), "non-key": LatencyHistogram()}  # constant memory
        self.stage_s: dict[str, float] = {}
        self.stage_calls: dict[str, int] = {}
        self.class_pixels = np.zeros(0, np.int64)
        self.motion: dict[str, int] = {}

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        self.keyframes += result.is_key
        self.latency["key" if result.is_key else "non-key"].add(result.latency)
        for stage, seconds in result.timings.items():
            self.stage_s[stage] = self.stage_s.get(stage, 0.0) + seconds
            self.stage_calls[stage] = self.stage_calls.get(stage, 0) + 1
        counts = np.bincount(result.labels.ravel())
        if len(counts) > len(self.class_pixels):
            counts[: len(self.class_pixels)] += self.class_pixels
            self.class_pixels = counts
        else:
            self.class_pixels[: len(counts)] += counts

        if result.motion:
            self.motion[result.motion] = self.motion.get(result.motion, 0) + 1

    def summary(self, **fields: Any) -> RunSummary:
        """The summary of the results so far; `fields` fill the rest (source, method, backend, ...)."""
        latency = {k: v.stats() for k, v in self.latency.items()}
        latency["all"] = self.latency["key"].merged(self.latency["non-key"]).stats()
        ignore = 255  # the ignore id is not a class
        pixels = tuple(int(n) for n in self.class_pixels[:ignore])
        return RunSummary(frames=self.frames, keyframes=self.keyframes, wall_s=time.perf_counter() - self.start,
                          latency=latency, stage_s=dict(self.stage_s), stage_calls=dict(self.stage_calls),
                          class_pixels=pixels, motion=dict(self.motion), **fields)

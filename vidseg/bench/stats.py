"""Summary statistics for timings: medians with quantiles, and ratios measured side by side.

A ratio between two configurations is computed per interleaved round (A_i / B_i, both timed in the same round
so that machine noise hits both alike) and summarised by its median and 20/80 % quantiles, never as a ratio of
two separately taken means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Summary", "summarize", "Ratio", "paired_ratio"]


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    p50: float
    p90: float
    p99: float
    q20: float
    q80: float
    min: float
    max: float

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(samples: Sequence[float]) -> Summary:
    """Summary of samples (e.g. per-frame latencies in seconds); empty input gives NaNs, n=0."""
    a = np.asarray(samples, dtype=np.float64)
    if a.size == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan, nan, nan, nan, nan)
    q = np.quantile(a, [0.5, 0.9, 0.99, 0.2, 0.8])
    return Summary(int(a.size), float(a.mean()), *map(float, q), float(a.min()), float(a.max()))


@dataclass(frozen=True)
class Ratio:
    """How many times faster B is than A (time_A / time_B), median and spread over interleaved rounds."""

    median: float
    q20: float
    q80: float
    rounds: int

    def __str__(self) -> str:
        return f"{self.median:.2f}x [{self.q20:.2f}-{self.q80:.2f}]"

    def to_dict(self) -> dict:
        return asdict(self)


def paired_ratio(times_a: Sequence[float], times_b: Sequence[float]) -> Ratio:
    """Speed-up of B over A from per-round times measured alternately (A_1 B_1 A_2 B_2 ...)."""
    a = np.asarray(times_a, dtype=np.float64)
    b = np.asarray(times_b, dtype=np.float64)
    n = min(a.size, b.size)
    if n == 0:
        return Ratio(float("nan"), float("nan"), float("nan"), 0)
    r = a[:n] / b[:n]
    q20, q50, q80 = np.quantile(r, [0.2, 0.5, 0.8])
    return Ratio(float(q50), float(q20), float(q80), int(n))

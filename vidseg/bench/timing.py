"""Timing primitives that are honest on a GPU and on a noisy CPU.

- `time_calls`: per-call latencies. On CUDA each call is bracketed by CUDA events and the host synchronises once
  at the end, so the queue stays full and the events measure device time; on CPU, perf_counter.
- `warm_up`: repeat a round until two consecutive round times agree within a tolerance (compiles, autotuning,
  caches and clocks settle), bounded.
- `interleave`: rounds of A B A B ... so that drift and neighbours' load hit every configuration alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import torch

__all__ = ["time_calls", "warm_up", "interleave", "synchronize"]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(calls: Sequence[Callable[[], object]], device: torch.device) -> tuple[list[float], float]:
    """Run calls in order; return (per-call seconds, wall seconds for all of them)."""
    synchronize(device)
    wall0 = time.perf_counter()
    if device.type == "cuda":
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in calls]
        for call, (start, end) in zip(calls, events, strict=True):
            start.record()
            call()
            end.record()
        torch.cuda.synchronize(device)
        per_call = [start.elapsed_time(end) / 1e3 for start, end in events]
    else:
        per_call = []
        for call in calls:
            t0 = time.perf_counter()
            call()
            per_call.append(time.perf_counter() - t0)
    return per_call, time.perf_counter() - wall0


def warm_up(round_fn: Callable[[], float], *, min_rounds: int = 2, max_rounds: int = 8, tol: float = 0.05) -> int:
    """Call round_fn (returns its own duration) until two consecutive durations agree within tol; rounds used."""
    prev = None
    for i in range(1, max_rounds + 1):
        t = round_fn()
        if i >= min_rounds and prev is not None and abs(t - prev) <= tol * max(prev, 1e-9):
            return i
        prev = t
    return max_rounds


def interleave(rounds: Mapping[str, Callable[[], float]], n: int) -> dict[str, list[float]]:
    """Run each named round function once per cycle, n cycles (A B A B ...); returns name -> durations."""
    out: dict[str, list[float]] = {name: [] for name in rounds}
    for _ in range(n):
        for name, fn in rounds.items():
            out[name].append(fn())
    return out

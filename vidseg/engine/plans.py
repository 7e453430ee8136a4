"""Plans: one frame's stage calls as plain data, and `execute_plans`, which runs them against a runner.

A `Plan` names the stage calls of one frame in order, where each named input comes from, what to keep as the
stream's state afterwards and where the frame's logits are. Methods (`vidseg.engine.methods`) write plans;
`execute_plans` runs the plans of several streams in lockstep and batches identical stage calls (same stage,
same input shapes) into one call, so `Engine.run_many` gets batched keyframes for free.

Sources an input can be bound to:
    frame.NAME      a tensor the method prepared for this frame (frame.image: uint8 [1,3,H,W] on the runner's
                    device; frame.motion: float32 [1,2,h,w] motion back to the keyframe at the key feature grid)
    state.NAME      a tensor kept from an earlier frame of the stream
    out.NAME        an output of an earlier call of the same plan
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from vidseg.errors import ShapeError
from vidseg.video.motion import resize_motion

__all__ = ["Bind", "StageCall", "Plan", "call", "execute_plans", "StageTiming", "wall_timer", "Timer", "StageFn"]


@dataclass(frozen=True)
class Bind:
    """Input `name` of a stage call takes tensor `source`; with `fit_to`, a motion field resized (and its values
    rescaled) to the spatial grid of the tensor `fit_to`."""

    name: str
    source: str
    fit_to: str | None = None


@dataclass(frozen=True)
class StageCall:
    stage: str
    inputs: tuple[Bind, ...]

    def describe(self) -> str:
        return f"{self.stage}({', '.join(f'{b.name}={b.source}' for b in self.inputs)})"


@dataclass(frozen=True)
class Plan:
    """What one frame runs: calls in order, state to keep afterwards (state name -> source), and the logits.
    motion: where a non-key plan's motion comes from ("codec", "flow", "zero"; "" when it uses none)."""

    calls: tuple[StageCall, ...]
    keep: tuple[tuple[str, str], ...]
    logits: str = "out.logits"
    is_key: bool = False
    motion: str = ""

    def describe(self) -> str:
        keep = ", ".join(f"{k}={v}" for k, v in self.keep)
        return " -> ".join(c.describe() for c in self.calls) + (f"; keep {keep}" if keep else "")


def call(stage: str, **inputs: str | tuple[str, str]) -> StageCall:
    """A stage call: input name -> source, or (source, fit_to) for motion resized to another tensor's grid."""
    binds = []
    for name, src in inputs.items():
        if isinstance(src, tuple):
            binds.append(Bind(name, src[0], fit_to=src[1]))
        else:
            binds.append(Bind(name, src))
    return StageCall(stage, tuple(binds))


StageFn = Callable[[str, dict[str, Tensor]], dict[str, Tensor]]
# A timer starts when called and returns `stop`; stop() returns a lazy reading: a zero-argument function giving
# the seconds (CUDA events can only be read once the work finished).
Timer = Callable[[], Callable[[], Callable[[], float]]]


@dataclass(frozen=True)
class StageTiming:
    """One stage call of a frame: `read()` gives its seconds once the work is done; `shared_by` streams ran it."""

    stage: str
    read: Callable[[], float]
    shared_by: int = 1

    def seconds(self) -> float:
        return self.read() / self.shared_by


def execute_plans(
    plans: Sequence[Plan],
    frames: Sequence[Mapping[str, Tensor]],
    states: Sequence[dict[str, Tensor]],
    run: StageFn,
    *,
    timer: Timer | None = None,
    motion_convention: str = "exact",
) -> tuple[list[Tensor], list[list[StageTiming]]]:
    """Run one frame of each stream: plans[i] on frames[i] (names without the "frame." prefix) and states[i].

    Calls at the same position of several plans with the same stage and input shapes run as one batched call
    (concatenated on the batch dimension). states[i] is updated in place with the plan's `keep`. Returns each
    stream's logits and its stage timings. motion_convention: how `fit_to` binds resize motion
    (`vidseg.video.motion.resize_motion`).
    """
    envs: list[dict[str, Tensor]] = []
    for frame, state in zip(frames, states, strict=True):
        env = {f"frame.{k}": v for k, v in frame.items()}
        env.update((f"state.{k}", v) for k, v in state.items())
        envs.append(env)
    timings: list[list[StageTiming]] = [[] for _ in plans]
    timer = timer or wall_timer
    for pos in range(max(len(p.calls) for p in plans)):
        groups: dict[tuple, list[int]] = {}
        resolved: dict[int, dict[str, Tensor]] = {}
        for i, plan in enumerate(plans):
            if pos >= len(plan.calls):
                continue
            stage_call = plan.calls[pos]
            inputs = {b.name: _resolve(envs[i], b, plan, motion_convention) for b in stage_call.inputs}
            resolved[i] = inputs
            key = (stage_call.stage, tuple((n, tuple(t.shape), t.dtype) for n, t in inputs.items()))
            groups.setdefault(key, []).append(i)
        for (stage, _), members in groups.items():
            if len(members) == 1:
                batch = resolved[members[0]]
            else:
                batch = {n: torch.cat([resolved[i][n] for i in members]) for n in resolved[members[0]]}
            stop = timer()
            outputs = run(stage, batch)
            reading = stop()
            for j, i in enumerate(members):
                for name, tensor in outputs.items():
                    envs[i][f"out.{name}"] = tensor if len(members) == 1 else tensor[j : j + 1]
                timings[i].append(StageTiming(stage, reading, len(members)))
    logits = []
    for i, plan in enumerate(plans):
        for name, source in plan.keep:
            states[i][name] = _lookup(envs[i], source, plan)
        logits.append(_lookup(envs[i], plan.logits, plan))
    return logits, timings


def wall_timer() -> Callable[[], Callable[[], float]]:
    """Host wall-clock timer (right for synchronous CPU work)."""
    start = time.perf_counter()

    def stop() -> Callable[[], float]:
        elapsed = time.perf_counter() - start
        return lambda: elapsed

    return stop


def _lookup(env: Mapping[str, Tensor], source: str, plan: Plan) -> Tensor:
    try:
        return env[source]
    except KeyError:
        raise ShapeError(
            f"plan {plan.describe()!r} needs {source!r}, which is not available (have {sorted(env)})"
        ) from None


def _resolve(env: Mapping[str, Tensor], bind: Bind, plan: Plan, convention: str) -> Tensor:
    tensor = _lookup(env, bind.source, plan)
    if bind.fit_to is not None:
        tensor = resize_motion(tensor, tuple(_lookup(env, bind.fit_to, plan).shape[-2:]), convention=convention)
    return tensor

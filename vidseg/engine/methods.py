"""Methods: which stages a keyframe and a non-keyframe run, and the state kept between frames.

A method turns a `KeyDecision` into a `Plan`: plain data naming the stage calls, where each named input comes
from, what to keep as state and where the frame's logits are. `execute_plans` runs plans against a Runner; it
runs several streams' plans in lockstep and batches identical stage calls (same stage, same input shapes) into
one call, so `Engine.run_many` gets batched keyframes for free.

Sources an input can be bound to:
    frame.image     uint8 [1,3,H,W] current frame, on the runner's device
    frame.motion    float32 [1,2,h,w] motion from the current frame back to the keyframe, at the key feature grid
                    (prepared by the engine from codec motion, or zeros)
    state.NAME      a tensor kept from an earlier frame of the stream
    out.NAME        an output of an earlier call of the same plan

| method    | keyframe                                   | non-keyframe                                               |
|-----------|--------------------------------------------|------------------------------------------------------------|
| per-frame | key(image)                                 | (every frame is a key)                                     |
| arseg     | key(image); keep key_features (, key_image) | nonkey(image, key_features, motion to key)                 |
|           |                                            | without codec motion: flow(image, key_image) -> motion     |
| flowwarp  | key(image); keep prev_logits, prev_image   | flow(image, prev_image); refine(image, prev_logits, flow)  |
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vidseg.errors import ConfigError, ShapeError

__all__ = [
    "Bind",
    "StageCall",
    "Plan",
    "Method",
    "PerFrame",
    "ARSeg",
    "FlowWarp",
    "MOTION_SOURCES",
    "make_method",
    "execute_plans",
    "fit_motion",
    "StageTiming",
    "wall_timer",
]

# How a non-keyframe of arseg gets its motion to the key.
MOTION_SOURCES = ("codec", "flow", "zero")


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
    """What one frame runs: calls in order, state to keep afterwards (state name -> source), and the logits."""

    calls: tuple[StageCall, ...]
    keep: tuple[tuple[str, str], ...]
    logits: str = "out.logits"
    is_key: bool = False

    def describe(self) -> str:
        keep = ", ".join(f"{k}={v}" for k, v in self.keep)
        return " -> ".join(c.describe() for c in self.calls) + (f"; keep {keep}" if keep else "")


def _call(stage: str, **inputs: str | tuple[str, str]) -> StageCall:
    binds = []
    for name, src in inputs.items():
        if isinstance(src, tuple):
            binds.append(Bind(name, src[0], fit_to=src[1]))
        else:
            binds.append(Bind(name, src))
    return StageCall(stage, tuple(binds))


class Method:
    """A method's plans. Methods hold no per-stream state: that lives in the dict `execute_plans` updates."""

    name: str = "?"
    required: tuple[str, ...] = ("key",)

    def __init__(self, stages: Sequence[str]) -> None:
        missing = [s for s in self.required if s not in stages]
        if missing:
            raise ConfigError(
                f"method {self.name!r} needs the stages {list(self.required)}, but the model offers only "
                f"{sorted(stages)} (missing {missing}); choose a method the model supports"
            )
        self.stages = tuple(stages)

    @property
    def uses_keyframes(self) -> bool:
        return True

    def key_plan(self) -> Plan:
        raise NotImplementedError

    def nonkey_plan(self, motion: str = "codec") -> Plan:
        raise NotImplementedError

    def plan(self, is_key: bool, motion: str = "codec") -> Plan:
        return self.key_plan() if is_key else self.nonkey_plan(motion)


class PerFrame(Method):
    """The key (HR) stage on every frame; no state."""

    name = "per-frame"

    @property
    def uses_keyframes(self) -> bool:
        return False

    def key_plan(self) -> Plan:
        return Plan((_call("key", image="frame.image"),), keep=(), is_key=True)

    def nonkey_plan(self, motion: str = "codec") -> Plan:
        return self.key_plan()


class ARSeg(Method):
    """AR-Seg: HR key stage on keys (keep F_key); LR + CReFF non-key stage fed with motion back to the key.

    motion: "codec" and "zero" read `frame.motion` (prepared by the engine); "flow" runs the model's flow stage
    between the frame and the keyframe and fits its output to the key feature grid.
    """

    name = "arseg"
    required = ("key", "nonkey")

    @property
    def has_flow(self) -> bool:
        return "flow" in self.stages

    def key_plan(self) -> Plan:
        keep = [("key_features", "out.features")]
        if self.has_flow:
            keep.append(("key_image", "frame.image"))
        return Plan((_call("key", image="frame.image"),), keep=tuple(keep), is_key=True)

    def nonkey_plan(self, motion: str = "codec") -> Plan:
        if motion not in MOTION_SOURCES:
            raise ConfigError(f"unknown motion source {motion!r}; choose one of {MOTION_SOURCES}")
        if motion == "flow":
            if not self.has_flow:
                raise ConfigError("the model has no flow stage to estimate motion without codec motion vectors")
            calls = (
                _call("flow", image="frame.image", ref_image="state.key_image"),
                _call(
                    "nonkey",
                    image="frame.image",
                    key_features="state.key_features",
                    motion=("out.flow", "state.key_features"),
                ),
            )
        else:
            calls = (
                _call("nonkey", image="frame.image", key_features="state.key_features", motion="frame.motion"),
            )
        return Plan(calls, keep=())


class FlowWarp(Method):
    """GSVNet / SwiftNet-seq: key stage on keys; otherwise flow (reference -> current) + warp and refinement of
    the reference's logits. reference "previous": the last frame's result is carried forward frame by frame
    (GSVNet); "key": the keyframe's result is warped to every non-keyframe (SwiftNet-seq)."""

    name = "flowwarp"
    required = ("key", "flow", "refine")

    _keep = (("prev_logits", "out.logits"), ("prev_image", "frame.image"))

    def __init__(self, stages: Sequence[str], *, reference: str = "previous") -> None:
        super().__init__(stages)
        if reference not in ("previous", "key"):
            raise ConfigError(f"unknown flow reference {reference!r}; choose 'previous' or 'key'")
        self.reference = reference

    def key_plan(self) -> Plan:
        return Plan((_call("key", image="frame.image"),), keep=self._keep, is_key=True)

    def nonkey_plan(self, motion: str = "codec") -> Plan:
        calls = (
            _call("flow", image="frame.image", ref_image="state.prev_image"),
            _call("refine", image="frame.image", prev_logits="state.prev_logits", flow="out.flow"),
        )
        return Plan(calls, keep=self._keep if self.reference == "previous" else ())


_METHODS: dict[str, type[Method]] = {m.name: m for m in (PerFrame, ARSeg, FlowWarp)}


def make_method(name: str, stages: Sequence[str], *, flow_reference: str = "previous") -> Method:
    try:
        cls = _METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(_METHODS)}") from None
    if cls is FlowWarp:
        return FlowWarp(stages, reference=flow_reference)
    return cls(stages)


def fit_motion(motion: Tensor, size: tuple[int, int], *, convention: str = "exact") -> Tensor:
    """A motion field [N,2,h,w] (pixels of its grid) resized to `size` with its values rescaled to that grid.

    convention "exact": x scaled by the width ratio, y by the height ratio, bilinear with align_corners=False.
    convention "arseg": AR-Seg's evaluation (both components scaled by the height ratio, bilinear with
    align_corners=True), which its released checkpoints were evaluated with.
    """
    if motion.dim() != 4 or motion.shape[1] != 2:
        raise ShapeError(f"motion must be [N,2,h,w], got {tuple(motion.shape)}")
    h, w = motion.shape[-2:]
    if (h, w) == tuple(size):
        return motion
    motion = motion.float()
    if convention == "arseg":
        scale = torch.tensor([size[0] / h, size[0] / h], device=motion.device).view(1, 2, 1, 1)
        return F.interpolate(motion * scale, size=size, mode="bilinear", align_corners=True)
    scale = torch.tensor([size[1] / w, size[0] / h], device=motion.device).view(1, 2, 1, 1)
    return F.interpolate(motion, size=size, mode="bilinear", align_corners=False) * scale


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
    stream's logits and its stage timings.
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
            call = plan.calls[pos]
            inputs = {b.name: _resolve(envs[i], b, plan, motion_convention) for b in call.inputs}
            resolved[i] = inputs
            key = (call.stage, tuple((n, tuple(t.shape), t.dtype) for n, t in inputs.items()))
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
        tensor = fit_motion(tensor, tuple(_lookup(env, bind.fit_to, plan).shape[-2:]), convention=convention)
    return tensor

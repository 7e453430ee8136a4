"""The Method contract: what a key and a non-key frame run, the per-stream state, and each frame's inputs.

A method object is built once per engine for one model and config (`Method.for_model`) and serves every stream;
each stream's state lives in the `MethodState` the method creates (`new_state`). Per frame the engine asks the
method to `prepare` the frame: given the keyframe policy's decision, the method returns the `Plan` to run and the
frame's named input tensors (the image, and whatever else the method derives, e.g. codec motion back to the key).
The engine then only runs plans, so it never needs to know which method it drives.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

from vidseg.config import EngineConfig
from vidseg.engine.plans import Plan
from vidseg.engine.schedule import KeyDecision
from vidseg.errors import ConfigError
from vidseg.video.frame import Frame

__all__ = ["Method", "MethodState", "Note"]

Note = Callable[[str], None]  # a fallback or notice for the run summary (said once per run)


@dataclass
class MethodState:
    """One stream's state: the tensors plans keep (`state.NAME` in a plan)."""

    tensors: dict[str, Tensor] = field(default_factory=dict)


def _silent(message: str) -> None:
    return None


class Method(ABC):
    """A method's plans, per-stream state and frame preparation (see the module docstring).

    stages: the stage names the model offers; the method keeps those it runs (`self.stages`), and refuses a model
    that lacks a required one. note: where fallbacks and notices go (the engine's run summary).
    """

    name: ClassVar[str] = "?"
    required: ClassVar[tuple[str, ...]] = ("key",)
    optional: ClassVar[tuple[str, ...]] = ()  # stages run when the model has them
    uses_keyframes: ClassVar[bool] = True  # False: every frame is a keyframe, no keyframe policy applies
    uses_motion: ClassVar[bool] = False  # wants codec motion vectors from the decoder
    has_lr_branch: ClassVar[bool] = False  # non-keyframes run a low-resolution branch (`lr_scale`)
    measures_drift: ClassVar[bool] = False  # `drift` measures its non-keyframes (the policy's `DriftGuard`)
    default_interval: ClassVar[int] = 12  # the keyframe interval its seed evaluates (benchmarks' default)
    motion_convention: str = "exact"  # how motion is resized to a stage's grid (`resize_motion`)

    def __init__(self, stages: Sequence[str], *, note: Note | None = None) -> None:
        missing = [s for s in self.required if s not in stages]
        if missing:
            raise ConfigError(
                f"method {self.name!r} needs the stages {list(self.required)}, but the model offers only "
                f"{sorted(stages)} (missing {missing}); choose a method the model supports"
            )
        self.stages = tuple(s for s in (*self.required, *self.optional) if s in stages)
        self.note = note or _silent

    @classmethod
    def for_model(cls, model: Any, config: EngineConfig, *, note: Note | None = None) -> Method:
        """The method for a model (anything with `spec` and `stage_names`) and a config; methods with options
        read them from both here."""
        return cls(model.stage_names, note=note)

    def stage_options(self) -> dict[str, Any]:
        """Keyword arguments for `model.stages(...)` (the arseg LR scale)."""
        return {}

    @property
    def uses_flow(self) -> bool:
        """Whether the method may run the model's flow stage."""
        return "flow" in self.stages

    @property
    def lr_scale(self) -> float | None:
        """The scale of a low-resolution non-key branch (None: the method has none)."""
        return None

    def describe(self) -> str:
        scale = f", LR scale {self.lr_scale:g}" if self.lr_scale is not None else ""
        return f"{self.name}{scale}"

    def new_state(self) -> MethodState:
        return MethodState()

    @abstractmethod
    def key_plan(self) -> Plan:
        """What a keyframe runs."""

    @abstractmethod
    def nonkey_plan(self, motion: str = "codec") -> Plan:
        """What a non-keyframe runs (motion: where the motion back to the key comes from, for methods using it)."""

    def drift(self, state: MethodState, inputs: dict[str, Tensor], logits: Tensor) -> Tensor | None:
        """How far a non-keyframe's output (its logits; inputs: what `prepare` gave) departed from the keyframe:
        a 0-dim tensor in [0, 1], left on the device (the engine reads it at the next decision); None when not
        measured. Methods that set `measures_drift` implement it."""
        return None

    def prepare(self, state: MethodState, frame: Frame, hops: Sequence[Frame], decision: KeyDecision,
                image: Tensor) -> tuple[Plan, dict[str, Tensor]]:
        """The plan and named frame inputs for one frame. hops: the frames since the previous processed one,
        this frame last (live runs drop frames; their motion still counts). image: the frame on the device."""
        return (self.key_plan() if decision.is_key else self.nonkey_plan()), {"image": image}

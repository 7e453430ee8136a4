"""flowwarp (GSVNet, SwiftNet-seq): keyframes run the key network; a non-keyframe runs the flow stage from a
reference frame to itself, then the refine stage warps (and refines) the reference's logits with that flow.

The reference is the model's (`ModelSpec.flow_reference`): "previous" carries the last frame's result forward
frame by frame (GSVNet); "key" warps the keyframe's result to every non-keyframe (SwiftNet-seq).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vidseg.config import EngineConfig
from vidseg.engine.methods.base import Method, Note
from vidseg.engine.plans import Plan, call
from vidseg.errors import ConfigError

__all__ = ["FlowWarp", "FLOW_REFERENCES"]

FLOW_REFERENCES = ("previous", "key")


class FlowWarp(Method):
    """key(image) on keys, keeping its logits and image; flow(image, ref_image) + refine(image, prev_logits,
    flow) otherwise, keeping this frame's too when the reference is the previous frame."""

    name = "flowwarp"
    required = ("key", "flow", "refine")
    default_interval = 3  # GSVNet's l = 3

    _keep = (("prev_logits", "out.logits"), ("prev_image", "frame.image"))

    def __init__(self, stages: Sequence[str], *, reference: str = "previous", note: Note | None = None) -> None:
        super().__init__(stages, note=note)
        if reference not in FLOW_REFERENCES:
            raise ConfigError(f"unknown flow reference {reference!r}; choose one of {', '.join(FLOW_REFERENCES)}")
        self.reference = reference

    @classmethod
    def for_model(cls, model: Any, config: EngineConfig, *, note: Note | None = None) -> FlowWarp:
        return cls(model.stage_names, reference=model.spec.flow_reference, note=note)

    def key_plan(self) -> Plan:
        return Plan((call("key", image="frame.image"),), keep=self._keep, is_key=True)

    def nonkey_plan(self, motion: str = "codec") -> Plan:
        calls = (
            call("flow", image="frame.image", ref_image="state.prev_image"),
            call("refine", image="frame.image", prev_logits="state.prev_logits", flow="out.flow"),
        )
        return Plan(calls, keep=self._keep if self.reference == "previous" else (), motion="flow")

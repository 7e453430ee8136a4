"""per-frame: the full (key) network on every frame; no state, no keyframes (ETC, SANet, any image model)."""

from __future__ import annotations

from vidseg.engine.methods.base import Method
from vidseg.engine.plans import Plan, call

__all__ = ["PerFrame"]


class PerFrame(Method):
    """The key (HR) stage on every frame."""

    name = "per-frame"
    uses_keyframes = False

    def key_plan(self) -> Plan:
        return Plan((call("key", image="frame.image"),), keep=(), is_key=True)

    def nonkey_plan(self, motion: str = "codec") -> Plan:
        return self.key_plan()

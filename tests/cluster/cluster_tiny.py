"""Models for the cluster tests, built inside Ray workers by name (this folder is on their PYTHONPATH)."""

from __future__ import annotations

import time

from engine_tiny import TinyModel

SLOW_S = 0.1  # seconds per frame of slow_tiny: long enough to kill a worker mid-input


def tiny() -> TinyModel:
    return TinyModel()


def slow_tiny() -> TinyModel:
    """The tiny model, taking SLOW_S per frame (a stand-in for a heavy network)."""
    model = TinyModel()
    model.hr.register_forward_pre_hook(lambda module, args: time.sleep(SLOW_S))
    return model

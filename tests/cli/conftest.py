"""Fixtures the vidseg-run tests share: a small clip and the engine tests' tiny model standing in for every model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from engine_tiny import TinyModel, encode_clip, make_frames  # noqa: E402


@pytest.fixture
def clip(tmp_path) -> Path:
    return encode_clip(tmp_path / "street.mp4", make_frames(10), gop=5)


@pytest.fixture
def tiny(monkeypatch):
    """Every model name resolves to the tiny model."""
    import vidseg.engine.engine as engine_module

    model = TinyModel()
    monkeypatch.setattr(engine_module, "load_model", lambda config: model)
    return model

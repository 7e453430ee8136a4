"""Fixtures of the engine tests: the tiny model and small clips encoded with PyAV (see engine_tiny.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from engine_tiny import TinyModel, encode_clip, make_frames


@pytest.fixture
def tiny_model() -> TinyModel:
    return TinyModel()


@pytest.fixture(scope="session")
def clip_frames() -> np.ndarray:
    return make_frames(14)


@pytest.fixture(scope="session")
def h264_clip(tmp_path_factory, clip_frames) -> Path:
    return encode_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", clip_frames)


@pytest.fixture(scope="session")
def hevc_clip(tmp_path_factory, clip_frames) -> Path:
    return encode_clip(tmp_path_factory.mktemp("clips") / "clip_hevc.mp4", clip_frames, codec="libx265")

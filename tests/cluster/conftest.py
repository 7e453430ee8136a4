"""Fixtures of the cluster tests: tiny clips (tests/engine/engine_tiny.py), damaged files, and the environment
Ray workers need to import the test models (cluster_tiny.py) by name. Plain helpers are in cluster_helpers.py."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_helpers import FRAMES, encode_clip, make_frames  # noqa: E402


@pytest.fixture
def make_clips(tmp_path) -> Callable[..., Path]:
    """make_clips(["a", "b"], frames=10, folder="clips", bad=["x"]) -> the folder: tiny H.264 clips (64x96),
    each with its own content, and truncated MP4s for the names in bad."""

    def make(names, *, frames: int = FRAMES, folder: str = "clips", bad=()) -> Path:
        root = tmp_path / folder
        root.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(names):
            encode_clip(root / f"{name}.mp4", make_frames(frames, seed=i + 1))
        for name in bad:
            whole = encode_clip(tmp_path / f"{name}-whole.mp4", make_frames(frames, seed=99))
            (root / f"{name}.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
            whole.unlink()
        return root

    return make

"""Fixtures of the cluster tests: tiny clips (tests/engine/engine_tiny.py), damaged files, and the environment
Ray workers need to import the test models (cluster_tiny.py) by name."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "engine"))
from engine_tiny import encode_clip, make_frames  # noqa: E402

FRAMES = 10


def worker_pythonpath() -> str:
    """PYTHONPATH for Ray workers: the test helpers' folders and the checkout, before what the caller had."""
    paths = [str(HERE), str(HERE.parent / "engine"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in paths if p)


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


def assert_complete_once(out: Path, expected: dict[str, int]) -> None:
    """Every expected input has exactly one complete output folder (labels for each frame, a matching record),
    and nothing else is under out: no staging folder, no partial file, no second copy."""
    from vidseg.cluster.record import check_record, read_record

    folders = sorted(p.name for p in out.iterdir() if not p.name.startswith("_"))
    assert folders == sorted(expected), folders
    assert not list(out.rglob("*.part"))
    for name, frames in expected.items():
        folder = out / name
        pngs = sorted(p.name for p in (folder / f"{name}_labels").iterdir())
        assert pngs == [f"{i:06d}_trainIds.png" for i in range(frames)], (name, pngs)
        record = read_record(folder)
        assert record is not None and record["frames"] == frames
        assert check_record(folder, record["input"], record["options"]) is None

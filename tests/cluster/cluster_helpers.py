"""Helpers of the cluster tests (a module of their own: the name `conftest` is taken by every test folder)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "engine"))
from engine_tiny import encode_clip, make_frames  # noqa: E402, F401 - re-exported for the test modules

FRAMES = 10


def worker_pythonpath() -> str:
    """PYTHONPATH for Ray workers: the test helpers' folders and the checkout, before what the caller had."""
    paths = [str(HERE), str(HERE.parent / "engine"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in paths if p)


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

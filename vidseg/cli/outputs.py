"""Where vidseg-run saves its results, and the sinks that write them.

Without `--out`, every run gets a new numbered folder, `vidseg-out/run1`, `run2`, ... (as `yolo predict` does),
so a run never overwrites an earlier one (the environment variable VIDSEG_OUT moves that root elsewhere); with
`--out DIR` results go to DIR. By default the overlay video (with
a colour legend PNG beside it) and the label maps are saved; `--save none` writes nothing. `--out URL` (rtsp://,
rtmp://, udp://, tcp://, srt://) sends the overlay as a live stream instead (`stream_output`).

The kinds and their files are `vidseg.video.save`'s (shared with the cluster workers).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from vidseg.config import SAVE_KINDS
from vidseg.errors import ConfigError
from vidseg.video.redact import redact
from vidseg.video.save import default_root

__all__ = ["SAVE_KINDS", "DEFAULT_SAVE", "default_root", "parse_save", "output_dir", "stream_output",
           "check_file_target"]

DEFAULT_SAVE = ("overlay", "labels")


def parse_save(save: str | None) -> tuple[str, ...]:
    """--save's value -> the output kinds (default: overlay and labels; "none": nothing)."""
    if save is None:
        return DEFAULT_SAVE
    kinds = tuple(s.strip() for s in save.split(",") if s.strip())
    if not kinds:
        raise ConfigError(f"--save {save!r} names no output; choose from {', '.join(SAVE_KINDS)}, or none")
    if kinds == ("none",):
        return ()
    unknown = [k for k in kinds if k not in SAVE_KINDS]
    if unknown:
        raise ConfigError(f"unknown --save kind(s) {', '.join(unknown)}; choose from {', '.join(SAVE_KINDS)}, "
                          "or none")
    return kinds


def output_dir(out: Path | None, *, root: Path | None = None, prefix: str = "run") -> Path:
    """The folder a run writes to, created: `out` when given, else the next free `root/<prefix>N`. A path that
    cannot be a folder (a file, a path under a file, no permission) is a one-line ConfigError."""
    if out is not None:
        _make_dir(out, "--out")
        return out
    root = root or default_root()
    _make_dir(root, "the output folder")
    taken = [int(m.group(1)) for p in root.iterdir() if (m := re.fullmatch(rf"{prefix}(\d+)", p.name))]
    n = max(taken, default=0) + 1
    while True:  # another run may take the same number between listing and creating
        path = root / f"{prefix}{n}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
        except OSError as err:
            raise ConfigError(f"cannot create the output folder {path}: {err.strerror or err}; pass --out DIR "
                              "with a writable folder") from err


def check_file_target(path: Path, what: str) -> None:
    """Make the folder of a file a command writes at its end (--json): a path that cannot be written fails now,
    in one line, not after minutes of computing."""
    if path.is_dir():
        raise ConfigError(f"{what} {path}: is a directory; give a file path")
    _make_dir(path.parent, f"the folder of {what}")


def _make_dir(path: Path, what: str) -> None:
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path}: exists and is not a directory; give a directory path (it is created)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create {what} {path}: {err.strerror or err}; give a folder you can write to") \
            from err
    if not os.access(path, os.W_OK):
        raise ConfigError(f"cannot write to {what} {path}: permission denied; give a folder you can write to")


def stream_output(out: str | None, save: Sequence[str]) -> str | None:
    """--out when it is a stream URL (the overlay goes there), else None. A URL with outputs other than the
    overlay is a ConfigError: label maps need a folder."""
    if out is None or "://" not in out or out.lower().startswith("file://"):
        return None
    others = [k for k in save if k != "overlay"]
    if others or not save:
        raise ConfigError(f"--out {redact(out)} streams the overlay video only; add --save overlay (label maps and "
                          f"NPZ need a folder: run again with --out DIR for {', '.join(others) or 'them'})")
    return out

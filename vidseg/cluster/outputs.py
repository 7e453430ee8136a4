"""Where an input's outputs are written, and how they become visible all at once.

    <out>/.staging/<name>.<attempt>/     outputs being written by attempt <attempt> (1, 2, ...)
    <out>/<name>/                        the complete outputs (+ _vidseg_done.json), renamed from staging
    <out>/<name>/session-<UTC start>/    a live input's: one folder per session (vidseg.cluster.sessions)

An attempt writes only into its own staging folder. When the input is finished and its record written, the
folder is renamed to ``<out>/<name>``: a reader sees either the previous complete folder or the new one, never a
half-written one. A worker that dies mid-input leaves its staging folder behind; it is discarded before the
input is retried and at the end of the run, so half-written outputs never mix with a retry's (a live input's
finished outputs in it are kept first, as that attempt's session: vidseg.cluster.sessions).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

__all__ = ["STAGING", "staging_dir", "discard_staging", "remove_empty_staging", "commit", "probe_fps"]

STAGING = ".staging"


def staging_dir(out: Path, name: str, attempt: int) -> Path:
    return Path(out) / STAGING / f"{name}.{attempt}"


def discard_staging(out: Path, name: str) -> list[Path]:
    """Remove every staging folder of input `name` (all attempts); returns those removed."""
    root = Path(out) / STAGING
    pattern = re.compile(re.escape(name) + r"\.(\d+|old-\d+|kept-\d+)")
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in root.iterdir():
            if pattern.fullmatch(entry.name):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def commit(staging: Path, final: Path) -> None:
    """Rename a complete staging folder to `final`. An existing `final` (an older run's) is first moved into
    staging, then deleted; in between, readers find no folder and a re-run redoes the input (never a mix)."""
    old = None
    if final.exists():
        old = staging.with_name(f"{staging.name.rsplit('.', 1)[0]}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_empty_staging(out: Path) -> None:
    with contextlib.suppress(OSError):
        (Path(out) / STAGING).rmdir()


def probe_fps(source: str) -> float | None:
    """A video file's frame rate from its container, without decoding; None when unknown (and for URLs, which
    are opened once, by the engine)."""
    from vidseg.cluster.naming import is_url

    if is_url(source):
        return None
    try:
        from vidseg.video.source import open_source

        with open_source(source) as opened:
            return opened.fps
    except Exception:  # noqa: BLE001 - only a hint for the overlay; the engine reports a bad input itself
        return None

"""Live inputs' outputs: a folder per session, never replaced, and what a dead attempt had finished.

    <out>/<name>/session-20261207T131414Z/      one session of a live input: <name>_labels/, ..., the record
    <out>/<name>/session-20261207T131414Z-2/    a second session that started within the same second

A live stream has no end to resume from and no "complete" result to redo: every run, every retry after a worker
died, is a session of its own, named after the UTC time it started (the driver names it when it hands the stream
to a worker). Committing a session renames its staging folder into place without replacing anything, so an
earlier session's outputs are never deleted, whether by a later run, with or without --resume.

A worker that dies mid-stream leaves its staging folder behind. `keep_lost_attempt` keeps what was finished in
it as that attempt's session: every file the sinks had completed (label PNGs are each renamed into place; the
legend) stays; files still under their temporary names (``*.part``, the overlay's ``*.part.mp4``, an NPZ's
``.npz.part``) never became whole and are removed, so an overlay or NPZ is kept only if it was finalized, which
a dead worker never did. The kept session gets a record with the frames kept and the error, like a stream lost for
good, so nothing reads it as a whole session. A staging folder that an earlier run left behind (its driver was
killed) is kept the same way when a new run starts (`keep_leftovers`), named after the folder's last change.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vidseg.cluster.outputs import STAGING, staging_dir
from vidseg.cluster.record import read_record, write_record

__all__ = ["session_name", "commit_session", "keep_lost_attempt", "keep_leftovers", "find_session"]

_PARTIAL = re.compile(r".*\.part(\.[^.]+)?$")  # a.png.part, x.npz.part, clip_overlay.part.mp4
_TAKEN = (errno.EEXIST, errno.ENOTEMPTY)


def session_name(when: _dt.datetime | None = None) -> str:
    """The folder name of a session that starts at `when` (now): session-<UTC, ISO 8601 basic>."""
    when = when or _dt.datetime.now(_dt.timezone.utc)
    return "session-" + when.astimezone(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def commit_session(staging: Path, parent: Path, session: str) -> Path:
    """Rename a session's staging folder to ``parent/session`` (``session-2``, ``-3``, ... when that name is
    taken); never replaces an existing session. Returns the folder it became."""
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        final = parent / (session if n == 1 else f"{session}-{n}")
        if final.exists():
            continue
        try:
            os.rename(staging, final)  # atomic; fails when another session took the name meanwhile
        except OSError as err:
            if err.errno not in _TAKEN:
                raise
            continue
        return final
    raise FileExistsError(f"no free session folder under {parent}")


def keep_lost_attempt(out: Path, name: str, attempt: int, session: str, *, identity: Mapping[str, Any],
                      options: Mapping[str, Any], extra: Mapping[str, Any]) -> tuple[Path, int] | None:
    """The finished outputs of a dead attempt's staging folder, committed as its session with a record (the
    error in `extra`); returns (the session folder, frames kept), or None when nothing whole was written."""
    staging = staging_dir(out, name, attempt)
    if not staging.is_dir():
        return None
    held = staging.with_name(f"{name}.kept-{attempt}")  # out of the dead worker's path before it is tidied
    shutil.rmtree(held, ignore_errors=True)
    try:
        os.rename(staging, held)
    except FileNotFoundError:
        return None
    for path in sorted(held.rglob("*"), reverse=True):  # children first: emptied folders go too
        if path.is_file() and _PARTIAL.fullmatch(path.name):
            path.unlink(missing_ok=True)
        elif path.is_dir():
            with contextlib.suppress(OSError):
                path.rmdir()
    legend, overlay = held / f"{name}_legend.png", held / f"{name}_overlay.mp4"
    if legend.exists() and not overlay.exists():
        legend.unlink()  # the legend of an overlay that was never finished
    frames = _frames(held, name)
    if not any(p.is_file() for p in held.rglob("*")):
        shutil.rmtree(held, ignore_errors=True)
        return None
    write_record(held, identity=identity, options=options, extra={**extra, "frames": frames, "kept": True})
    return commit_session(held, out / name, session), frames


def keep_leftovers(out: Path, name: str, *, identity: Mapping[str, Any],
                   options: Mapping[str, Any]) -> list[tuple[Path, int]]:
    """Every staging folder of live input `name` that an earlier run left behind, kept as a session (see
    `keep_lost_attempt`); returns what was kept."""
    kept = []
    attempt = re.compile(re.escape(name) + r"\.(\d+)")
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted((Path(out) / STAGING).iterdir()):
            found = attempt.fullmatch(entry.name)
            if found is None:
                continue
            when = _dt.datetime.fromtimestamp(entry.stat().st_mtime, _dt.timezone.utc)
            done = keep_lost_attempt(out, name, int(found[1]), session_name(when), identity=identity,
                                     options=options, extra={"attempt": int(found[1]), "error": "left "
                                                             "unfinished by an earlier run that was stopped"})
            kept.extend([done] if done else [])
    return kept


def find_session(parent: Path, session: str, run_id: str, attempt: int) -> Path | None:
    """The committed session folder of attempt `attempt` of run `run_id` (named `session` or `session-N`)."""
    pattern = re.compile(re.escape(session) + r"(-\d+)?")
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(parent.iterdir()):
            record = read_record(entry) if pattern.fullmatch(entry.name) else None
            if record and record.get("run_id") == run_id and record.get("attempt") == attempt:
                return entry
    return None


def _frames(folder: Path, name: str) -> int:
    """Frames whose outputs are whole: the label PNGs (0 when labels were not saved)."""
    labels = folder / f"{name}_labels"
    return sum(1 for p in labels.iterdir() if p.suffix == ".png") if labels.is_dir() else 0


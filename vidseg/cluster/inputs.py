"""What a cluster run processes: files, folders, globs, manifests and URLs expanded into `ClusterInput`s.

    expand_inputs(["clips/", "extra/*.mp4", "drives.txt", "cams.jsonl", "rtsp://cam-7/stream"])

- a file is one input; a folder is every video in it (recursively, hidden folders skipped, sorted);
- a glob (``*``, ``?``, ``[``; ``**`` recursive) is every match;
- ``.txt``: a manifest, one file / folder / glob / URL a line (``#`` comments; relative paths are relative to the
  manifest's folder);
- ``.jsonl``: a manifest with per-input options, one JSON object a line:
  ``{"input": "a.mp4", "name": "a", "live": false, "max_frames": 100, "save": ["labels"]}`` (only "input" is
  required);
- a URL (``scheme://...``) or a camera (``/dev/videoN``) is a live input: pinned to one worker while it
  runs.

Each input gets a `name`: the folder its outputs go to under ``--out``. It is the file's stem (a URL's host and
path), filesystem-safe and credential-free; names that would collide get a short digest of the source appended,
so a re-run over the same inputs gives the same names (what ``--resume`` relies on).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vidseg.cluster.naming import is_url, safe_name, url_name
from vidseg.config import SAVE_KINDS
from vidseg.errors import InputError
from vidseg.video.redact import redact

__all__ = ["ClusterInput", "expand_inputs", "VIDEO_SUFFIXES"]

VIDEO_SUFFIXES = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".flv", ".wmv",
    ".h264", ".264", ".h265", ".265", ".hevc", ".ivf", ".y4m",
})
MANIFEST_SUFFIXES = (".txt", ".jsonl")
_JSONL_KEYS = ("input", "name", "live", "max_frames", "save")


@dataclass(frozen=True)
class ClusterInput:
    """One input of a cluster run.

    source: an absolute path or a URL, as `Engine.run` opens it. name: its output folder under ``--out``.
    live: read in real time and pinned to one worker for its lifetime (URLs by default). max_frames / save:
    per-input overrides of the run's options (None: the run's).
    """

    source: str
    name: str
    live: bool = False
    max_frames: int | None = None
    save: tuple[str, ...] | None = None

    @property
    def display(self) -> str:
        """How the input is shown in progress lines and reports (a URL without its credentials)."""
        return redact(self.source) if is_url(self.source) else self.source


def expand_inputs(items: Iterable[str | os.PathLike | ClusterInput], *, live: bool = False) -> list[ClusterInput]:
    """Every input the items name, in order, each once (see the module docstring). live: mark every input live
    (as ``vidseg-run --live``). Raises InputError for an item that names nothing (missing path, empty folder,
    glob without matches, bad manifest line)."""
    found: list[tuple[ClusterInput, bool]] = []  # (input, name given explicitly)
    for item in items:
        if isinstance(item, ClusterInput):
            found.append((item, True))
        else:
            found.extend(_expand(os.fspath(item), base=None, depth=0))
    if not found:
        raise InputError("no input given; give video files, folders, globs, a .txt/.jsonl manifest or URLs")
    unique: dict[str, tuple[ClusterInput, bool]] = {}
    for inp, explicit in found:
        unique.setdefault(inp.source, (inp, explicit))
    inputs = _unique_names(list(unique.values()))
    return [replace(i, live=True) for i in inputs] if live else inputs


def _expand(item: str, *, base: Path | None, depth: int, options: dict[str, Any] | None = None
            ) -> list[tuple[ClusterInput, bool]]:
    """The inputs an item names, each with whether its name was given explicitly (a .jsonl "name")."""
    if is_url(item):
        return [_make(item, options, live_default=True)]
    path = Path(os.path.expanduser(item))
    if base is not None and not path.is_absolute():
        path = base / path
    if glob.has_magic(str(path)):
        matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
        files = [m for m in matches if m.is_file()]
        if not files:
            raise InputError(f"{item}: the pattern matches no file; check it (quote it so the shell leaves it)")
        return [_make(str(m.resolve()), options) for m in files]
    if path.is_dir():
        videos = _videos_in(path)
        if not videos:
            raise InputError(f"{item}: the folder holds no video file ({', '.join(sorted(VIDEO_SUFFIXES)[:6])}, "
                             "...); give video files or another folder")
        return [_make(str(v), options) for v in videos]
    if not path.exists():
        raise InputError(f"{item}: no such file or folder; check the path")
    if str(path).startswith("/dev/"):  # a camera (V4L2): live like a URL, read where the worker runs
        return [_make(str(path), options, live_default=True)]
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        if depth > 0:
            raise InputError(f"{item}: a manifest cannot list another manifest; list the inputs themselves")
        return _read_manifest(path)
    return [_make(str(path.resolve()), options)]


def _videos_in(folder: Path) -> list[Path]:
    videos = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # skips an --out's .staging, .git, ...
        videos.extend(Path(root, f).resolve() for f in files
                      if Path(f).suffix.lower() in VIDEO_SUFFIXES and not f.startswith("."))
    return sorted(videos)


def _read_manifest(path: Path) -> list[tuple[ClusterInput, bool]]:
    inputs: list[tuple[ClusterInput, bool]] = []
    jsonl = path.suffix.lower() == ".jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read the manifest: {err}") from err
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{number}"
        if not jsonl:
            inputs.extend(_expand(line, base=path.parent, depth=1))
            continue
        options = _jsonl_options(line, where)
        expanded = _expand(options.pop("input"), base=path.parent, depth=1, options=options)
        if "name" in options and len(expanded) > 1:
            raise InputError(f"{where}: 'name' given for an entry that expands to {len(expanded)} inputs; give a "
                             "name only to a single file or URL")
        inputs.extend(expanded)
    return inputs


def _jsonl_options(line: str, where: str) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as err:
        raise InputError(f"{where}: not a JSON object ({err.msg}); write one object a line, e.g. "
                         '{"input": "a.mp4", "max_frames": 100}') from err
    if not isinstance(entry, dict) or not isinstance(entry.get("input"), str):
        raise InputError(f'{where}: each line needs "input": a path or URL string')
    unknown = sorted(set(entry) - set(_JSONL_KEYS))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_JSONL_KEYS)}")
    if "max_frames" in entry and (not isinstance(entry["max_frames"], int) or entry["max_frames"] < 1):
        raise InputError(f'{where}: "max_frames" must be an integer >= 1, got {entry["max_frames"]!r}')
    if "live" in entry and not isinstance(entry["live"], bool):
        raise InputError(f'{where}: "live" must be true or false, got {entry["live"]!r}')
    if "name" in entry and (not isinstance(entry["name"], str) or safe_name(entry["name"]) != entry["name"]):
        raise InputError(f'{where}: "name" must be a folder name of letters, digits, ".", "_", "-", got '
                         f'{entry.get("name")!r}')
    if "save" in entry:
        save = entry["save"]
        if isinstance(save, str):
            save = [s.strip() for s in save.split(",") if s.strip()]
        if not isinstance(save, list) or any(s not in SAVE_KINDS for s in save):
            raise InputError(f'{where}: "save" lists outputs among {", ".join(SAVE_KINDS)}, got {entry["save"]!r}')
        entry["save"] = tuple(save)
    return entry


def _make(source: str, options: dict[str, Any] | None, *, live_default: bool = False
          ) -> tuple[ClusterInput, bool]:
    options = options or {}
    inp = ClusterInput(source=source, name=options.get("name") or _base_name(source),
                       live=options.get("live", live_default), max_frames=options.get("max_frames"),
                       save=options.get("save"))
    return inp, "name" in options


def _base_name(source: str) -> str:
    if is_url(source):
        return url_name(source)
    return safe_name(Path(source).stem)


def _unique_names(found: Sequence[tuple[ClusterInput, bool]]) -> list[ClusterInput]:
    """Names that collide get a digest of their (redacted) source; explicit names must be unique as given."""
    by_name: dict[str, list[int]] = {}
    for i, (inp, _) in enumerate(found):
        by_name.setdefault(inp.name, []).append(i)
    out = [inp for inp, _ in found]
    for name, members in by_name.items():
        if len(members) < 2:
            continue
        explicit = [found[i][0].display for i in members if found[i][1]]
        if len(explicit) > 1:
            raise InputError(f"output name {name!r} is given to {len(explicit)} inputs ({', '.join(explicit)}); "
                             "give each a different name")
        for i in members:
            inp, given = found[i]
            if not given:
                digest = hashlib.sha256(inp.display.encode()).hexdigest()[:8]
                out[i] = replace(inp, name=f"{name}-{digest}")
    return out

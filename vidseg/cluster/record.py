"""Completion records: the proof that an input's output folder is complete, and what it was made from.

``<out>/<name>/_vidseg_done.json`` is written last, inside the staging folder, before the folder is renamed into
place; so a folder under ``--out`` with a record is complete. The record holds the input's identity (source,
size, mtime for files), the options that shape the outputs (engine config, outputs saved, frame limit), and
every output file's size and sha256; a live stream lost for good also has its ``error`` (its outputs are those up
to the loss). ``--resume`` skips an input whose record matches, without an error: same input, same
options, every output present and unchanged (checksums verified). Anything else (input edited, options changed,
an output deleted or altered) redoes it, and the report says why.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vidseg.cluster.inputs import ClusterInput
from vidseg.cluster.naming import is_url

__all__ = ["RECORD_NAME", "input_identity", "run_options", "write_record", "read_record", "check_record",
           "output_files"]

RECORD_NAME = "_vidseg_done.json"
RECORD_FORMAT = 1
_CHUNK = 1 << 20


def input_identity(inp: ClusterInput) -> dict[str, Any]:
    """What identifies an input's content: a file's path, size and mtime; a URL's credential-free form."""
    identity: dict[str, Any] = {"source": inp.display, "live": inp.live}
    if not is_url(inp.source):
        st = os.stat(inp.source)
        identity.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    return identity


def run_options(config: Any, *, save: tuple[str, ...], max_frames: int | None, model: str | None) -> dict[str, Any]:
    """The options that shape an input's outputs, as JSON values: the EngineConfig's fields, the outputs saved,
    the frame limit, and the model factory's name when one replaces config.model."""
    fields = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}
    fields.pop("cache_dir", None)  # where artifacts are cached does not change the outputs
    return {"config": fields, "save": sorted(save), "max_frames": max_frames, "model_factory": model}


def output_files(folder: Path) -> list[Path]:
    """Every file of an output folder except its record, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != RECORD_NAME)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_record(folder: Path, *, identity: Mapping[str, Any], options: Mapping[str, Any],
                 extra: Mapping[str, Any]) -> dict[str, Any]:
    """Checksum every file in folder and write the record there (via a temporary name); returns it."""
    outputs = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)}
               for p in output_files(folder)}
    record = {
        "format": RECORD_FORMAT,
        "input": dict(identity),
        "options": dict(options),
        "outputs": outputs,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
    tmp = folder / (RECORD_NAME + ".part")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, folder / RECORD_NAME)
    return record


def read_record(folder: Path) -> dict[str, Any] | None:
    """The record in folder, or None when there is none or it cannot be read."""
    try:
        record = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == RECORD_FORMAT else None


def check_record(folder: Path, identity: Mapping[str, Any], options: Mapping[str, Any], *,
                 checksums: bool = True) -> str | None:
    """None when folder holds a complete result of this input with these options; else why not (one phrase)."""
    record = read_record(folder)
    if record is None:
        return "no completion record" if folder.exists() else "not done yet"
    if record.get("error"):
        return "it ended in an error (outputs up to the error only)"
    recorded = record.get("input", {})
    changed = [k for k in ("source", "size", "mtime_ns", "live") if recorded.get(k) != identity.get(k)]
    if changed:
        return f"input changed ({', '.join(changed)})"
    if _normalise(record.get("options")) != _normalise(options):
        keys = _diff_keys(record.get("options") or {}, options)
        return f"options changed ({', '.join(keys) or 'format'})"
    outputs = record.get("outputs") or {}
    present = {p.relative_to(folder).as_posix() for p in output_files(folder)}
    if set(outputs) != present:
        missing, extra = sorted(set(outputs) - present), sorted(present - set(outputs))
        return f"outputs differ from the record (missing: {missing[:3]}, unexpected: {extra[:3]})"
    for rel, meta in outputs.items():
        path = folder / rel
        if path.stat().st_size != meta.get("size") or (checksums and _sha256(path) != meta.get("sha256")):
            return f"output {rel} changed since it was written"
    return None


def _normalise(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


def _diff_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            keys.extend(_diff_keys(a, b, f"{prefix}{k}."))
        elif _normalise(a) != _normalise(b):
            keys.append(prefix + k)
    return keys

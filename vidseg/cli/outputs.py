"""Where vidseg-run saves its results, and the sinks that write them.

Without `--out`, every run gets a new numbered folder, `vidseg-out/run1`, `run2`, ... (as `yolo predict` does),
so a run never overwrites an earlier one; with `--out DIR` results go to DIR. By default the overlay video (with
a colour legend PNG beside it) and the label maps are saved; `--save none` writes nothing. `--out URL` (rtsp://,
rtmp://, udp://, tcp://, srt://) sends the overlay as a live stream instead (`stream_output`).

| kind    | file(s)                                   | holds                                                     |
|---------|-------------------------------------------|-----------------------------------------------------------|
| overlay | <stem>_overlay.mp4, <stem>_legend.png     | the frames with label colours blended in; class colours   |
| labels  | <stem>_labels/<index>_trainIds.png        | one 8-bit PNG of class ids per frame                      |
| npz     | <stem>_labels.npz                         | labels [N, H, W] stacked, per-frame arrays, index, pts    |
| probs   | <stem>_probs.npz                          | fp16 class probabilities per frame at the logits' size    |
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidseg.errors import ConfigError
from vidseg.video.redact import redact

__all__ = ["SAVE_KINDS", "DEFAULT_SAVE", "DEFAULT_ROOT", "parse_save", "output_dir", "make_sinks", "sink_paths",
           "stream_output"]

SAVE_KINDS = ("overlay", "labels", "npz", "probs")
DEFAULT_SAVE = ("overlay", "labels")
DEFAULT_ROOT = Path("vidseg-out")


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


def output_dir(out: Path | None, *, root: Path = DEFAULT_ROOT, prefix: str = "run") -> Path:
    """The folder a run writes to, created: `out` when given, else the next free `root/<prefix>N`. A path that
    cannot be a folder (a file, a path under a file, no permission) is a one-line ConfigError."""
    if out is not None:
        _make_dir(out, "--out")
        return out
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


def make_sinks(save: Sequence[str], out: Path | str, stem: str, *, palette: str, fps: float | None,
               alpha: float = 0.5, legend: Sequence[tuple[str, tuple[int, int, int]]] = ()) -> list[Any]:
    """The sinks for the kinds asked for, writing `out/<stem>_*` (and the overlay's legend PNG beside it); when
    `out` is a stream URL (a str), the overlay alone, sent there."""
    if not save:
        return []
    from vidseg.video.sinks import PALETTES, LabelPNGSink, NPZSink, OverlayVideoSink

    sinks: list[Any] = []
    if "overlay" in save:
        target = out if isinstance(out, str) else out / f"{stem}_overlay.mp4"  # a str: a stream URL
        sinks.append(OverlayVideoSink(target, fps=fps or 25.0, alpha=alpha,
                                      palette=palette if palette in PALETTES else "cityscapes"))
        if isinstance(out, str):
            return sinks
        if legend:
            from vidseg.video.legend import write_legend

            write_legend(out / f"{stem}_legend.png", legend)
    if "labels" in save:
        sinks.append(LabelPNGSink(out / f"{stem}_labels"))
    if "npz" in save:
        sinks.append(NPZSink(out / f"{stem}_labels.npz"))
    if "probs" in save:
        from vidseg.video.probs import ProbsSink

        sinks.append(ProbsSink(out / f"{stem}_probs.npz"))
    return sinks


def sink_paths(sinks: Sequence[Any]) -> list[Path | str]:
    """What each sink writes (a file or a folder; a stream's URL, redacted), with the overlay's legend beside it."""
    named = [str(getattr(s, "path", getattr(s, "directory", ""))) for s in sinks]
    paths = [Path(p) for p in named if "://" not in p]
    legends = [p.with_name(p.name.replace("_overlay.mp4", "_legend.png")) for p in paths
               if p.name.endswith("_overlay.mp4")]
    return [redact(p) if "://" in p else Path(p) for p in named] + [p for p in legends if p.exists()]

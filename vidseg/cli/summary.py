"""The end of a vidseg-run: the run summary as a table (stdout) and as a JSON record (`--json`).

Every figure in both comes from the same `RunSummary`: stage time is given per call with the number of calls
(a keyframe stage runs on keyframes only, so time per frame would understate it), latency as percentiles per
frame type, and the share of each class among the labelled pixels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidseg.engine.results import RunSummary
from vidseg.errors import ConfigError

__all__ = ["print_summary", "summary_record", "write_json"]

_TOP_CLASSES = 8  # classes listed in the table (the JSON has them all)


def print_summary(summary: RunSummary, outputs: Sequence[Any] = (), *, class_names: Sequence[str] = (),
                  console: Any = None) -> None:
    """The run summary as a rich table on stdout (folded, never cut, on narrow terminals)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"vidseg-run: {summary.source}", show_header=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    scale = f", LR scale {summary.lr_scale:g}" if summary.lr_scale is not None else ""
    table.add_row("method", f"{summary.method}{scale} (keyframes: {summary.policy})")
    table.add_row("backend", summary.backend + (f"\n{summary.engine_choice}" if summary.engine_choice else ""))
    table.add_row("frames", f"{summary.frames} ({summary.keyframes} keyframes)" +
                  (" - interrupted" if summary.interrupted else ""))
    startup = f", of which {summary.startup_s:.2f} s engine start-up" if summary.startup_s >= 0.005 else ""
    table.add_row("frames/s", f"{summary.fps:.2f} ({summary.wall_s:.2f} s wall{startup})")
    for kind in ("key", "non-key", "all"):
        lat = summary.latency[kind]
        if lat.count:
            table.add_row(f"latency {kind}", f"p50 {lat.p50_ms:.1f} ms, p99 {lat.p99_ms:.1f} ms, mean "
                                             f"{lat.mean_ms:.1f} ms ({lat.count} frames)")
    for stage, seconds in summary.stage_s.items():
        calls = summary.stage_calls.get(stage, 0)
        table.add_row(f"stage {stage}", f"{summary.stage_ms_per_call(stage):.1f} ms per call, {calls} calls, "
                                        f"{seconds:.3f} s total")
    if summary.wall_s > 0:
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in summary.outside_breakdown().items() if v >= 0.005)
        table.add_row("outside stages", f"{summary.outside_share:.0%} of the wall time" + (f" ({parts})" if parts
                                                                                           else ""))
    if summary.motion:
        table.add_row("motion", ", ".join(f"{k} {n}" for k, n in summary.motion.items()) + " non-keyframes")
    table.add_row("dropped", str(summary.dropped))
    if summary.reconnects:
        table.add_row("reconnects", str(summary.reconnects))
    table.add_row("fallbacks", "\n".join(summary.fallbacks) if summary.fallbacks else "none")
    shares = _shares(summary, class_names)
    if shares:
        shown = ", ".join(f"{name} {share:.1%}" for name, share in shares[:_TOP_CLASSES])
        more = f" (+{len(shares) - _TOP_CLASSES} more)" if len(shares) > _TOP_CLASSES else ""
        table.add_row("classes", shown + more)
    for path in outputs:
        table.add_row("output", str(path))
    (console or Console()).print(table)


def summary_record(summary: RunSummary, *, config: Any = None, outputs: Sequence[Any] = (),
                   class_names: Sequence[str] = (), extra: dict | None = None) -> dict:
    """The run as one JSON-able dict: config, engine, counts, latency percentiles, per-stage time per call,
    drops, fallbacks, class shares, outputs."""
    record: dict[str, Any] = {
        "source": summary.source,
        "method": summary.method,
        "lr_scale": summary.lr_scale,
        "keyframe_policy": summary.policy,
        "backend": summary.backend,
        "engine_choice": summary.engine_choice,
        "frames": summary.frames,
        "keyframes": summary.keyframes,
        "interrupted": summary.interrupted,
        "wall_s": summary.wall_s,
        "startup_s": summary.startup_s,
        "fps": _number(summary.fps),
        "latency_ms": {kind: {k: _number(v) for k, v in dataclasses.asdict(lat).items()}
                       for kind, lat in summary.latency.items()},
        "stages": {stage: {"calls": summary.stage_calls.get(stage, 0), "total_s": seconds,
                           "ms_per_call": _number(summary.stage_ms_per_call(stage))}
                   for stage, seconds in summary.stage_s.items()},
        "outside_stages": {"share": _number(summary.outside_share),
                           "seconds": summary.outside_breakdown()},
        "dropped": summary.dropped,
        "reconnects": summary.reconnects,
        "motion": dict(summary.motion),
        "fallbacks": list(summary.fallbacks),
        "class_shares": dict(_shares(summary, class_names)),
        "outputs": [str(p) for p in outputs],
    }
    if config is not None:
        record["config"] = dataclasses.asdict(config)
    record.update(extra or {})
    return record


def write_json(path: str | os.PathLike, record: dict) -> None:
    """Write the record atomically (a temporary name renamed into place): a full disk leaves no half file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):  # e.g. its folder is a file: there is no temporary to remove
            tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write --json {path}: {err.strerror or err}; choose a writable path") from err


def _shares(summary: RunSummary, class_names: Sequence[str]) -> list[tuple[str, float]]:
    shares = sorted(summary.class_shares().items(), key=lambda kv: -kv[1])
    return [(class_names[k] if k < len(class_names) else f"class {k}", share) for k, share in shares]


def _number(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value

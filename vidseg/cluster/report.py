"""What a cluster run did: one `InputResult` per input, the workers, totals; as a table and as JSON."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidseg.cluster.jobs import WorkerInfo

__all__ = ["InputResult", "Session", "ClusterReport", "print_report", "REPORT_NAME"]

REPORT_NAME = "_vidseg_report.json"
STATUSES = ("done", "skipped", "failed", "interrupted")


@dataclass
class Session:
    """One session of a live input (vidseg.cluster.sessions): its folder, the attempt (0: left by an earlier run)
    and worker that wrote it, its frames, and how it ended: "ended" (the stream ended), "stopped" (the run was
    stopped), "failed: ..." (the stream was lost for good), "lost: ..." (the worker died, or the run stopped
    first: only the finished outputs were kept)."""

    folder: str
    attempt: int
    worker: str | None
    frames: int
    ended: str


@dataclass
class InputResult:
    """One input's fate.

    status: "done" (outputs complete under `output`), "skipped" (--resume found them complete), "failed" (the
    input's own error, said once in `error`, or retries exhausted; a live stream lost for good keeps its outputs up
    to the loss under `output`), "interrupted" (the run stopped first).
    attempts: tries made; `retries` says why each earlier one was lost (worker or node died). started_s /
    finished_s: seconds since the run started, of the last attempt (driver clock). note: why an input was redone
    under --resume. sessions: a live input's session folders, one per attempt that kept outputs (a worker that
    died mid-stream leaves one with what it had finished, and the retry writes the next).
    """

    name: str
    source: str
    live: bool = False
    status: str = "interrupted"
    attempts: int = 0
    worker: str | None = None
    frames: int = 0
    wall_s: float = 0.0
    output: str | None = None
    error: str | None = None
    retries: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    note: str | None = None
    started_s: float | None = None
    finished_s: float | None = None
    sessions: list[Session] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class ClusterReport:
    """A run's results. wall_s: the whole run; startup_s: until the first worker was ready (Ray start, engine
    builds); fps: frames of this run over the time after start-up."""

    results: list[InputResult]
    workers: list[WorkerInfo]
    address: str
    out: str
    wall_s: float = 0.0
    startup_s: float = 0.0
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.results if r.status == "done")

    @property
    def fps(self) -> float:
        busy = self.wall_s - self.startup_s
        return self.frames / busy if busy > 0 else 0.0

    @property
    def retried(self) -> int:
        return sum(len(r.retries) for r in self.results)

    @property
    def ok(self) -> bool:
        return all(r.status in ("done", "skipped") for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "out": self.out,
            "inputs": len(self.results),
            **{status: self.count(status) for status in STATUSES},
            "retried": self.retried,
            "frames": self.frames,
            "wall_s": round(self.wall_s, 3),
            "startup_s": round(self.startup_s, 3),
            "fps": round(self.fps, 2),
            "interrupted": self.interrupted,
            "notes": self.notes,
            "workers": [dataclasses.asdict(w) for w in self.workers],
            "results": [{**dataclasses.asdict(r), "fps": round(r.fps, 2)} for r in self.results],
        }

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write the report (via a temporary name) and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        os.replace(tmp, path)
        return path


def print_report(report: ClusterReport, *, json_path: Path | None = None, limit: int = 50) -> None:
    """The summary table (every failed or retried input, then the others up to `limit` rows) and totals."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"vidseg-run --cluster {report.address}: {len(report.results)} inputs",
                  title_justify="left")
    for column in ("input", "status", "attempts", "worker", "frames", "frames/s", "note"):
        table.add_column(column, justify="right" if column in ("attempts", "frames", "frames/s") else "left")
    rows = _ordered(report.results)
    for r in rows[:limit]:
        said = "; ".join([*([r.error] if r.error else []), *(f"retried: {why}" for why in r.retries),
                          *([r.note] if r.note else []),
                          *([_sessions(r.sessions)] if r.sessions else [])])
        table.add_row(r.name, r.status, str(r.attempts), r.worker or "-", str(r.frames),
                      f"{r.fps:.1f}" if r.frames else "-", said)
    if len(rows) > limit:
        table.add_row(f"... {len(rows) - limit} more (all in the JSON report)", "", "", "", "", "", "")
    console = Console()
    console.print(table)
    totals = ", ".join(f"{report.count(s)} {s}" for s in STATUSES if report.count(s))
    console.print(f"{totals}; {report.retried} retried after a worker or node died; {report.frames} frames at "
                  f"{report.fps:.1f} frames/s over {len(report.workers)} workers ({report.wall_s:.1f} s wall, "
                  f"{report.startup_s:.1f} s start-up)")
    for note in report.notes:
        console.print(f"note: {note}")
    if json_path is not None:
        console.print(f"outputs: {report.out}    report: {json_path}")


def _sessions(sessions: Sequence[Session]) -> str:
    """A live input's sessions in a few words (the retries say why one was lost): "sessions: A (5 frames, lost),
    B (30 frames, ended)"."""
    return "sessions: " + ", ".join(f"{Path(x.folder).name} ({x.frames} frames, {x.ended.split(':')[0]})"
                                    for x in sessions)


def _ordered(results: Sequence[InputResult]) -> list[InputResult]:
    """Failures first, then retried inputs, then the rest, each group in input order."""
    def rank(r: InputResult) -> int:
        return 0 if r.status in ("failed", "interrupted") else 1 if r.retries else 2

    return sorted(results, key=rank)

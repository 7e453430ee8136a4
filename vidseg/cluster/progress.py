"""One progress view of a whole cluster run: inputs done / total, failures, frames/s per worker and in total.

The driver builds a `Snapshot` every poll and hands it to a callback; `ProgressDisplay` is the CLI's callback
(a rich live table on a terminal, a line every few seconds otherwise). API users pass their own callback or none.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

__all__ = ["WorkerView", "Snapshot", "ProgressDisplay"]


@dataclass(frozen=True)
class WorkerView:
    """One worker as the driver last saw it. state: "starting", "idle", "busy", "dead"."""

    name: str
    host: str
    node: str  # Ray node id
    device: str
    state: str
    input: str | None = None
    frames: int = 0  # of the current input
    fps: float = 0.0  # of the current input so far


@dataclass(frozen=True)
class Snapshot:
    total: int
    done: int
    skipped: int
    failed: int
    retried: int
    running: int
    frames: int  # every frame processed so far, finished inputs and current ones
    fps: float  # frames over the time since the first worker was ready
    elapsed_s: float
    workers: tuple[WorkerView, ...]


class ProgressDisplay:
    """A callable for `run(progress=...)`: redraws on a terminal, prints a line every `every_s` otherwise."""

    def __init__(self, *, every_s: float = 10.0, enabled: bool = True) -> None:
        self.enabled = enabled
        self.every_s = every_s
        self._live = None
        self._last_line = 0.0

    def __enter__(self) -> ProgressDisplay:
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(stderr=True), refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def __call__(self, snap: Snapshot) -> None:
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(self._table(snap))
        elif time.monotonic() - self._last_line >= self.every_s:
            self._last_line = time.monotonic()
            print(self.headline(snap), file=sys.stderr, flush=True)

    @staticmethod
    def headline(snap: Snapshot) -> str:
        busy = sum(w.state == "busy" for w in snap.workers)
        return (f"[{snap.elapsed_s:6.0f} s] inputs {snap.done + snap.skipped}/{snap.total} done"
                f" ({snap.skipped} skipped), {snap.failed} failed, {snap.retried} retried; {busy}/{len(snap.workers)}"
                f" workers busy; {snap.frames} frames, {snap.fps:.1f} frames/s")

    def _table(self, snap: Snapshot):
        from rich.table import Table

        table = Table(title=self.headline(snap), title_justify="left", show_edge=False)
        for column in ("worker", "host", "device", "state", "input", "frames", "frames/s"):
            table.add_column(column, justify="right" if column in ("frames", "frames/s") else "left")
        for w in snap.workers:
            busy = w.state == "busy"
            table.add_row(w.name, w.host, w.device, w.state, w.input or "", str(w.frames) if busy else "",
                          f"{w.fps:.1f}" if busy else "")
        return table

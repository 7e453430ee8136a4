"""What crosses the boundary between the driver and its workers: plain, picklable dataclasses.

The driver sends a `Job` (one attempt at one input); the worker answers with an `Outcome`. `WorkerInfo` says
where a worker runs; `WorkerStats` is its progress, polled while it works.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vidseg.cluster.inputs import ClusterInput

__all__ = ["Job", "Outcome", "WorkerInfo", "WorkerStats"]


@dataclass(frozen=True)
class Job:
    """One attempt at one input. out: the output root as the workers see it (a shared filesystem on a
    multi-host cluster). options / identity: what the completion record stores (vidseg.cluster.record).
    source_options: how the worker opens the input (vidseg-run's --timeout, --reconnect, --rtsp-transport, ...)."""

    input: ClusterInput
    attempt: int  # 1 for the first try; a retry after a worker or node died gets the next number
    run_id: str
    out: str
    save: tuple[str, ...]
    max_frames: int | None
    options: Mapping[str, Any]
    identity: Mapping[str, Any]
    source_options: Any = None  # vidseg.video.source.SourceOptions: time-outs, reconnects, transport (None: defaults)
    session: str | None = None  # a live input's session folder (vidseg.cluster.sessions), named when handed out


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, when the worker lived to say so. ok=False: the input failed for a reason of its
    own (damaged file, unsupported stream...): `error` is one line, and the input is not retried."""

    name: str
    ok: bool
    frames: int
    wall_s: float
    worker: str
    error: str | None = None
    keyframes: int = 0
    dropped: int = 0
    backend: str = ""
    notes: tuple[str, ...] = ()  # fallbacks and notices of the engine for this input
    output: str | None = None  # the committed folder (also of a live stream that failed after frames)
    stopped: bool = False  # ended early by Worker.stop() (a live stream when the run was stopped)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


@dataclass(frozen=True)
class WorkerInfo:
    """Where a worker runs and what it built: node id, host, device, engine build seconds."""

    name: str
    node_id: str
    host: str
    pid: int
    device: str
    threads: int
    build_s: float


@dataclass(frozen=True)
class WorkerStats:
    """A worker's progress: the input it is on (None: idle), that input's frames and seconds so far, and the
    frames of every input it finished."""

    name: str
    input: str | None
    frames: int
    seconds: float
    finished_frames: int

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

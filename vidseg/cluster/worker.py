"""The worker: one Engine, built once, processing one input at a time into a staging folder.

A plain class, so it runs (and is tested) without Ray; the driver wraps it with ``ray.remote`` as one actor per
GPU or CPU slot. Weights are loaded and compiled stages built once per worker, in the constructor; compiled
artifacts (ONNX, TensorRT) come from the artifact cache that every worker shares (``EngineConfig.cache_dir``).

`process(job)` writes the input's outputs into ``<out>/.staging/<name>.<attempt>/``, then the completion record,
then renames the folder to ``<out>/<name>`` (vidseg.cluster.outputs); a live input's goes to a session folder of
its own under it instead, never replacing an earlier session (vidseg.cluster.sessions). An input that fails for a
reason of its own comes back as ``Outcome(ok=False, error=...)`` with its staging folder removed, except a live
stream lost for good (reconnects exhausted): its outputs up to the loss are committed, with the error in the
record, and the outcome, still failed, names the folder. Only the death of the worker's process or node makes the
driver retry it elsewhere. `stats()` and `stop()` may be called while `process` runs (the actor is created with
two threads): `stop()` ends the current input at its next frame and keeps what was
written (how a live stream is ended when the run is stopped with Ctrl-C).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidseg.cluster.jobs import Job, Outcome, WorkerInfo, WorkerStats
from vidseg.cluster.outputs import commit, probe_fps, staging_dir
from vidseg.cluster.record import write_record
from vidseg.cluster.sessions import commit_session, session_name
from vidseg.config import EngineConfig
from vidseg.errors import InputError, VidsegError
from vidseg.threads import wait_passively_in_openmp
from vidseg.video.redact import redact

__all__ = ["Worker"]

log = logging.getLogger("vidseg.cluster")
log.addHandler(logging.NullHandler())


class _Stopped(BaseException):
    """Raised from the frame callback after stop(): ends Engine.run, which flushes and closes the sinks."""


class Worker:
    """name: how reports call it. model_factory: builds the model instead of config.model (a picklable
    callable, e.g. for a model that is not registered). threads: torch's CPU threads in this process."""

    def __init__(self, name: str, config: EngineConfig, *, model_factory: Callable[[], Any] | None = None,
                 threads: int | None = None) -> None:
        wait_passively_in_openmp()  # a Ray worker is a fresh process: before torch loads in it
        import torch

        self.name = name
        self.threads = threads or torch.get_num_threads()
        torch.set_num_threads(self.threads)
        self._error: VidsegError | None = None
        self.engine = None
        start = time.perf_counter()
        try:
            from vidseg.engine.engine import Engine

            self.engine = Engine(config, model=model_factory() if model_factory is not None else None)
        except VidsegError as err:  # said by info(): a config error is the same on every worker
            self._error = err
        self.build_s = time.perf_counter() - start
        self._current: str | None = None
        self._frames = 0
        self._started = 0.0
        self._finished_frames = 0
        self._stop = threading.Event()

    def info(self) -> WorkerInfo:
        """Where this worker runs; raises the engine's build error, if any (the driver then stops the run)."""
        if self._error is not None:
            raise self._error
        return WorkerInfo(self.name, _node_id(), socket.gethostname(), os.getpid(), str(self.engine.device),
                          self.threads, self.build_s)

    def stats(self) -> WorkerStats:
        busy = self._current is not None
        return WorkerStats(self.name, self._current, self._frames if busy else 0,
                           time.perf_counter() - self._started if busy else 0.0, self._finished_frames)

    def stop(self) -> None:
        """End the current input at its next frame; its outputs so far are committed as complete."""
        self._stop.set()

    def process(self, job: Job) -> Outcome:
        """One attempt at one input: outputs into staging, the record, the rename (see the module docstring)."""
        if self._error is not None:
            raise self._error
        inp, out = job.input, Path(job.out)
        staging = staging_dir(out, inp.name, job.attempt)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        self._current, self._frames, self._started = inp.name, 0, time.perf_counter()
        self._stop.clear()
        stopped, error = False, None
        try:
            summary = self._run(job, staging)
        except _Stopped:
            summary, stopped = self.engine.summary, True
        except Exception as err:  # noqa: BLE001 - the input's own failure: reported once, not retried
            if not isinstance(err, VidsegError):  # a bug or another library's error: its traceback, redacted
                log.error("%s: %s failed\n%s", self.name, inp.display,
                          redact(traceback.format_exc(), source=inp.source))
            error = _one_line(err, inp.source)
            summary = self.engine.summary
            if not (inp.live and isinstance(err, InputError) and summary is not None and summary.frames > 0):
                shutil.rmtree(staging, ignore_errors=True)
                return Outcome(inp.name, False, self._frames, time.perf_counter() - self._started, self.name,
                               error=error)
            # a live stream lost for good: the engine closed the sinks, so what came before the loss is whole
        finally:
            self._finished_frames += self._frames
            self._current = None
        wall = time.perf_counter() - self._started
        write_record(staging, identity=job.identity, options=job.options, extra={
            "run_id": job.run_id, "attempt": job.attempt, "worker": self.name, "host": socket.gethostname(),
            "frames": summary.frames, "keyframes": summary.keyframes, "dropped": summary.dropped,
            "backend": summary.backend, "notes": list(summary.fallbacks), "wall_s": round(wall, 3),
            "stopped": stopped, **({"error": error} if error else {}),
            **({"session": job.session} if inp.live else {}),
        })
        final = out / inp.name
        if inp.live:
            final = commit_session(staging, final, job.session or session_name())
        else:
            commit(staging, final)
        return Outcome(inp.name, error is None, summary.frames, wall, self.name, error=error,
                       keyframes=summary.keyframes, dropped=summary.dropped, backend=summary.backend,
                       notes=tuple(summary.fallbacks), output=str(final), stopped=stopped)

    def _run(self, job: Job, staging: Path):
        from vidseg.video.save import make_sinks

        engine = self.engine
        fps = probe_fps(job.input.source) if "overlay" in job.save else None
        sinks = make_sinks(job.save, staging, job.input.name, fps=fps, palette=engine.spec.palette,
                           num_classes=engine.spec.num_classes)
        with warnings.catch_warnings():  # the engine's notices come back in summary.fallbacks
            warnings.simplefilter("ignore", RuntimeWarning)
            return engine.run(job.input.source, sinks=sinks, callback=self._count, live=job.input.live,
                              max_frames=job.max_frames, source_options=job.source_options)

    def _count(self, result: Any) -> None:
        self._frames += 1
        if self._stop.is_set():
            raise _Stopped


def _one_line(err: BaseException, source: str) -> str:
    """The error in one line, without the secrets of the input's URL (an exception from another library may
    quote it)."""
    text = redact(" ".join(str(err).split()), source=source)
    return text if isinstance(err, VidsegError) else f"{type(err).__name__}: {text}"


def _node_id() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except ImportError:
        pass
    return "local"

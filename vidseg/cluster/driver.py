"""The driver: workers on Ray, inputs handed out, deaths survived, results gathered.

    report = run(["clips/"], EngineConfig(), out="results", save=("labels",), address="auto")

One actor per GPU (``num_gpus=1``), or per `cpus_per_worker` CPUs on a cluster without GPUs, each building its
`Engine` once. Offline inputs wait in one queue and go to whichever worker is free; a live input goes to a worker
of its own and stays there until its stream ends (pinned). The driver keeps the bookkeeping and Ray does the
rest: placement, transport, death notices.

Failures. An input whose processing raises (a damaged file, an unsupported stream) comes back as a failed
outcome: reported once with its error, never retried, and the other inputs go on. A worker process or a node that
dies (`ray.kill`, OOM killer, a lost host: any Ray error other than the task's own exception) loses the attempt
it was running: its half-written staging folder is discarded and the input goes back to the front of the queue
with the next attempt number, at most `max_retries` times; a replacement worker is started (Ray places it
wherever resources are left). The report lists every lost attempt and why.

Live inputs. Each attempt at a live input is a session with a folder of its own (vidseg.cluster.sessions), named
when the stream is handed to a worker; sessions are never replaced, so a re-run (with or without --resume, which
does not skip live inputs: a stream has no end to resume from) adds one. A worker that dies mid-stream does not
lose its attempt's finished outputs: they are kept as that attempt's session (the report lists it) before the
stream restarts on another worker, into a new session.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vidseg.cluster.connect import connect, death_cause, import_ray, is_infrastructure_error
from vidseg.cluster.inputs import ClusterInput, expand_inputs
from vidseg.cluster.jobs import Job, Outcome, WorkerInfo, WorkerStats
from vidseg.cluster.naming import is_url
from vidseg.cluster.outputs import discard_staging, remove_empty_staging
from vidseg.cluster.progress import Snapshot, WorkerView
from vidseg.cluster.record import check_record, input_identity, read_record, run_options
from vidseg.cluster.report import ClusterReport, InputResult, Session
from vidseg.cluster.sessions import find_session, keep_leftovers, keep_lost_attempt, session_name
from vidseg.cluster.worker import Worker
from vidseg.config import SAVE_KINDS, EngineConfig
from vidseg.errors import BackendUnavailable, ConfigError, InputError, VidsegError
from vidseg.video.redact import redact
from vidseg.video.source import SourceOptions

__all__ = ["run", "ClusterRun"]


def run(inputs: Iterable[str | Path | ClusterInput], config: EngineConfig | None = None, *,
        out: str | Path, address: str | None = None, **options: Any) -> ClusterReport:
    """Process every input on a Ray cluster; returns the report (per-input results). See `ClusterRun` for the
    options (save, workers, resume, max_retries, max_frames, live, model_factory, progress, ...)."""
    return ClusterRun(inputs, config, out=out, address=address, **options).run()


@dataclass
class _Slot:
    """A worker as the driver tracks it."""

    name: str
    actor: Any
    state: str = "starting"  # starting -> idle <-> busy; dead
    info: WorkerInfo | None = None
    job: Job | None = None
    stats: WorkerStats | None = None
    asked: bool = False  # a stats() call is in flight


class ClusterRun:
    """One cluster run (see the module docstring).

    inputs: files, folders, globs, manifests, URLs or `ClusterInput`s (vidseg.cluster.inputs). config: the
    engine configuration of every worker. out: the output root, which every node and this process must see at
    the same path (a shared filesystem on a multi-host cluster). address: None (the Ray of this process, else a
    local one), "local", "auto", "ray://HOST:PORT". save: outputs per input (overlay, labels, npz; () for the
    completion record only). workers: at most this many workers. cpus_per_worker: CPUs (and torch threads) per
    worker. max_retries: attempts an input may lose to dead workers or nodes before it is given up. resume: skip
    inputs whose completion record matches. max_frames: per input. live: every input is live. model_factory:
    a picklable callable building the model (instead of config.model). progress: called with a `Snapshot`
    about every `poll_s` seconds. start_timeout_s: give up when no worker is up for this long. source_options:
    how workers open streams and cameras (`SourceOptions`: time-outs, reconnects, RTSP transport, ...).
    """

    def __init__(self, inputs: Iterable[str | Path | ClusterInput], config: EngineConfig | None = None, *,
                 out: str | Path, address: str | None = None, save: Sequence[str] = ("labels",),
                 workers: int | None = None, cpus_per_worker: int = 1, max_retries: int = 2, resume: bool = False,
                 max_frames: int | None = None, live: bool = False, model_factory: Callable[[], Any] | None = None,
                 progress: Callable[[Snapshot], None] | None = None, poll_s: float = 0.5,
                 start_timeout_s: float = 300.0, source_options: SourceOptions | None = None) -> None:
        unknown = [s for s in save if s not in SAVE_KINDS]
        if unknown:
            raise ConfigError(f"unknown output kind(s) {', '.join(unknown)}; choose from {', '.join(SAVE_KINDS)}")
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        if max_retries < 0 or cpus_per_worker < 1:
            raise ConfigError("max_retries must be >= 0 and cpus_per_worker >= 1")
        if max_frames is not None and max_frames < 1:
            raise ConfigError(f"--max-frames must be >= 1, got {max_frames}")
        self.out = Path(out).absolute()
        self.notes: list[str] = []
        self.inputs = self._outside_out(expand_inputs(inputs, live=live))
        self.config = config or EngineConfig()
        self.address = address
        self.save = tuple(save)
        self.max_workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.max_retries = max_retries
        self.resume = resume
        self.max_frames = max_frames
        self.model_factory = model_factory
        self.progress = progress
        self.poll_s = poll_s
        self.start_timeout_s = start_timeout_s
        self.source_options = source_options
        self.run_id = uuid.uuid4().hex[:8]
        self.results = {i.name: InputResult(i.name, i.display, i.live) for i in self.inputs}
        self._slots: list[_Slot] = []
        self._names = (f"w{i}" for i in itertools.count())
        self._last_job: dict[str, Job] = {}  # each input's latest attempt handed out
        self._pending: dict[Any, tuple[str, _Slot]] = {}  # object ref -> ("ready" | "task" | "stats", slot)
        self._remote_worker: Any = None  # ray.remote(Worker), made when the run starts
        self._actor_options: dict[str, Any] = {}
        self._spawns_left = 0
        self._t0 = time.monotonic()
        self._first_ready: float | None = None
        self._wall: float | None = None
        self._interrupted = False

    # the run -----------------------------------------------------------------------------------------------
    def run(self) -> ClusterReport:
        """Run to the end and return the report. Ctrl-C ends the live streams (their outputs so far are kept),
        stops the workers, discards unfinished files and re-raises; `report()` then has what was done."""
        self._t0 = time.monotonic()
        self.out.mkdir(parents=True, exist_ok=True)
        jobs = self._plan()
        if not jobs:
            self._wall = time.monotonic() - self._t0
            return self.report()
        started = connect(self.address)
        ray = import_ray()
        self.address = self.address or ("local" if started else "this process's Ray")
        try:
            self._start_workers(jobs)
            self._loop(deque(j for j in jobs if not j.input.live), deque(j for j in jobs if j.input.live))
        except KeyboardInterrupt:
            self._interrupted = True
            self._stop_live(ray)
            raise
        finally:
            self._stop_workers()
            for r in self.results.values():
                if r.status != "done":
                    self._keep(r.name, "lost: the run stopped before the stream ended")
                    discard_staging(self.out, r.name)
            remove_empty_staging(self.out)
            self._wall = time.monotonic() - self._t0
            if started:
                ray.shutdown()
        return self.report()

    def _outside_out(self, inputs: list[ClusterInput]) -> list[ClusterInput]:
        """The inputs, less files under --out: a folder given as input that holds the output root (vidseg-run
        clips/ --out clips/results) would otherwise take the overlays of an earlier run as videos to segment."""
        out = self.out.resolve()
        kept = [i for i in inputs if is_url(i.source) or out not in Path(i.source).resolve().parents]
        if len(kept) < len(inputs):
            if not kept:
                raise InputError(f"every input is under --out {self.out} (outputs of an earlier run); give the "
                                 "videos, or another --out")
            self.notes.append(f"{len(inputs) - len(kept)} files under --out {self.out} were left out (outputs of "
                              "an earlier run, not inputs)")
        return kept

    def report(self) -> ClusterReport:
        wall = self._wall if self._wall is not None else time.monotonic() - self._t0
        startup = (self._first_ready - self._t0) if self._first_ready is not None else wall
        return ClusterReport(list(self.results.values()), [s.info for s in self._slots if s.info is not None],
                             self.address or "local", str(self.out), wall, startup, self._interrupted,
                             list(self.notes))

    def _plan(self) -> list[Job]:
        """A first-attempt Job per input still to do; with resume, inputs whose record matches are skipped
        (records are checked in parallel: checksums are I/O)."""
        factory = self.model_factory
        model = None if factory is None else f"{factory.__module__}.{getattr(factory, '__qualname__', factory)}"

        def plan(inp: ClusterInput) -> Job | None:
            save = inp.save if inp.save is not None else self.save
            max_frames = inp.max_frames or self.max_frames
            options = run_options(self.config, save=save, max_frames=max_frames, model=model)
            result = self.results[inp.name]
            try:
                identity = input_identity(inp)
            except OSError as err:
                result.status, result.error = "failed", f"{inp.display}: cannot read it: {err.strerror}"
                return None
            if self.resume and not inp.live:  # a live stream has no end to resume from: a new session
                why = check_record(self.out / inp.name, identity, options)
                if why is None:
                    result.status, result.note = "skipped", "complete in an earlier run"
                    return None
                if why != "not done yet":
                    result.note = f"redone: {why}"
            if inp.live:  # an earlier run's unfinished session (its driver was killed): what it finished stays
                for folder, frames in keep_leftovers(self.out, inp.name, identity=identity, options=options):
                    result.sessions.append(Session(str(folder), 0, None, frames, "lost: left by an earlier run"))
            discard_staging(self.out, inp.name)
            return Job(inp, 1, self.run_id, str(self.out), tuple(save), max_frames, options, identity,
                       self.source_options)

        if self.resume and any(i.live for i in self.inputs):
            self.notes.append("--resume: each live input starts a new session (a stream has no end to resume from)")
        with ThreadPoolExecutor(max_workers=8) as pool:
            return [job for job in pool.map(plan, self.inputs) if job is not None]

    # workers -----------------------------------------------------------------------------------------------
    def _start_workers(self, jobs: Sequence[Job]) -> None:
        ray = import_ray()
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if self.config.device != "cpu" else 0
        slots = gpus if gpus else int(resources.get("CPU", 0) // self.cpus_per_worker)
        self._actor_options = {"num_cpus": self.cpus_per_worker, **({"num_gpus": 1} if gpus else {})}
        self._remote_worker = ray.remote(Worker)
        count = min(slots, self.max_workers or slots, len(jobs))
        if count < 1:
            raise BackendUnavailable(f"the Ray cluster has no room for a worker ({self.cpus_per_worker} CPU"
                                     f"{' + 1 GPU' if gpus else ''} each; resources: {_resources(resources)})")
        live = sum(j.input.live for j in jobs)
        if live > count:
            raise ConfigError(f"{live} live inputs need a worker each for as long as they run, but this run has "
                              f"{count} workers; add GPUs or nodes, or give fewer streams")
        if live and live == count and live < len(jobs):
            self.notes.append("every worker serves a live input: offline inputs wait until a stream ends")
        self._spawns_left = count * self.max_retries  # replacements for workers that die
        for _ in range(count):
            self._spawn()

    def _spawn(self) -> None:
        name = next(self._names)
        actor = self._remote_worker.options(
            name=f"vidseg-{self.run_id}-{name}", max_concurrency=2, max_restarts=0, max_task_retries=0,
            **self._actor_options,
        ).remote(name, self.config, model_factory=self.model_factory, threads=self.cpus_per_worker)
        slot = _Slot(name, actor)
        self._slots.append(slot)
        self._pending[actor.info.remote()] = ("ready", slot)

    def _kill(self, slot: _Slot) -> None:
        slot.state = "dead"
        try:
            import_ray().kill(slot.actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def _stop_live(self, ray: Any, timeout_s: float = 30.0) -> None:
        """On Ctrl-C: end the live streams (their outputs so far are kept and committed); offline inputs are
        left unfinished, to be redone by a later --resume."""
        live = {ref: slot for ref, (kind, slot) in self._pending.items()
                if kind == "task" and slot.job is not None and slot.job.input.live}
        for slot in live.values():
            slot.actor.stop.remote()
        deadline = time.monotonic() + timeout_s
        while live and time.monotonic() < deadline:
            for ref in _ready(ray, list(live), 0.5):
                self._pending.pop(ref, None)
                self._on_task(ray, ref, live.pop(ref), deque(), deque())

    def _stop_workers(self) -> None:
        for slot in self._slots:
            if slot.state != "dead":
                self._kill(slot)
        self._pending.clear()

    # the loop ----------------------------------------------------------------------------------------------
    def _loop(self, queue: deque[Job], live: deque[Job]) -> None:
        ray = import_ray()
        last_up = time.monotonic()
        while queue or live or any(s.state == "busy" for s in self._slots):
            self._assign(queue, live)
            if any(s.state in ("idle", "busy") for s in self._slots):
                last_up = time.monotonic()
            elif not any(s.state == "starting" for s in self._slots):
                self._give_up(queue, live, "no worker is left (every worker died and no replacement could start)")
                return
            elif time.monotonic() - last_up > self.start_timeout_s:
                self._give_up(queue, live, f"no worker started within {self.start_timeout_s:.0f} s "
                                           f"(resources: {_resources(ray.cluster_resources())})")
                return
            for ref in _ready(ray, list(self._pending), self.poll_s):
                kind, slot = self._pending.pop(ref)
                if kind == "ready":
                    self._on_ready(ray, ref, slot)
                elif kind == "task":
                    self._on_task(ray, ref, slot, queue, live)
                else:
                    slot.asked = False
                    try:
                        stats = ray.get(ref)
                    except Exception:  # noqa: BLE001 - a dying worker: its task reports the death
                        continue
                    current = slot.job.input.name if slot.job is not None else None
                    slot.stats = stats if current is not None and stats.input == current else None
            for slot in self._slots:
                if slot.state == "busy" and not slot.asked:
                    slot.asked = True
                    self._pending[slot.actor.stats.remote()] = ("stats", slot)
            if self.progress is not None:
                self.progress(self.snapshot())

    def _assign(self, queue: deque[Job], live: deque[Job]) -> None:
        for slot in self._slots:
            if slot.state != "idle" or not (queue or live):
                continue
            job = live.popleft() if live else queue.popleft()  # a live input keeps its worker until it ends
            if job.input.live:
                job = replace(job, session=session_name())
            self._last_job[job.input.name] = job
            slot.state, slot.job, slot.stats = "busy", job, None
            result = self.results[job.input.name]
            result.attempts, result.worker = job.attempt, slot.name
            result.started_s = time.monotonic() - self._t0
            self._pending[slot.actor.process.remote(job)] = ("task", slot)

    def _on_ready(self, ray: Any, ref: Any, slot: _Slot) -> None:
        try:
            slot.info = ray.get(ref)
        except VidsegError:
            raise  # the engine cannot be built (bad model, weights, backend): the same on every worker
        except Exception as err:  # noqa: BLE001 - the worker died while starting
            self.notes.append(f"worker {slot.name} did not start: {_first_line(err)}")
            self._kill(slot)
            self._replace()
            return
        slot.state = "idle"
        if self._first_ready is None:
            self._first_ready = time.monotonic()

    def _on_task(self, ray: Any, ref: Any, slot: _Slot, queue: deque[Job], live: deque[Job]) -> None:
        job, slot.job = slot.job, None
        assert job is not None
        try:
            outcome: Outcome = ray.get(ref)
        except Exception as err:  # noqa: BLE001 - sorted below: a dead worker, or the task's own exception
            if is_infrastructure_error(err):
                self._lost(slot, job, err, queue, live)
                return
            cause = getattr(err, "cause", None) or err  # a RayTaskError carries the task's own exception
            outcome = Outcome(job.input.name, False, 0, 0.0, slot.name,
                              error=redact(_first_line(cause), source=job.input.source))
        slot.state = "idle"
        self._finish(job, outcome)

    def _finish(self, job: Job, outcome: Outcome) -> None:
        result = self.results[job.input.name]
        result.attempts, result.worker = job.attempt, outcome.worker
        result.frames, result.wall_s, result.notes = outcome.frames, outcome.wall_s, list(outcome.notes)
        result.finished_s = time.monotonic() - self._t0
        if job.input.live and outcome.output:
            ended = "stopped" if outcome.stopped else "ended" if outcome.ok else "failed"
            result.sessions.append(Session(outcome.output, job.attempt, outcome.worker, outcome.frames, ended))
        if outcome.ok:
            result.status, result.output = "done", outcome.output
            if outcome.stopped:
                result.note = "stream stopped with the run; outputs up to then"
        else:
            result.status, result.error, result.output = "failed", outcome.error, outcome.output
            if outcome.output:
                result.note = f"outputs up to the failure kept ({outcome.frames} frames)"

    def _lost(self, slot: _Slot, job: Job, err: BaseException, queue: deque[Job], live: deque[Job]) -> None:
        """A worker or its node died during `job`: discard the attempt (a live input's finished outputs are kept
        as its session), retry it elsewhere (bounded)."""
        self._kill(slot)
        why = f"attempt {job.attempt} on {slot.name} lost: {death_cause(err)}"
        result = self.results[job.input.name]
        final = (find_session(self.out / job.input.name, job.session or "", self.run_id, job.attempt)
                 if job.input.live else self.out / job.input.name)
        record = read_record(final) if final is not None else None
        committed = (record is not None and record.get("run_id") == self.run_id
                     and record.get("attempt") == job.attempt
                     and (record.get("error") or check_record(final, job.identity, job.options) is None))
        kept = None if committed else self._keep(job.input.name, f"lost: {death_cause(err)}")
        result.retries.append(why + (f"; its {kept.frames} finished frames kept in {Path(kept.folder).name}"
                                     if kept else ""))
        if committed and record is not None:
            # it died after committing: the outputs are complete; nothing to redo
            self._finish(job, Outcome(job.input.name, not record.get("error"), int(record.get("frames", 0)),
                                      float(record.get("wall_s", 0.0)), slot.name, error=record.get("error"),
                                      output=str(final), stopped=bool(record.get("stopped"))))
        elif job.attempt <= self.max_retries:
            discard_staging(self.out, job.input.name)
            (live if job.input.live else queue).appendleft(replace(job, attempt=job.attempt + 1))
            result.status = "interrupted"
        else:
            discard_staging(self.out, job.input.name)
            result.status = "failed"
            result.error = f"given up after {job.attempt} attempts lost to dead workers or nodes"
            result.finished_s = time.monotonic() - self._t0
        self._replace()

    def _keep(self, name: str, why: str) -> Session | None:
        """A live input's dead attempt: its finished outputs committed as its session (see the module
        docstring); None for an offline input or when nothing whole was written."""
        job = self._last_job.get(name)
        if job is None or not job.input.live:
            return None
        kept = keep_lost_attempt(self.out, name, job.attempt, job.session or session_name(),
                                 identity=job.identity, options=job.options,
                                 extra={"run_id": self.run_id, "attempt": job.attempt,
                                        "error": f"attempt {job.attempt} {why}", "session": job.session})
        if kept is None:
            return None
        session = Session(str(kept[0]), job.attempt, self.results[name].worker, kept[1], why)
        self.results[name].sessions.append(session)
        return session

    def _replace(self) -> None:
        if self._spawns_left > 0:
            self._spawns_left -= 1
            self._spawn()

    def _give_up(self, queue: deque[Job], live: deque[Job], why: str) -> None:
        for job in (*queue, *live):
            result = self.results[job.input.name]
            result.status, result.error = "failed", why
        queue.clear()
        live.clear()
        self.notes.append(why)

    # progress ----------------------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        views, current = [], 0
        for slot in self._slots:
            stats = slot.stats if slot.state == "busy" else None
            current += stats.frames if stats else 0
            info = slot.info
            views.append(WorkerView(slot.name, info.host if info else "", info.node_id if info else "",
                                    info.device if info else "", slot.state,
                                    slot.job.input.name if slot.job else None, stats.frames if stats else 0,
                                    stats.fps if stats else 0.0))
        results = self.results.values()
        frames = sum(r.frames for r in results if r.status == "done") + current
        busy_s = now - self._first_ready if self._first_ready is not None else 0.0
        return Snapshot(
            total=len(self.results),
            done=sum(r.status == "done" for r in results),
            skipped=sum(r.status == "skipped" for r in results),
            failed=sum(r.status == "failed" for r in results),
            retried=sum(len(r.retries) for r in results),
            running=sum(s.state == "busy" for s in self._slots),
            frames=frames,
            fps=frames / busy_s if busy_s > 0 else 0.0,
            elapsed_s=now - self._t0,
            workers=tuple(views),
        )


def _ready(ray: Any, refs: list[Any], timeout: float) -> list[Any]:
    """Every ref that is ready, waiting up to `timeout` for the first one."""
    if not refs:
        time.sleep(timeout)
        return []
    first, rest = ray.wait(refs, num_returns=1, timeout=timeout)
    if not first:
        return []
    more, _ = ray.wait(rest, num_returns=len(rest), timeout=0) if rest else ([], [])
    return first + more


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200] if text else ''}".rstrip(": ")


def _resources(resources: dict[str, float]) -> str:
    return ", ".join(f"{k}={resources[k]:g}" for k in ("CPU", "GPU") if k in resources) or "none"

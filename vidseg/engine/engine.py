"""Engine: a model's stages, a method, a keyframe policy and a backend, run over frames.

    engine = Engine(EngineConfig(model="arseg-bise18-cityscapes", method="arseg"))
    for result in engine.run("clip.mp4"):          # FrameResult(index, pts, labels, is_key, ...)
        ...
    print(engine.summary)                         # frames, keyframes, frames/s, latency, drops, fallbacks

    summary = engine.run("clip.mp4", callback=fn)  # callback form: fn(result) for every frame
    result = engine.process_frame(rgb, motion=m)   # one camera frame at a time (robot loop)
    for result in engine.run_many([a, b]):         # several videos, keyframe work batched across them

The engine keeps the loop, the keyframe policy, the runner and device I/O; the method (`vidseg.engine.methods`)
owns everything method-specific: per-stream state and each frame's inputs. Per frame (`_submit`, then `_finish`
once the labels reached the host): policy decision -> method.prepare (plan + inputs) -> stage calls on the
runner -> labels at the frame size -> sinks.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidseg.config import EngineConfig
from vidseg.device import resolve_device
from vidseg.engine.backends import build_runner
from vidseg.engine.backends.auto import frame_mix
from vidseg.engine.backends.base import Runner
from vidseg.engine.loading import load_model
from vidseg.engine.methods import Method, method_for
from vidseg.engine.pipeline import Arrival, DeviceIO, Download, Prefetcher, Writer, frame_time
from vidseg.engine.plans import Plan, StageTiming, execute_plans, wall_timer
from vidseg.engine.results import FrameResult, LatencyStats, RunStats, RunSummary
from vidseg.engine.schedule import IntervalPolicy, KeyDecision, KeyframePolicy, make_policy
from vidseg.engine.streams import StreamKeeper, StreamState
from vidseg.errors import ConfigError, ShapeError, VidsegWarning
from vidseg.heap import retain_large_buffers
from vidseg.models.base import VideoSegModel, logits_to_labels, upsample_logits
from vidseg.video.frame import Frame, check_image
from vidseg.video.motion import as_motion_field
from vidseg.video.source import SourceOptions, describe_input, open_source

__all__ = ["Engine", "FrameResult", "RunSummary", "SourceFrame", "LatencyStats", "as_motion_field", "load_model"]

log = logging.getLogger("vidseg.engine")
log.addHandler(logging.NullHandler())  # library logging: silent unless the application configures logging

SourceFrame = Frame  # the name the engine's frame type had before sources and decoders shared one


@dataclass
class _Pending:
    frame: Frame
    decision: KeyDecision
    download: Download
    timings: list[StageTiming]
    origin: float  # when the frame's latency starts (`FrameResult.latency`)
    stream: int = 0
    motion: str = ""


class Engine:
    """Runs one model's stages with one method, keyframe policy and backend (see the module docstring).

    config: what to run (frozen). model: an already-built model (weights loaded) instead of config.model, e.g.
    for tests and embedding; the engine moves its stages to the device.
    """

    def __init__(self, config: EngineConfig | None = None, *, model: VideoSegModel | None = None) -> None:
        self.config = config or EngineConfig()
        self.model = model if model is not None else load_model(self.config)
        self.spec = self.model.spec
        self._fallbacks: list[str] = []
        self._notified: set[str] = set()
        self.method: Method = method_for(self.model, self.config, note=self._note)
        # A model that carries its compiled artifacts (an export folder) builds its own runner from them, at the
        # frame size it was exported for, if it is fixed; others give their stage modules to a backend.
        self._own_runner = getattr(self.model, "make_runner", None)
        self.input_size: tuple[int, int] | None = getattr(self.model, "fixed_input_size", None)
        if self._own_runner is None:
            stages = self.model.stages(**self.method.stage_options())
            self.stages = {name: stages[name] for name in self.method.stages}
        else:
            self.stages = {}
        # No drift guard for untrained weights (timing runs): their labels are noise, and so would their drift be.
        drift_guided = self.method.measures_drift and not self.config.random_weights
        self.policy: KeyframePolicy = (make_policy(self.config, motion_guided=self.method.uses_motion,
                                                   drift_guided=drift_guided)
                                       if self.method.uses_keyframes else IntervalPolicy(1))
        self.streams = StreamKeeper(self.method, self.policy, self.spec, self._note)
        self.device = resolve_device(self.config.device)
        if self.device.type == "cpu":
            retain_large_buffers()  # activations reused frame after frame, not page-faulted in again (vidseg.heap)
        self.io = DeviceIO(self.device, channels_last=self.config.channels_last)
        self.summary: RunSummary | None = None
        self._runner: Runner | None = None
        self.engine_choice = ""  # what --engine auto measured and chose (empty when a backend was named)
        self._build_s = 0.0  # seconds building the runner, this run
        self._built_at = 0.0  # perf_counter when the runner was last built (latency never counts the build)
        self._live: dict[Hashable, tuple[StreamState, int]] = {}  # process_frame's streams: state, next index

    # runner ------------------------------------------------------------------------------------------------
    @property
    def runner(self) -> Runner | None:
        return self._runner

    @property
    def lr_scale(self) -> float | None:
        """The arseg LR branch's scale (None for methods without one)."""
        return self.method.lr_scale

    @property
    def needs_motion(self) -> bool:
        """Whether sources should export codec motion vectors (the method or the keyframe policy reads them)."""
        return self.method.uses_motion or self.policy.uses_motion

    def _ensure_runner(self, frame_size: tuple[int, int]) -> Runner:
        if self._runner is None:
            start = time.perf_counter()
            frame_size = self.input_size or frame_size
            if self._own_runner is not None:
                self._runner = self._own_runner(self.config, frame_size, self.device)
                self._built_at = time.perf_counter()
                self._build_s += self._built_at - start
                return self._runner
            mix = frame_mix(self.method, self.config.keyframe_interval)
            built = build_runner(self.config, self.stages, frame_size, self.device, mix=mix)
            self._runner = built.runner
            self._built_at = time.perf_counter()
            self._build_s += self._built_at - start
            for why in built.skipped:
                self._note(f"backend auto skipped {why}")
            if built.choice is not None:
                self.engine_choice = built.choice.describe()
        return self._runner

    # public API --------------------------------------------------------------------------------------------
    def run(self, source: Any, *, sinks: Sequence[Any] = (), callback: Callable[[FrameResult], Any] | None = None,
            live: bool | None = None, max_frames: int | None = None, source_options: SourceOptions | None = None
            ) -> Iterator[FrameResult] | RunSummary:
        """Run over a source: a video path, a stream URL (rtsp://, http(s)://, tcp://, udp://, ...), a camera
        (/dev/video0 or its index), "-" (stdin), an image folder or glob, a numpy array (HxWx3 or TxHxWx3), an
        iterable of frames / arrays, or a `vidseg.video.source.Source` (`vidseg.video.source.open_source`).

        Without `callback`: an iterator of FrameResult (close it to stop early; outputs are flushed). With it:
        callback(result) for each frame, then the RunSummary. sinks get write(index, image, labels, pts=seconds
        or None) (or the three-argument write) from a writer thread and are closed at the end, also when the run
        fails or is interrupted. live: drop frames that arrive while the engine is busy (the newest wins; drops
        are counted) and measure latency from each frame's arrival; default: config.live, or the source is live
        (network streams and cameras). A file or image sequence is then read at its frame rate.
        source_options: how to open a source given by name (time-outs, reconnects, ...; `SourceOptions`).
        """
        if max_frames is not None and max_frames < 1:
            raise ConfigError(f"max_frames must be >= 1, got {max_frames}; pass None to process every frame")
        results = self._loop([source], [sinks], live=live, max_frames=max_frames, name=describe_input(source),
                             options=source_options)
        if callback is None:
            return results
        with contextlib.closing(results):
            for result in results:
                callback(result)
        assert self.summary is not None
        return self.summary

    def run_many(self, sources: Sequence[Any], *, sinks: Sequence[Sequence[Any]] | None = None
                 ) -> Iterator[FrameResult]:
        """Process several videos at once, round-robin, one frame of each stream per step.

        Stage calls that several streams make at the same step with the same input shapes (typically the key
        stage when their keyframes coincide, and the non-key stage) run as one batched call. Results come as
        FrameResult with `stream` set to the source's position; per stream they are in frame order and equal
        to a separate `run` of that source. sinks: one sequence of sinks per source (optional).
        """
        if self.config.live:
            raise ConfigError("run_many processes every frame of each video; live mode (dropping) is per stream: "
                              "use run(source, live=True) for each")
        sink_lists = list(sinks) if sinks is not None else [()] * len(sources)
        if len(sink_lists) != len(sources):
            raise ConfigError(f"run_many got {len(sources)} sources but {len(sink_lists)} sink lists")
        return self._loop(list(sources), sink_lists, live=False, max_frames=None, name=f"{len(sources)} streams")

    def process_frame(self, image: np.ndarray, *, motion: Any = None, pict_type: str = "?",
                      index: int | None = None, pts: Any = None, stream: Hashable = 0) -> FrameResult:
        """One frame from a camera or robot loop, processed synchronously; state carries over between calls.

        motion: codec motion (a MotionField) or a dense backward motion [2,h,w] (numpy or torch, pixels of its
        grid) from this frame to the previous one given; None when unknown. stream: which camera the frame
        comes from (any hashable key): each stream keeps its own keyframe state, so several cameras share one
        engine (one set of weights and compiled stages) without mixing. `reset()` starts a stream anew.
        """
        image = check_image(image)
        if motion is not None:
            motion = as_motion_field(motion, image.shape[:2])
        frame = Frame(self._live_index(stream, index), image, pts, pict_type, motion)
        arrival = Arrival(frame, self.io.upload(image), time.perf_counter())
        return self._process_live(stream, arrival)

    def upload(self, image: np.ndarray) -> Tensor:
        """A frame's uint8 HxWx3 image as the device tensor [1,3,H,W] the stages take (waits for the copy)."""
        tensor, event = self.io.upload(check_image(image))
        if event is not None:
            event.synchronize()
        return tensor

    def process_uploaded(self, frame: Frame, image: Tensor, *, stream: Hashable = 0) -> FrameResult:
        """`process_frame` for a frame whose image is already on the device (from `upload`, or a camera driver
        writing into device memory): no host-to-device copy on the path. `frame` is a `Frame` (its host image
        gives the size and the adaptive policy's residual); state carries over as in process_frame (per
        ``stream``)."""
        if tuple(image.shape[-2:]) != tuple(frame.image.shape[:2]) or not self.io.holds(image):
            raise ShapeError(
                f"process_uploaded: image {tuple(image.shape)} on {image.device} does not match frame {frame.index} "
                f"({frame.image.shape[0]}x{frame.image.shape[1]}) on {self.device}; use Engine.upload"
            )
        self._live_index(stream, frame.index)
        arrival = Arrival(frame, self.io.adopt(image), time.perf_counter())  # compute waits for its producer
        return self._process_live(stream, arrival)

    @property
    def notes(self) -> tuple[str, ...]:
        """Fallbacks and notices of the current or last run (also listed in `summary.fallbacks`)."""
        return tuple(self._fallbacks)

    def reset(self, stream: Hashable | None = None) -> None:
        """Forget the state of one `process_frame` stream, or of all of them (None): its next frame is a key."""
        if stream is None:
            self._live.clear()
        else:
            self._live.pop(stream, None)

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    # the loop ----------------------------------------------------------------------------------------------
    def _loop(self, sources: Sequence[Any], sink_lists: Sequence[Sequence[Any]], *, live: bool | None,
              max_frames: int | None, name: str, options: SourceOptions | None = None) -> Iterator[FrameResult]:
        """Every source's frames, round-robin, through `_submit` and `_finish`; results already produced are
        delivered (or at least written) before an error surfaces; sinks and sources are always closed and the
        summary is always set. live None: config.live, or whether the source is live."""
        stats = RunStats()
        self._fallbacks, self._notified, self._build_s = [], set(), 0.0
        writers = [Writer(s) if s else None for s in sink_lists]
        streams = [self.streams.new() for _ in sources]
        prefetchers: list[Prefetcher] = []
        opened_sources: list[Any] = []
        is_live = bool(live)
        inflight: deque[_Pending] = deque()
        interrupted = False
        error: BaseException | None = None
        with contextlib.ExitStack() as stack:
            try:
                for source in sources:
                    opened = stack.enter_context(open_source(source, motion=self.needs_motion, options=options))
                    opened_sources.append(opened)
                    is_live = (self.config.live or opened.live) if live is None else live
                    if is_live and not opened.live and opened.size:  # a paced file's clock starts once the
                        self._ensure_runner(opened.size)             # engine is ready; a camera's never waits
                    frames = opened if max_frames is None else islice(opened, max_frames)
                    prefetchers.append(Prefetcher(frames, depth=self.config.queue_depth, live=is_live,
                                                  pace=is_live and not opened.live, prepare=self._upload,
                                                  interrupt=getattr(opened, "stop", None)))
                active = {i: iter(p) for i, p in enumerate(prefetchers)}
                while active:
                    arrivals: dict[int, Arrival] = {}
                    for i, frames_in in list(active.items()):
                        try:
                            arrivals[i] = next(frames_in)
                        except StopIteration:
                            del active[i]
                    if not arrivals:
                        break
                    inflight.extend(self._submit(streams, arrivals, live=is_live, rerun=not is_live))
                    while inflight and (len(inflight) > self._runner.max_in_flight or inflight[0].download.ready()):
                        pending = inflight.popleft()
                        yield self._finish(pending, writers[pending.stream], stats)
            except (KeyboardInterrupt, GeneratorExit) as err:
                interrupted, error = True, err
            except BaseException as err:  # noqa: BLE001 - re-raised below, after flushing
                error = err
            finally:
                for prefetcher in prefetchers:
                    prefetcher.close()
            deliver = error is None or not interrupted
            while inflight:
                pending = inflight.popleft()
                result = self._finish(pending, writers[pending.stream], stats)
                if deliver:
                    yield result
            for writer in writers:
                if writer is not None:
                    try:
                        writer.close()
                    except BaseException as err:  # noqa: BLE001
                        error = error or err
            self.summary = stats.summary(
                source=name, method=self.method.name, policy=self.policy.describe(), interrupted=interrupted,
                backend=self._runner.describe() if self._runner is not None else self.config.backend,
                dropped=sum(p.dropped for p in prefetchers), fallbacks=tuple(self._fallbacks),
                startup_s=self._build_s, lr_scale=self.method.lr_scale, engine_choice=self.engine_choice,
                reconnects=sum(getattr(s, "reconnects", 0) for s in opened_sources),
                outside={"decode wait": sum(p.waited for p in prefetchers),
                         "write wait": sum(w.blocked for w in writers if w is not None)})
        if error is not None:
            if not isinstance(error, GeneratorExit):
                log.error("run over %s stopped after %d frames: %s", name, stats.frames, error)
            raise error

    def _upload(self, frame: Frame) -> Any:
        """Runs in the decode thread: check the frame's image and start its copy to the device."""
        return self.io.upload(check_image(frame.image))

    def _live_index(self, stream: Hashable, index: int | None) -> int:
        """The frame index of a process_frame stream (counted from 0 unless given); the next one is index + 1."""
        state, next_index = self._live.get(stream) or (self.streams.new(), 0)
        index = next_index if index is None else int(index)
        self._live[stream] = (state, index + 1)
        return index

    def _process_live(self, stream: Hashable, arrival: Arrival) -> FrameResult:
        result = self._finish(self._submit([self._live[stream][0]], {0: arrival})[0])
        return replace(result, stream=stream)

    # the per-frame steps -----------------------------------------------------------------------------------
    def _submit(self, streams: Sequence[StreamState], arrivals: Mapping[int, Arrival], *, live: bool = False,
                rerun: bool = False) -> list[_Pending]:
        """Decide, plan and issue the work for one frame of each arriving stream (asynchronous on CUDA).

        arrivals: stream index -> its frame. Identical stage calls of several streams run batched. live: latency
        counts from each frame's arrival, else from now. rerun: a non-keyframe that drifted past the limit runs
        again as a keyframe (`_rerun_drifted`; runs without a deadline), else the next frame is one.
        """
        ids = sorted(arrivals)
        for i in ids:
            self.streams.check(streams[i], arrivals[i].frame)
        runner = self._ensure_runner(arrivals[ids[0]].frame.size)
        started = time.perf_counter()  # after the one-off runner build, which the summary reports as start-up
        with self.io.compute():
            decisions, plans, inputs = [], [], []
            for i in ids:
                arrival, stream = arrivals[i], streams[i]
                decision = self.streams.decide(stream, arrival.frame, arrival.skipped)
                plan, frame_inputs = self.method.prepare(stream.method, arrival.frame,
                                                         (*arrival.skipped, arrival.frame), decision,
                                                         self._fit(self.io.accept(arrival.prepared)))
                decisions.append(decision)
                plans.append(plan)
                inputs.append(frame_inputs)
            logits, timings = self._execute(runner, ids, streams, arrivals, decisions, plans, inputs)
            if self.policy.uses_drift:
                timer = self.io.timer() or wall_timer
                for j, i in enumerate(ids):
                    spent = self.streams.measure_drift(streams[i], decisions[j], inputs[j], logits[j], timer)
                    if spent is not None:
                        timings[j].append(spent)
                if rerun:
                    self._rerun_drifted(runner, ids, streams, arrivals, decisions, plans, inputs, logits, timings)
            return [
                _Pending(arrivals[i].frame, decisions[j], *self._labels(logits[j], arrivals[i].frame, timings[j]),
                         self._latency_origin(arrivals[i], started, live), i, plans[j].motion)
                for j, i in enumerate(ids)
            ]

    def _execute(self, runner: Runner, ids: Sequence[int], streams: Sequence[StreamState],
                 arrivals: Mapping[int, Arrival], decisions: Sequence[KeyDecision], plans: Sequence[Plan],
                 inputs: Sequence[dict[str, Tensor]]) -> tuple[list[Tensor], list[list[StageTiming]]]:
        """Run the streams' plans (batched where they match); a failure is logged with each frame's plan."""
        try:
            return execute_plans(plans, inputs, [streams[i].method.tensors for i in ids], runner.run,
                                 timer=self.io.timer(), motion_convention=self.method.motion_convention)
        except Exception:
            for i, decision, plan in zip(ids, decisions, plans, strict=True):
                log.error("stream %d frame %s (%s) failed running %s", i, arrivals[i].frame.index,
                          decision.reason, plan.describe())
            raise

    def _rerun_drifted(self, runner: Runner, ids: Sequence[int], streams: Sequence[StreamState],
                       arrivals: Mapping[int, Arrival], decisions: list[KeyDecision], plans: list[Plan],
                       inputs: list[dict[str, Tensor]], logits: list[Tensor], timings: list[list[StageTiming]]
                       ) -> None:
        """A non-keyframe whose drift grew past the limit (`DriftGuard.after_drift`) runs again as a keyframe, and
        its result is replaced (both runs' stage times stay in its timings). For runs without a deadline (files):
        the frame itself then agrees with the key network; live runs and process_frame key the next frame
        instead, which costs no latency spike. Reading the drift waits for the frame's stages (on CUDA too)."""
        redo = []
        for j, i in enumerate(ids):
            stream, arrival = streams[i], arrivals[i]
            decision = self.streams.rekey(stream, arrival.frame)
            if decision is None:
                continue
            decisions[j] = decision
            plans[j], inputs[j] = self.method.prepare(stream.method, arrival.frame, (*arrival.skipped, arrival.frame),
                                                      decision, inputs[j]["image"])
            redo.append(j)
        if not redo:
            return
        again, again_timings = self._execute(runner, [ids[j] for j in redo], streams, arrivals,
                                             [decisions[j] for j in redo], [plans[j] for j in redo],
                                             [inputs[j] for j in redo])
        for j, result, spent in zip(redo, again, again_timings, strict=True):
            logits[j] = result
            timings[j].extend(spent)

    def _fit(self, image: Tensor) -> Tensor:
        """The frame at the size the runner was built for, when it takes one size only (a fixed-size export):
        resized bilinearly; its labels still come out at the frame's own size."""
        if self.input_size is None or tuple(image.shape[-2:]) == tuple(self.input_size):
            return image
        self._note(f"frames are resized to {self.input_size[0]}x{self.input_size[1]}, the size the model was "
                   "exported for (export with --dynamic to run at the frames' own size)")
        resized = F.interpolate(image.float(), size=self.input_size, mode="bilinear", align_corners=False,
                                antialias=True)
        return resized.round_().clamp_(0, 255).to(torch.uint8)

    def _latency_origin(self, arrival: Arrival, started: float, live: bool) -> float:
        """Live: when the frame arrived (the source's packet read, else its hand-over to the engine), but never
        before the runner build ended (start-up is reported apart); offline: when its processing started."""
        if not live:
            return started
        arrived = arrival.frame.arrived if arrival.frame.arrived is not None else arrival.arrived
        return max(arrived, self._built_at)

    def _labels(self, logits: Tensor, frame: Frame, timings: list[StageTiming]
                ) -> tuple[Download, list[StageTiming]]:
        """Start the label maps' download, and time their making as the frame's "labels" stage: the seed's last
        upsample and argmax, model work that the stages leave to this step so that it can run banded."""
        stop = (self.io.timer() or wall_timer)()
        up = self.spec.logits_upsample  # the seed's last upsample (BiSeNet's x8): banded here, in full if returned
        labels = logits_to_labels(logits, frame.size, align_corners=self.spec.logits_align_corners, upsample=up)
        keep = None
        if self.config.return_logits:
            if logits.device.type == "cpu":  # PyTorch's CPU resize runs 2x faster on channels_last
                logits = logits.contiguous(memory_format=torch.channels_last)
            keep = upsample_logits(logits, up)
        reading = stop()
        return self.io.download(labels, keep), [*timings, StageTiming("labels", reading)]

    def _finish(self, pending: _Pending, writer: Writer | None = None, stats: RunStats | None = None) -> FrameResult:
        labels, logits = pending.download.wait()
        latency = time.perf_counter() - pending.origin
        timings: dict[str, float] = {}
        for t in pending.timings:
            timings[t.stage] = timings.get(t.stage, 0.0) + t.seconds()
        frame = pending.frame
        result = FrameResult(
            index=frame.index, pts=frame.pts,
            labels=labels[0],
            is_key=pending.decision.is_key,
            key_distance=pending.decision.key_distance,
            timings=timings,
            logits=None if logits is None else logits[0],
            reason=pending.decision.reason,
            latency=latency,
            stream=pending.stream,
            motion="" if pending.decision.is_key else pending.motion,
        )
        if stats is not None:
            stats.add(result)
        if writer is not None:
            writer.put(frame.index, frame.image, result.labels, frame_time(frame), logits=result.logits)
        return result

    def _note(self, message: str) -> None:
        """A fallback or notice: warned once per run and recorded in the summary."""
        if message in self._notified:
            return
        self._notified.add(message)
        self._fallbacks.append(message)
        warnings.warn(message, VidsegWarning, stacklevel=3)

"""Engine: a model's stages, a method, a keyframe policy and a backend, run over frames.

    engine = Engine(EngineConfig(model="arseg-bise18-cityscapes", method="arseg"))
    for result in engine.run("clip.mp4"):          # FrameResult(index, pts, labels, is_key, ...)
        ...
    print(engine.summary)                         # frames, keyframes, frames/s, latency, drops, fallbacks

    summary = engine.run("clip.mp4", callback=fn)  # callback form: fn(result) for every frame
    result = engine.process_frame(rgb, motion=m)   # one camera frame at a time (robot loop)
    for stream, result in engine.run_many([a, b]): # several videos, keyframe work batched across them

The loop per frame (`_submit`, then `_finish` once the labels reached the host):
policy decision -> plan (method) -> stage calls on the runner -> labels at the frame size -> sinks.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vidseg.config import EngineConfig
from vidseg.device import resolve_device
from vidseg.engine.backends import build_runner
from vidseg.engine.backends.base import Runner
from vidseg.engine.methods import ARSeg, Method, Plan, StageTiming, execute_plans, fit_motion, make_method
from vidseg.engine.pipeline import Arrival, DeviceIO, Download, Prefetcher, Skipped, Writer, frame_time
from vidseg.engine.schedule import FrameMeta, IntervalPolicy, KeyDecision, KeyframePolicy, PolicyState, make_policy
from vidseg.errors import ConfigError, InputError, ShapeError
from vidseg.models.base import VideoSegModel, logits_to_labels
from vidseg.video.motion import MotionChain, MotionField

__all__ = ["Engine", "FrameResult", "RunSummary", "SourceFrame", "LatencyStats", "as_motion_field", "load_model"]

log = logging.getLogger("vidseg.engine")
log.addHandler(logging.NullHandler())  # library logging: silent unless the application configures logging


@dataclass(frozen=True)
class FrameResult:
    """One frame's answer.

    labels: uint8 [H, W] class ids at the frame's size. is_key / key_distance / reason: the policy's decision.
    timings: stage name -> seconds spent in that stage for this frame. latency: seconds from the start of this
    frame's processing to its labels on the host. logits: float [K, h, w] when the config asks for them.
    stream: the source's position in `run_many`, or the ``stream`` key given to `process_frame` (0 otherwise).
    """

    index: int
    pts: Any
    labels: np.ndarray
    is_key: bool
    key_distance: int
    timings: Mapping[str, float]
    logits: np.ndarray | None = None
    reason: str = ""
    latency: float = 0.0
    stream: Hashable = 0


@dataclass(frozen=True)
class SourceFrame:
    """A frame from a source other than `vidseg.video` (numpy arrays, a camera): same fields as video.Frame."""

    index: int
    image: np.ndarray
    pts: Any = None
    pict_type: str = "?"
    motion: Any = None


@dataclass(frozen=True)
class LatencyStats:
    count: int
    mean_ms: float
    p99_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencyStats:
        if not seconds:
            return cls(0, float("nan"), float("nan"))
        ms = np.asarray(seconds) * 1000.0
        return cls(len(ms), float(ms.mean()), float(np.percentile(ms, 99)))


@dataclass(frozen=True)
class RunSummary:
    """What a run did: counts, speed, latency per frame type, time per stage, drops and every fallback taken."""

    source: str
    method: str
    backend: str
    policy: str
    frames: int
    keyframes: int
    dropped: int
    wall_s: float
    latency: Mapping[str, LatencyStats]  # "key", "non-key", "all"
    stage_s: Mapping[str, float]  # total seconds per stage
    fallbacks: tuple[str, ...]
    interrupted: bool = False
    startup_s: float = 0.0  # building the runner at the first frame (in wall_s; not in any frame's latency)
    lr_scale: float | None = None  # the arseg LR branch's scale (None for other methods)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else float("nan")


class _Stats:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.frames = 0
        self.keyframes = 0
        self.latency: dict[str, list[float]] = {"key": [], "non-key": []}
        self.stage_s: dict[str, float] = {}

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        self.keyframes += result.is_key
        self.latency["key" if result.is_key else "non-key"].append(result.latency)
        for stage, seconds in result.timings.items():
            self.stage_s[stage] = self.stage_s.get(stage, 0.0) + seconds


@dataclass
class _Stream:
    """Per-stream state: policy state, the method's kept tensors, the motion chain back to the key."""

    policy_state: PolicyState = field(default_factory=PolicyState)
    state: dict[str, Tensor] = field(default_factory=dict)
    chain: MotionChain | None = None  # codec motion chained back to the key (arseg; built on first use)
    no_codec_motion: bool = False  # a predicted frame came without motion: the codec exports none
    key_gray: np.ndarray | None = None
    size: tuple[int, int] | None = None  # (H, W) of the frames the state belongs to


@dataclass
class _Pending:
    frame: Any
    decision: KeyDecision
    download: Download
    timings: list[StageTiming]
    started: float
    stream: int = 0


class Engine:
    """Runs one model's stages with one method, keyframe policy and backend (see the module docstring).

    config: what to run (frozen). model: an already-built model (weights loaded) instead of config.model, e.g.
    for tests and embedding; the engine moves its stages to the device.
    dense_mode: how codec motion is resized to the key feature grid (`MotionField.to_dense` modes); default
        "arseg" for AR-Seg models that keep the seed's warp convention (reproduces its checkpoints), else "area".
    chain_mode: `MotionChain` mode: "exact" (sub-pixel, on the codec's cell grid; default) or "arseg" (the
        seed's per-pixel integer chaining; slower).
    """

    def __init__(self, config: EngineConfig | None = None, *, model: VideoSegModel | None = None,
                 dense_mode: str | None = None, chain_mode: str = "exact") -> None:
        self.config = config or EngineConfig()
        self.model = model if model is not None else load_model(self.config)
        self.spec = self.model.spec
        if self.config.method not in self.model.methods:
            raise ConfigError(
                f"model {self.spec.name!r} does not support method {self.config.method!r}; it supports "
                f"{', '.join(self.model.methods)}"
            )
        self.lr_scale = _resolve_lr_scale(self.config, self.spec.lr_scale)
        self.stages = self.model.stages(lr_scale=self.lr_scale)
        self.method: Method = make_method(self.config.method, tuple(self.stages),
                                          flow_reference=self.spec.flow_reference)
        self.policy: KeyframePolicy = make_policy(self.config) if self.method.uses_keyframes else IntervalPolicy(1)
        self.device = resolve_device(self.config.device)
        # Codec motion: AR-Seg models whose warp follows the seed's convention also get the seed's motion resize.
        arseg_motion = getattr(self.model, "warp_convention", "exact") == "arseg"
        self.dense_mode = dense_mode or ("arseg" if arseg_motion else "area")
        self.chain_mode = chain_mode
        self.fit_convention = "arseg" if self.dense_mode == "arseg" else "exact"  # flow output -> feature grid
        self.io = DeviceIO(self.device, channels_last=self.config.channels_last)
        self.summary: RunSummary | None = None
        self._runner: Runner | None = None
        self._build_s = 0.0  # seconds spent building the runner during the current run
        self._fallbacks: list[str] = []
        self._notified: set[str] = set()
        self._live: dict[Hashable, tuple[_Stream, int]] = {}  # process_frame's streams: state, next index

    # runner ------------------------------------------------------------------------------------------------
    @property
    def runner(self) -> Runner | None:
        return self._runner

    def _ensure_runner(self, frame_size: tuple[int, int]) -> Runner:
        if self._runner is None:
            start = time.perf_counter()
            built = build_runner(self.config, self.stages, frame_size, self.device)
            self._runner = built.runner
            self._build_s += time.perf_counter() - start
            for why in built.skipped:
                self._note(f"backend auto skipped {why}")
        return self._runner

    @property
    def needs_motion(self) -> bool:
        return isinstance(self.method, ARSeg) or self.config.keyframes == "adaptive"

    # public API --------------------------------------------------------------------------------------------
    def run(self, source: Any, *, sinks: Sequence[Any] = (), callback: Callable[[FrameResult], Any] | None = None,
            live: bool | None = None, max_frames: int | None = None) -> Iterator[FrameResult] | RunSummary:
        """Run over a source: a video path, a numpy array (HxWx3 or TxHxWx3), or an iterable of frames / arrays.

        Without `callback`: an iterator of FrameResult (close it to stop early; outputs are flushed). With it:
        callback(result) for each frame, then the RunSummary. sinks get write(index, image, labels, pts=seconds
        or None) (or the three-argument write) from a writer thread and are closed at the end, also when the run
        fails or is interrupted. live (default: config.live): drop frames that arrive while the engine is busy; a
        file is then read at its frame rate.
        """
        live = self.config.live if live is None else live
        if max_frames is not None and max_frames < 1:
            raise ConfigError(f"max_frames must be >= 1, got {max_frames}; pass None to process every frame")
        results = self._iterate(source, sinks, live, max_frames)
        if callback is None:
            return results
        with contextlib.closing(results):
            for result in results:
                callback(result)
        assert self.summary is not None
        return self.summary

    def process_frame(self, image: np.ndarray, *, motion: Any = None, pict_type: str = "?",
                      index: int | None = None, pts: Any = None, stream: Hashable = 0) -> FrameResult:
        """One frame from a camera or robot loop, processed synchronously; state carries over between calls.

        motion: codec motion (a MotionField) or a dense backward motion [2,h,w] (numpy or torch, pixels of its
        grid) from this frame to the previous one given; None when unknown. stream: which camera the frame
        comes from (any hashable key): each stream keeps its own keyframe state, so several cameras share one
        engine (one set of weights and compiled stages) without mixing. `reset()` starts a stream anew.
        """
        image = _check_image(image)
        if motion is not None:
            motion = as_motion_field(motion, image.shape[:2])
        frame = SourceFrame(self._live_index(stream, index), image, pts, pict_type, motion)
        arrival = Arrival(frame, self.io.upload(image), time.perf_counter())
        return self._process_live(stream, arrival)

    def upload(self, image: np.ndarray) -> Tensor:
        """A frame's uint8 HxWx3 image as the device tensor [1,3,H,W] the stages take (waits for the copy)."""
        tensor, event = self.io.upload(_check_image(image))
        if event is not None:
            event.synchronize()
        return tensor

    def process_uploaded(self, frame: Any, image: Tensor, *, stream: Hashable = 0) -> FrameResult:
        """`process_frame` for a frame whose image is already on the device (from `upload`, or a camera driver
        writing into device memory): no host-to-device copy on the path. `frame` has the fields of `SourceFrame`
        (its host image gives the size and the adaptive policy's residual); state carries over as in
        process_frame (per ``stream``)."""
        if tuple(image.shape[-2:]) != tuple(frame.image.shape[:2]) or not self.io.holds(image):
            raise ShapeError(
                f"process_uploaded: image {tuple(image.shape)} on {image.device} does not match frame {frame.index} "
                f"({frame.image.shape[0]}x{frame.image.shape[1]}) on {self.device}; use Engine.upload"
            )
        self._live_index(stream, frame.index)
        arrival = Arrival(frame, self.io.adopt(image), time.perf_counter())  # compute waits for its producer
        return self._process_live(stream, arrival)

    def _live_index(self, stream: Hashable, index: int | None) -> int:
        """The frame index of a process_frame stream (counted from 0 unless given); the next one is index + 1."""
        state, next_index = self._live.get(stream) or (_Stream(), 0)
        index = next_index if index is None else int(index)
        self._live[stream] = (state, index + 1)
        return index

    def _process_live(self, stream: Hashable, arrival: Arrival) -> FrameResult:
        result = self._finish(self._submit([self._live[stream][0]], {0: arrival})[0])
        return replace(result, stream=stream)

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

    # single stream -----------------------------------------------------------------------------------------
    def _iterate(self, source: Any, sinks: Sequence[Any], live: bool, max_frames: int | None
                 ) -> Iterator[FrameResult]:
        stats = _Stats()
        self._fallbacks, self._notified, self._build_s = [], set(), 0.0
        writer = Writer(sinks) if sinks else None
        stream = _Stream()
        inflight: deque[_Pending] = deque()
        prefetch: Prefetcher | None = None
        interrupted = False
        error: BaseException | None = None
        with contextlib.ExitStack() as stack:
            try:
                frames, is_file = open_frames(source, motion=self.needs_motion)
                frames = _manage(stack, frames)
                if max_frames is not None:
                    frames = _take(frames, max_frames)
                prefetch = Prefetcher(frames, depth=self.config.queue_depth, live=live, pace=live and is_file,
                                      prepare=lambda f: self.io.upload(_check_image(f.image)))
                for arrival in prefetch:
                    inflight.extend(self._submit([stream], {0: arrival}))
                    while inflight and (len(inflight) > self._runner.max_in_flight or inflight[0].download.ready()):
                        yield self._finish(inflight.popleft(), writer, stats)
            except (KeyboardInterrupt, GeneratorExit) as err:
                interrupted, error = True, err
            except BaseException as err:  # noqa: BLE001 - re-raised below, after flushing
                error = err
            finally:
                if prefetch is not None:
                    prefetch.close()
            # Results already produced are delivered (or at least written) before the error surfaces.
            deliver = error is None or not interrupted
            while inflight:
                result = self._finish(inflight.popleft(), writer, stats)
                if deliver:
                    yield result
            if writer is not None:
                try:
                    writer.close()
                except BaseException as err:  # noqa: BLE001
                    error = error or err
            self.summary = self._summary(_describe_source(source), stats, [prefetch], interrupted)
        if error is not None:
            if not isinstance(error, GeneratorExit):
                log.error("run over %s stopped after %d frames: %s", _describe_source(source), stats.frames, error)
            raise error

    # the per-frame steps -----------------------------------------------------------------------------------
    def _submit(self, streams: Sequence[_Stream], arrivals: Mapping[int, Arrival]) -> list[_Pending]:
        """Decide, plan and issue the work for one frame of each arriving stream (asynchronous on CUDA).

        arrivals: stream index -> its frame. Identical stage calls of several streams run batched.
        """
        ids = sorted(arrivals)
        for i in ids:
            self._check_frame_size(streams[i], arrivals[i].frame)
        self._ensure_runner(arrivals[ids[0]].frame.image.shape[:2])
        started = time.perf_counter()  # after the one-off runner build, which the summary reports as start-up
        with self.io.compute():
            prepared = [
                self._prepare_frame(streams[i], arrivals[i].frame, self.io.accept(arrivals[i].prepared),
                                    arrivals[i].skipped)
                for i in ids
            ]
            try:
                logits, timings = execute_plans(
                    [p[1] for p in prepared], [p[2] for p in prepared], [streams[i].state for i in ids],
                    self._runner.run, timer=self.io.timer(), motion_convention=self.fit_convention,
                )
            except Exception:
                for i, (decision, plan, _) in zip(ids, prepared, strict=True):
                    log.error("stream %d frame %s (%s) failed running %s", i, arrivals[i].frame.index,
                              decision.reason, plan.describe())
                raise
            return [
                _Pending(arrivals[i].frame, prepared[j][0], self._labels(logits[j], arrivals[i].frame), timings[j],
                         started, i)
                for j, i in enumerate(ids)
            ]

    def _check_frame_size(self, stream: _Stream, frame: Any) -> None:
        """Every frame must span one cell of the feature grid, and a pixel in the low-resolution branch. A
        stream's state (key features, motion chain) belongs to one frame size: when the size changes mid-stream
        (adaptive-bitrate streams, joined clips), the stream starts over with a keyframe at the new size, said
        once per change. (Backends built for fixed shapes, ONNX and TensorRT, then refuse the new size.)"""
        size = tuple(frame.image.shape[:2])
        if size == stream.size:
            return
        smallest = max(1, int(self.spec.feature_stride))
        scales = [s.lr_scale for s in self.stages.values() if getattr(s, "lr_scale", None)]
        while scales and int(smallest * min(scales)) < 1:
            smallest += 1
        if min(size) < smallest:
            raise ShapeError(
                f"frame {frame.index} is {size[0]}x{size[1]}: too small for {self.spec.name!r}, which needs at "
                f"least {smallest}x{smallest} pixels (feature stride {self.spec.feature_stride}"
                + (f", low-resolution scale {min(scales)}" if scales else "") + "); upscale the frames"
            )
        if stream.size is not None:
            self._note(f"frame size changed at frame {frame.index} ({stream.size[0]}x{stream.size[1]} -> "
                       f"{size[0]}x{size[1]}): a new keyframe starts there")
            fresh = _Stream()
            for f in fields(_Stream):
                setattr(stream, f.name, getattr(fresh, f.name))
        stream.size = size

    def _prepare_frame(self, stream: _Stream, frame: Any, image: Tensor, skipped: Sequence[Skipped] = ()
                       ) -> tuple[KeyDecision, Plan, dict[str, Tensor]]:
        """Policy decision, the plan, and the plan's frame inputs (image, motion to the key)."""
        hops = (*skipped, frame)
        energies = [_hop_energy(h.motion) for h in hops]
        motion_energy = sum(energies) if all(e is not None for e in energies) else None  # type: ignore[arg-type]
        residual = None
        if self.config.keyframes == "adaptive" and motion_energy is None and stream.key_gray is not None:
            residual = float(np.abs(_gray(frame.image) - stream.key_gray).mean()) / 255.0 * 100.0
        pict_type = str(getattr(frame, "pict_type", None) or "?")
        meta = FrameMeta(
            index=frame.index,
            pict_type=pict_type,
            motion_energy=motion_energy,
            residual_energy=residual,
            chain_broken=any(s.motion is None and s.pict_type.upper() == "I" for s in skipped),
        )
        decision, stream.policy_state = self.policy.decide(stream.policy_state, meta)
        inputs = {"image": image}
        if decision.is_key:
            stream.chain = None
            if self.config.keyframes == "adaptive":
                stream.key_gray = _gray(frame.image)
            return decision, self.method.key_plan(), inputs
        if not isinstance(self.method, ARSeg):
            return decision, self.method.nonkey_plan(), inputs
        grid = self._motion_grid(stream, frame.image.shape[:2])
        is_intra = [str(h.pict_type or "?").upper() == "I" for h in hops]
        # A predicted frame without motion: the codec exports none (HEVC, VP9, ...; `vidseg.video.decode` gives
        # P/B-frames of exporting codecs a MotionField, all-invalid when intra-coded throughout).
        stream.no_codec_motion = stream.no_codec_motion or any(
            h.motion is None and not intra for h, intra in zip(hops, is_intra, strict=True)
        )
        if stream.no_codec_motion:
            fallback = "flow" if self.method.has_flow else "zero"
            self._note(
                "arseg motion: the video carries no codec motion vectors (e.g. HEVC or VP9); non-keyframes use "
                + ("the model's flow stage" if fallback == "flow" else "zero motion (the model has no flow stage)")
            )
            if fallback == "zero":
                inputs["motion"] = image.new_zeros((1, 2, *grid), dtype=torch.float32)
            return decision, self.method.nonkey_plan(fallback), inputs
        if any(is_intra):
            self._note(
                "arseg motion: an I-frame between keyframes carries no motion; motion through it counts as zero "
                "(as AR-Seg does); --keyframes gop makes every I-frame a keyframe"
            )
        inputs["motion"] = self._chained_motion(stream, frame, hops, grid)
        return decision, self.method.nonkey_plan("codec"), inputs

    def _chained_motion(self, stream: _Stream, frame: Any, hops: Sequence[Any], grid: tuple[int, int]) -> Tensor:
        """Push this frame's hops onto the stream's MotionChain; its map to the key, densified to the grid."""
        if stream.chain is None:
            cell = next((h.motion.cell for h in hops if h.motion is not None), 4)
            stream.chain = MotionChain(frame.image.shape[:2], mode=self.chain_mode, cell=cell)
            stream.chain.push(Skipped(stream.policy_state.key_index, "I", None), is_key=True)
        field = None
        for hop in hops:
            field = stream.chain.push(hop, is_key=False)
        dense, _valid = field.to_dense(grid, mode=self.dense_mode)
        tensor = torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32))[None]
        return tensor.to(self.device, non_blocking=True)

    def _motion_grid(self, stream: _Stream, size: tuple[int, int]) -> tuple[int, int]:
        key_features = stream.state.get("key_features")
        if key_features is not None:
            return tuple(key_features.shape[-2:])  # type: ignore[return-value]
        stride = max(1, int(self.spec.feature_stride))
        return (math.ceil(size[0] / stride), math.ceil(size[1] / stride))

    def _labels(self, logits: Tensor, frame: Any) -> Download:
        size = tuple(frame.image.shape[:2])
        if logits.device.type == "cpu":
            # PyTorch's CPU argmax over dim 1 of a contiguous NCHW map is ~7x slower than over channels_last.
            logits = logits.contiguous(memory_format=torch.channels_last)
        labels = logits_to_labels(logits, size, align_corners=self.spec.logits_align_corners)
        keep = logits if self.config.return_logits else None
        return self.io.download(labels, keep)

    def _finish(self, pending: _Pending, writer: Writer | None = None, stats: _Stats | None = None) -> FrameResult:
        labels, logits = pending.download.wait()
        latency = time.perf_counter() - pending.started
        timings: dict[str, float] = {}
        for t in pending.timings:
            timings[t.stage] = timings.get(t.stage, 0.0) + t.seconds()
        frame = pending.frame
        result = FrameResult(
            index=frame.index,
            pts=getattr(frame, "pts", None),
            labels=labels[0],
            is_key=pending.decision.is_key,
            key_distance=pending.decision.key_distance,
            timings=timings,
            logits=None if logits is None else logits[0],
            reason=pending.decision.reason,
            latency=latency,
            stream=pending.stream,
        )
        if stats is not None:
            stats.add(result)
        if writer is not None:
            writer.put(frame.index, frame.image, result.labels, frame_time(frame))
        return result

    def _note(self, message: str) -> None:
        """A fallback or notice: warned once per run and recorded in the summary."""
        if message in self._notified:
            return
        self._notified.add(message)
        self._fallbacks.append(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    def _summary(self, source: str, stats: _Stats, prefetchers: Sequence[Prefetcher | None],
                 interrupted: bool) -> RunSummary:
        latency = {k: LatencyStats.of(v) for k, v in stats.latency.items()}
        latency["all"] = LatencyStats.of(stats.latency["key"] + stats.latency["non-key"])
        return RunSummary(
            source=source,
            method=self.method.name,
            backend=self._runner.describe() if self._runner is not None else self.config.backend,
            policy=self.policy.describe(),
            frames=stats.frames,
            keyframes=stats.keyframes,
            dropped=sum(p.dropped for p in prefetchers if p is not None),
            wall_s=time.perf_counter() - stats.start,
            latency=latency,
            stage_s=dict(stats.stage_s),
            fallbacks=tuple(self._fallbacks),
            interrupted=interrupted,
            startup_s=self._build_s,
            lr_scale=self.lr_scale if isinstance(self.method, ARSeg) else None,
        )

    # several streams ---------------------------------------------------------------------------------------
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
        stats = _Stats()
        self._fallbacks, self._notified, self._build_s = [], set(), 0.0
        n = len(sources)
        writers = [Writer(s) if s else None for s in (sinks or [()] * n)]
        if len(writers) != n:
            raise ConfigError(f"run_many got {n} sources but {len(writers)} sink lists")
        streams = [_Stream() for _ in range(n)]
        prefetchers: list[Prefetcher] = []
        error: BaseException | None = None
        interrupted = False
        with contextlib.ExitStack() as stack:
            try:
                for source in sources:
                    frames, _ = open_frames(source, motion=self.needs_motion)
                    frames = _manage(stack, frames)
                    prefetchers.append(Prefetcher(frames, depth=self.config.queue_depth,
                                                  prepare=lambda f: self.io.upload(_check_image(f.image))))
                iters = [iter(p) for p in prefetchers]
                active = list(range(n))
                while active:
                    arrivals: dict[int, Arrival] = {}
                    for i in list(active):
                        try:
                            arrivals[i] = next(iters[i])
                        except StopIteration:
                            active.remove(i)
                    if not arrivals:
                        break
                    for pending in self._submit(streams, arrivals):
                        result = self._finish(pending, writers[pending.stream], stats)
                        yield result
            except (KeyboardInterrupt, GeneratorExit) as err:
                interrupted, error = True, err
            except BaseException as err:  # noqa: BLE001 - re-raised after flushing
                error = err
            finally:
                for p in prefetchers:
                    p.close()
            for w in writers:
                if w is not None:
                    try:
                        w.close()
                    except BaseException as err:  # noqa: BLE001
                        error = error or err
            self.summary = self._summary(f"{n} streams", stats, prefetchers, interrupted)
        if error is not None:
            raise error


# helpers ---------------------------------------------------------------------------------------------------
def _hop_energy(motion: Any) -> float | None:
    """Mean |motion| over the valid cells of one frame's codec motion, in percent of the frame width."""
    if motion is None or not motion.valid.any():
        return None
    vectors = motion.vectors[:, motion.valid]
    return float(np.sqrt((vectors**2).sum(0)).mean()) / motion.size[1] * 100.0


def as_motion_field(motion: Any, size: tuple[int, int], *, cell: int = 4) -> MotionField:
    """A MotionField as is; a dense backward motion [2,h,w] (numpy or torch, x then y, pixels of its own grid)
    converted to a MotionField of a frame of `size` with `cell`-pixel cells."""
    if isinstance(motion, MotionField):
        return motion
    tensor = torch.as_tensor(np.asarray(motion) if not isinstance(motion, Tensor) else motion).float().cpu()
    if tensor.dim() == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] != 2:
        raise ShapeError(f"dense motion must be [2,h,w] (x, y in pixels), got {tuple(tensor.shape)}")
    gh, gw = math.ceil(size[0] / cell), math.ceil(size[1] / cell)
    cells = fit_motion(tensor[None], (gh, gw))[0]
    frame_px = cells * torch.tensor([size[1] / gw, size[0] / gh]).view(2, 1, 1)  # MotionField: frame pixels
    ok = np.ones((gh, gw), bool)
    return MotionField(frame_px.numpy().astype(np.float32), ok, np.full((gh, gw), -1, np.int8), tuple(size), cell)


def _resolve_lr_scale(config: EngineConfig, model_scale: float) -> float:
    """The LR branch's scale: the config's; else the one the AR-Seg checkpoint's name carries (an LR net is
    trained for one scale: AR-Seg ships 0.3x-0.9x CamVid files); else the model's. A config scale that
    contradicts the file name is used, with a warning."""
    from vidseg.models.checkpoints import lr_scale_in_names

    named = lr_scale_in_names(config.weights, config.lr_scale) if config.method == "arseg" else None
    if config.lr_scale is None:
        return named if named is not None else model_scale
    if named is not None and not math.isclose(named, config.lr_scale):
        warnings.warn(f"lr_scale {config.lr_scale:g} differs from the {named:g} in the AR checkpoint's name "
                      f"({config.weights}); its LR network was trained at {named:g}", RuntimeWarning, stacklevel=3)
    return config.lr_scale


def load_model(config: EngineConfig) -> VideoSegModel:
    """The model the config names (the built-in demo model when none), with its weights loaded."""
    from vidseg.models import registry

    name = config.model or "demo"
    if config.model is None and name not in registry.list_models():
        raise ConfigError(
            "no model was given and the built-in demo model is not installed in this version of vidseg; "
            "pass --model NAME --weights PATH (vidseg-run --list-models lists the models)"
        )
    model = registry.build(name)
    if config.weights:
        from vidseg.models.checkpoints import load_weights

        load_weights(model, config.weights, config.lr_scale)
    return model.eval()


def open_frames(source: Any, *, motion: bool) -> tuple[Iterable, bool]:
    """A source -> (iterable of frames, is_file). Paths open through vidseg.video; arrays become SourceFrames."""
    if isinstance(source, (str, Path)):
        from vidseg.video.decode import open_video

        return open_video(source, motion=motion), True
    if isinstance(source, np.ndarray):
        arrays = source[None] if source.ndim == 3 else source
        return (SourceFrame(i, a) for i, a in enumerate(arrays)), False
    if isinstance(source, Iterable):
        return _frames_of(source), False
    raise InputError(f"cannot read frames from a {type(source).__name__}; give a video path, arrays or frames")


def _frames_of(items: Iterable) -> Iterator[Any]:
    for i, item in enumerate(items):
        yield SourceFrame(i, item) if isinstance(item, np.ndarray) else item


def _manage(stack: contextlib.ExitStack, frames: Any) -> Any:
    """Close a frame source when the run ends (a VideoSource is a context manager; a generator has close)."""
    if hasattr(frames, "__enter__"):
        return stack.enter_context(frames)
    if hasattr(frames, "close"):
        stack.callback(frames.close)
    return frames


def _take(frames: Iterable, n: int) -> Iterator[Any]:
    for i, frame in enumerate(frames):
        if i >= n:
            return
        yield frame


def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise InputError(f"frames must be RGB uint8 arrays of shape HxWx3, got {shape} {dtype}{_image_hint(image)}")
    if image.size == 0:
        raise InputError(f"frames must have pixels, got an empty {image.shape[0]}x{image.shape[1]} image")
    return image


def _image_hint(image: Any) -> str:
    """How to turn a common wrong frame layout into an RGB uint8 HxWx3 array."""
    if isinstance(image, Tensor):
        return "; convert a tensor with image.cpu().numpy() (and CHW to HWC with .permute(1, 2, 0) first)"
    if not isinstance(image, np.ndarray):
        return "; pass a numpy array"
    if image.ndim == 4 and image.shape[0] == 1:
        return "; pass one frame, image[0], not a batch"
    if image.ndim == 2:
        return "; make a grey image RGB with np.repeat(image[..., None], 3, axis=2)"
    if image.ndim == 3 and image.shape[2] == 4:
        return "; drop the alpha channel with image[..., :3]"
    if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[2] not in (1, 3, 4):
        return "; a CHW array becomes HWC with image.transpose(1, 2, 0)"
    if image.dtype != np.uint8 and np.issubdtype(image.dtype, np.floating):
        return ("; convert floats with (image * 255).round().astype(np.uint8) when they are in [0, 1], "
                "image.astype(np.uint8) when in [0, 255]")
    if image.dtype != np.uint8:
        return "; convert values in [0, 255] with image.astype(np.uint8)"
    return ""


def _gray(image: np.ndarray) -> np.ndarray:
    """A small grey image for the residual proxy (every 8th pixel)."""
    return image[::8, ::8].astype(np.float32).mean(axis=2)


def _describe_source(source: Any) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, np.ndarray):
        return f"array {tuple(source.shape)}"
    return type(source).__name__

"""Threads, bounded queues, CUDA streams and pinned memory around the engine's inference loop.

    decode thread --(bounded queue / live slot)--> inference (caller's thread) --(queue)--> writer thread
    frames, host->device upload on a copy stream      stages on the compute stream         sinks

- `Prefetcher` runs a frame iterator in its own thread, ahead of inference. Offline, it blocks when its queue
  (depth from the config) is full, so every frame is processed. Live, it keeps only the newest frame: a frame
  that arrives while the engine is busy replaces the waiting one and is counted as dropped; the dropped frames'
  metadata (picture type, motion; not the pixels) travel with the next delivered frame (`Arrival.skipped`), so
  motion chains and keyframe policies stay whole. Memory stays bounded however long the consumer stalls: past
  `MAX_SKIPPED` dropped frames the history folds into one marker that breaks the motion chain (a keyframe follows
  under the gop and adaptive policies; the interval policy counts the gap in frame indices).
  A `prepare` function runs in the thread too (on CUDA: copy into pinned memory and upload on a copy stream).
- `DeviceIO` owns the device side: uploads (pinned host buffer, non_blocking copy on a copy stream, an event the
  compute stream waits on) and downloads of label maps (non_blocking into pinned memory, an event to wait on).
  On CPU it is a no-op wrapper.
- `Writer` feeds the sinks from its own thread.

Both threads lower their own priority under the applied thread budget (`vidseg.threads`; a live source's decode
thread excepted: it must keep up with the arrivals), so that the model's threads never wait on them, and count the
time the consumer waited on them (`Prefetcher.waited`, `Writer.blocked`): the run summary's time outside the model
stages.

An exception in a worker thread is carried to the consumer and re-raised there, after the items delivered before
it; nothing is swallowed or merely printed inside a thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vidseg.threads import lower_thread_priority, side_nice
from vidseg.video.frame import Frame

__all__ = ["Arrival", "Prefetcher", "Writer", "DeviceIO", "Download", "WorkerError", "frame_time"]

_END = object()
MAX_SKIPPED = 64  # dropped frames' metadata carried to the next delivered frame, at most


class WorkerError(RuntimeError):
    """Not raised to users: the original exception is re-raised; this only names the thread in logs."""


@dataclass
class Arrival:
    """A frame handed to inference: the frame, its prepared tensors, when it arrived, the frames dropped before it
    (live mode; `Frame.without_image`)."""

    frame: Frame
    prepared: Any
    arrived: float
    skipped: tuple[Frame, ...] = ()


@dataclass
class _Failure:
    error: BaseException


class Prefetcher:
    """Iterates `frames` in a daemon thread; iterate the Prefetcher to receive `Arrival`s.

    depth: queue depth (offline). live: keep only the newest frame, count the rest as dropped.
    pace: live mode on a file: release each frame at its presentation time (frame.time or pts in seconds)
        after the first, as a camera would; without pacing a file would be read as fast as it decodes.
    prepare: runs in the thread on each frame (uploads); its result is Arrival.prepared.
    interrupt: called by `close()` before it waits for the thread, to cut short a source blocked in a wait (a
        live stream's reconnect back-off).
    """

    def __init__(self, frames: Iterable, *, depth: int = 4, live: bool = False, pace: bool = False,
                 prepare: Callable[[Any], Any] | None = None, name: str = "vidseg-decode",
                 interrupt: Callable[[], Any] | None = None) -> None:
        self.live = live
        self._interrupt = interrupt
        self.pace = pace
        self.dropped = 0
        self.waited = 0.0  # seconds the consumer waited for a frame
        self._nice = 0 if live else side_nice()  # a live source must keep up with its arrivals
        self._frames = frames
        self._prepare = prepare
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._cond = threading.Condition()
        self._slot: Arrival | None = None
        self._done: object | None = None  # _END or _Failure once the producer finished (live)
        self._clock_zero: float | None = None
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self._thread.start()

    # producer side -------------------------------------------------------------------------------------------
    def _produce(self) -> None:
        final: object = _END
        lower_thread_priority(self._nice)
        try:
            for frame in self._frames:
                if self._stop.is_set():
                    break
                if self.pace and not self._wait_until(frame):
                    break
                prepared = self._prepare(frame) if self._prepare is not None else None
                arrival = Arrival(frame, prepared, time.perf_counter())
                if self.live:
                    self._offer(arrival)
                elif not self._put(arrival):
                    break
        except BaseException as err:  # carried to the consumer, re-raised there
            final = _Failure(err)
        if self.live:
            with self._cond:
                self._done = final
                self._cond.notify_all()
        else:
            self._put(final, force=True)

    def _wait_until(self, frame: Any) -> bool:
        """Sleep until the frame's presentation time (relative to the first frame); False when stopped."""
        t = frame_time(frame)
        if t is None:
            return True
        if self._clock_zero is None:
            self._clock_zero = time.perf_counter() - t
        delay = self._clock_zero + t - time.perf_counter()
        return not (delay > 0 and self._stop.wait(delay))

    def _put(self, item: object, force: bool = False) -> bool:
        while True:
            if self._stop.is_set() and not force:
                return False
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                if self._stop.is_set():
                    return False

    def _offer(self, arrival: Arrival) -> None:
        with self._cond:
            old = self._slot
            if old is not None:
                self.dropped += 1
                skipped = (*old.skipped, old.frame.without_image())
                if len(skipped) > MAX_SKIPPED:  # fold the history: an intra frame without motion breaks the chain
                    skipped = (dataclasses.replace(skipped[-1], pict_type="I", motion=None),)
                arrival.skipped = skipped
            self._slot = arrival
            self._cond.notify_all()

    # consumer side -------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Arrival]:
        while True:
            start = time.perf_counter()
            item = self._take()
            self.waited += time.perf_counter() - start
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def _take(self) -> object:
        if not self.live:
            while True:
                try:
                    return self._queue.get(timeout=0.1)
                except queue.Empty:
                    if not self._thread.is_alive() and self._queue.empty():
                        return _Failure(WorkerError("the decode thread ended without a result"))
        with self._cond:
            while self._slot is None and self._done is None:
                self._cond.wait(0.1)
            if self._slot is not None:
                item, self._slot = self._slot, None
                return item
            return self._done

    def close(self) -> None:
        """Stop the thread (it finishes the frame in hand) and wait for it."""
        self._stop.set()
        if self._interrupt is not None:
            self._interrupt()
        while self._thread.is_alive():
            try:  # unblock a producer waiting on a full queue
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)


def frame_time(frame: Any) -> float | None:
    """A frame's presentation time in seconds (``frame.time``, else ``frame.pts``), None where it has none or
    it is not a number."""
    t = getattr(frame, "time", None)
    if t is None:
        t = getattr(frame, "pts", None)
    try:
        return None if t is None else float(t)
    except (TypeError, ValueError):
        return None


def _keywords(sink: Any) -> frozenset[str]:
    """The optional keywords (pts, logits) a sink's `write` takes; none for the older three-argument protocol
    or a builtin without a signature."""
    try:
        parameters = inspect.signature(sink.write).parameters.values()
    except (TypeError, ValueError):
        return frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return frozenset({"pts", "logits"})
    return frozenset(p.name for p in parameters if p.name in ("pts", "logits"))


class Writer:
    """Calls `sink.write(index, image, labels, pts=pts)` for every result, in order, in a thread; `close()`
    drains the queue, closes every sink and re-raises the first error of the thread (also raised at the next
    `put`). A sink whose `write` takes no ``pts`` (the older three-argument protocol) is called without it; one
    whose `write` takes ``logits`` also gets the frame's logits (float [K, h, w], when the engine keeps them)."""

    def __init__(self, sinks: Sequence[Any], depth: int = 8) -> None:
        self.sinks = list(sinks)
        self._keywords = [_keywords(sink) for sink in self.sinks]
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._closed = False
        self.blocked = 0.0  # seconds `put` waited for room in the queue
        self.busy = 0.0  # seconds the thread spent in the sinks' write
        self._nice = side_nice()
        self._thread = threading.Thread(target=self._work, name="vidseg-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        lower_thread_priority(self._nice)
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._error is not None:
                continue  # keep draining so put() never blocks; the error is raised by the consumer
            index, image, labels, extra = item
            start = time.perf_counter()
            try:
                for sink, keywords in zip(self.sinks, self._keywords, strict=True):
                    sink.write(index, image, labels, **{k: v for k, v in extra.items() if k in keywords})
            except BaseException as err:  # carried to the consumer
                self._error = err
            self.busy += time.perf_counter() - start

    def put(self, index: int, image: np.ndarray, labels: np.ndarray, pts: float | None = None,
            logits: np.ndarray | None = None) -> None:
        self._raise()
        start = time.perf_counter()
        self._queue.put((index, image, labels, {"pts": pts, "logits": logits}))
        self.blocked += time.perf_counter() - start

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def close(self) -> None:
        """Flush what was queued, close the sinks (even after an error), re-raise a write error. The wait counts
        in `blocked`."""
        if self._closed:
            return
        self._closed = True
        start = time.perf_counter()  # the consumer waits for the queue to drain and the files to close
        self._queue.put(_END)
        self._thread.join()
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except BaseException as err:  # noqa: BLE001 - every sink gets closed; the first error is raised
                errors.append(err)
        self.blocked += time.perf_counter() - start
        self._raise()
        if errors:
            raise errors[0]


@dataclass
class Download:
    """Label maps (and logits) on their way to the host; `wait()` returns them as numpy arrays."""

    labels: Tensor
    logits: Tensor | None = None
    event: Any = None

    def ready(self) -> bool:
        return self.event is None or self.event.query()

    def wait(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self.event is not None:
            self.event.synchronize()
        logits = None if self.logits is None else self.logits.float().numpy()
        return self.labels.numpy(), logits


class DeviceIO:
    """Host<->device transfers for one device. On CUDA: a copy stream, a compute stream, pinned buffers."""

    def __init__(self, device: torch.device, *, channels_last: bool = False) -> None:
        self.cuda = device.type == "cuda"
        if self.cuda and device.index is None:  # "cuda" is the current GPU; tensors always name theirs ("cuda:0")
            device = torch.device("cuda", torch.cuda.current_device())
        self.device = device
        self.channels_last = channels_last
        if self.cuda:
            self.copy_stream = torch.cuda.Stream(device)
            self.compute_stream = torch.cuda.Stream(device)

    def compute(self):
        """Context in which the inference work is issued."""
        if self.cuda:
            return torch.cuda.stream(self.compute_stream)
        return contextlib.nullcontext()

    def upload(self, image: np.ndarray) -> Any:
        """HxWx3 uint8 -> (device tensor [1,3,H,W] uint8, event). Thread-safe: called from the decode thread."""
        host = torch.from_numpy(np.ascontiguousarray(image))
        if not self.cuda:
            return self._nchw(host), None
        host = host.pin_memory()
        with torch.cuda.stream(self.copy_stream):  # the layout change too runs on the copy stream, before the event
            dev = self._nchw(host.to(self.device, non_blocking=True))
            event = torch.cuda.Event()
            event.record(self.copy_stream)
        return dev, event

    def _nchw(self, hwc: Tensor) -> Tensor:
        x = hwc.permute(2, 0, 1).unsqueeze(0)  # a channels_last view of the HWC buffer
        return x if self.channels_last else x.contiguous()

    def holds(self, tensor: Tensor) -> bool:
        """Whether the tensor is on this device (a bare "cuda" device is the current GPU)."""
        return tensor.device == self.device

    def adopt(self, tensor: Tensor) -> Any:
        """A tensor already on the device, written by work on the caller's current stream -> what `accept` takes:
        on CUDA an event on that stream, so the compute stream waits for the tensor's producer."""
        if not self.cuda:
            return tensor, None
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        return tensor, event

    def accept(self, prepared: Any) -> Tensor:
        """On the compute stream: wait for the upload, mark the memory as used by this stream."""
        tensor, event = prepared
        if event is not None:
            self.compute_stream.wait_event(event)
            tensor.record_stream(self.compute_stream)
        return tensor

    def download(self, labels: Tensor, logits: Tensor | None = None) -> Download:
        """Issue the device->host copies on the compute stream (call inside `compute()`)."""
        if not self.cuda:
            return Download(labels.cpu(), None if logits is None else logits.cpu())
        host = torch.empty(labels.shape, dtype=labels.dtype, pin_memory=True)
        host.copy_(labels, non_blocking=True)
        host_logits = None
        if logits is not None:
            host_logits = torch.empty(logits.shape, dtype=logits.dtype, pin_memory=True)
            host_logits.copy_(logits, non_blocking=True)
        event = torch.cuda.Event()
        event.record(self.compute_stream)
        return Download(host, host_logits, event)

    def timer(self) -> Callable[[], Callable[[], float]] | None:
        """CUDA-event timer for stage calls on the compute stream (None: host wall clock)."""
        if not self.cuda:
            return None
        stream = self.compute_stream

        def start() -> Callable[[], Callable[[], float]]:
            begin = torch.cuda.Event(enable_timing=True)
            begin.record(stream)

            def stop() -> Callable[[], float]:
                end = torch.cuda.Event(enable_timing=True)
                end.record(stream)
                return lambda: begin.elapsed_time(end) / 1000.0

            return stop

        return start


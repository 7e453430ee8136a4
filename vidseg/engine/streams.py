"""Per-stream keyframe bookkeeping: a stream's state, the keyframe decision for each of its frames, and when it
must start over.

A stream is one source the engine runs (a file, a camera, a `process_frame` caller). Its state is the method's
(key features, motion chain), the policy's, the keyframe's thumbnail (the residual proxy), the frame size and
source segment the state belongs to, and the last non-keyframe's drift. `StreamKeeper` holds what every stream
shares (method, policy, model spec, where notices go) and does the steps the engine calls per frame:

    keeper.check(stream, frame)                        # a new source segment or frame size: start over
    decision = keeper.decide(stream, frame, skipped)   # the policy's decision (previous drift, thumbnail)
    keeper.measure_drift(stream, decision, ...)        # after the stages ran (`DriftGuard`)
    keeper.rekey(stream, frame)                        # a drifted frame to run again as a key, or None
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from vidseg.engine.methods import Method, MethodState
from vidseg.engine.plans import StageTiming
from vidseg.engine.schedule import KeyDecision, KeyframePolicy, PolicyState, frame_meta, thumbnail
from vidseg.errors import ShapeError
from vidseg.models.base import ModelSpec
from vidseg.video.frame import Frame

__all__ = ["StreamState", "StreamKeeper"]


@dataclass
class StreamState:
    """One stream's state: the method's, the policy's, the key's thumbnail (residual proxy), the frame size and
    source segment it belongs to, and the last non-keyframe's drift (`Method.drift`, read at the next decision)."""

    method: MethodState
    policy: PolicyState = field(default_factory=PolicyState)
    key_thumb: np.ndarray | None = None
    size: tuple[int, int] | None = None  # (H, W) of the frames the state belongs to
    segment: int = 0  # the source's `Frame.segment` the state belongs to
    drift: Tensor | None = None


class StreamKeeper:
    """The per-frame keyframe steps of every stream of one engine (see the module docstring)."""

    def __init__(self, method: Method, policy: KeyframePolicy, spec: ModelSpec, note: Callable[[str], None]) -> None:
        self.method, self.policy, self.spec, self.note = method, policy, spec, note

    def new(self) -> StreamState:
        return StreamState(self.method.new_state())

    def check(self, stream: StreamState, frame: Frame) -> None:
        """A stream's state (key features, motion chain) belongs to one segment of the source and one frame size:
        when the source restarted (`Frame.segment`: a reconnect, a new snippet of an image sequence) the stream
        starts over with a keyframe, said once per run; so it does when the size changes (`_check_size`)."""
        if frame.segment != stream.segment:
            self.note("the source restarted (a reconnect, or a new snippet of an image sequence): the stream "
                      "starts over there with a keyframe")
            self._restart(stream)
            stream.segment = frame.segment
        self._check_size(stream, frame)

    def decide(self, stream: StreamState, frame: Frame, skipped: Sequence[Frame]) -> KeyDecision:
        """The keyframe policy's decision for a frame (the previous frame's drift read here: on CUDA this waits
        for that frame's stages)."""
        drift = None if stream.drift is None else float(stream.drift)
        stream.drift = None
        meta = frame_meta(frame, skipped, stream.key_thumb if self.policy.uses_residual else None, drift)
        decision, stream.policy = self.policy.decide(stream.policy, meta)
        return self._keyed(stream, frame, decision)

    def measure_drift(self, stream: StreamState, decision: KeyDecision, inputs: dict[str, Tensor], logits: Tensor,
                      timer: Callable[[], Callable[[], Callable[[], float]]]) -> StageTiming | None:
        """The method's drift of a non-keyframe, for the next decision (`DriftGuard`); its stage timing."""
        stream.drift = None
        if decision.is_key:
            return None
        stop = timer()
        stream.drift = self.method.drift(stream.method, inputs, logits)
        return StageTiming("drift", stop())

    def rekey(self, stream: StreamState, frame: Frame) -> KeyDecision | None:
        """For runs without a deadline: the decision to run a frame whose drift grew past the limit again as a
        key (`DriftGuard.after_drift`; the drift is read at once), or None to keep its non-key result."""
        if stream.drift is None:
            return None
        decision, stream.policy = self.policy.after_drift(stream.policy, frame.index, float(stream.drift))
        if decision is None:
            return None
        stream.drift = None
        return self._keyed(stream, frame, decision)

    def _keyed(self, stream: StreamState, frame: Frame, decision: KeyDecision) -> KeyDecision:
        """Say a decision's notice; on a key, keep its thumbnail when the policy compares frames with it."""
        if decision.notice is not None:
            self.note(decision.notice)
        if decision.is_key and self.policy.uses_residual:
            stream.key_thumb = thumbnail(frame.image)
        return decision

    def _restart(self, stream: StreamState) -> None:
        fresh = self.new()
        stream.method, stream.policy, stream.key_thumb, stream.drift = fresh.method, fresh.policy, None, None

    def _check_size(self, stream: StreamState, frame: Frame) -> None:
        """Every frame must span one cell of the feature grid, and a pixel in the low-resolution branch. A
        stream's state (key features, motion chain) belongs to one frame size: when the size changes mid-stream
        (adaptive-bitrate streams, joined clips), the stream starts over with a keyframe at the new size, said
        once per change. (Backends built for fixed shapes, ONNX and TensorRT, then refuse the new size.)"""
        size = frame.size
        if size == stream.size:
            return
        smallest = max(1, int(self.spec.feature_stride))
        scale = self.method.lr_scale
        while scale and int(smallest * scale) < 1:
            smallest += 1
        if min(size) < smallest:
            raise ShapeError(
                f"frame {frame.index} is {size[0]}x{size[1]}: too small for {self.spec.name!r}, which needs at "
                f"least {smallest}x{smallest} pixels (feature stride {self.spec.feature_stride}"
                + (f", low-resolution scale {scale}" if scale else "") + "); upscale the frames"
            )
        if stream.size is not None:
            self.note(f"frame size changed at frame {frame.index} ({stream.size[0]}x{stream.size[1]} -> "
                      f"{size[0]}x{size[1]}): a new keyframe starts there")
            self._restart(stream)
        stream.size = size

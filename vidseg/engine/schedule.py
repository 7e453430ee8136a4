"""Keyframe policies: which frames run the full (HR) network.

A policy is pure. Frame metadata goes in (`FrameMeta`: index, codec picture type, motion or residual energy), a
small frozen `KeyDecision(is_key, key_distance, reason)` comes out, together with the policy's next state. The
policy object itself only holds its parameters, so one policy serves any number of streams, each with its own
`PolicyState`; nothing here touches tensors or devices.

    policy = make_policy(config)
    state = policy.initial_state()
    for meta in metas:
        decision, state = policy.decide(state, meta)

Distances are counted in frame indices, not in processed frames, so that a live run which drops frames keeps
the same keyframe rhythm.

Methods that warp the keyframe's features along the codec motion chain (`Method.uses_motion`: arseg) get their
policy wrapped in `MotionRestarts`: a frame where the chain back to the key ends (an I-frame inside the interval,
a P-frame that is mostly intra-coded, i.e. a scene cut the encoder did not mark, or a chain broken by a dropped
I-frame) becomes a keyframe, as the non-key path would otherwise warp with zero motion from there on. Methods
that measure their non-keyframes' drift from the keyframe (`Method.measures_drift`: arseg) get `DriftGuard` on
top: where the non-key output's drift from the key grew too far (`EngineConfig.drift_limit`), that frame (files) or
the next (live) becomes a keyframe.

Energy units (adaptive policy):
    motion_energy   mean |codec motion| of the frame against its reference, in percent of the frame width
                    (3 px of mean motion in a 2048-wide frame is 0.15). Accumulated since the key.
    residual_energy mean absolute grey-level difference between the frame and the keyframe, in percent of 255
                    (a proxy when the codec exports no motion: HEVC, VP9, I-frames). Not accumulated: it
                    already measures the drift since the key.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vidseg.config import EngineConfig
from vidseg.errors import ConfigError
from vidseg.video.frame import Frame

__all__ = [
    "FrameMeta",
    "KeyDecision",
    "PolicyState",
    "KeyframePolicy",
    "IntervalPolicy",
    "GopPolicy",
    "AdaptivePolicy",
    "MotionRestarts",
    "DriftGuard",
    "SCENE_CUT_INTRA",
    "make_policy",
    "mark_keyframes",
    "frame_meta",
    "thumbnail",
]


@dataclass(frozen=True)
class FrameMeta:
    """What a policy may look at for one frame.

    index: frame index in the stream (0-based, display order).
    pict_type: the codec's picture type ("I", "P", "B") or "?" when unknown (camera frames).
    motion_energy: see the module docstring; None when the frame carries no codec motion.
    residual_energy: see the module docstring; None when not computed.
    chain_broken: the codec motion chain back to the previous frame is broken (a dropped intra frame in live
        mode), so motion-guided non-key paths would have no motion.
    intra_share: share (0..1) of the frame's motion cells that the codec coded without any motion vector
        (intra blocks), the largest over the hops since the last processed frame; None when the frame carries
        no motion field (I-frames, codecs that export none, camera frames).
    drift: share (0..1) of the previous processed frame's label grid where the method's non-key output departed
        from the keyframe's labels carried along the motion (`Method.drift`); None after a keyframe or when the
        method measures none.
    """

    index: int
    pict_type: str = "?"
    motion_energy: float | None = None
    residual_energy: float | None = None
    chain_broken: bool = False
    intra_share: float | None = None
    drift: float | None = None


@dataclass(frozen=True)
class KeyDecision:
    """is_key: run the keyframe path. key_distance: frames since the last key (0 on a key). reason: why.
    notice: a line for the run summary when the policy departed from its plain rule (said once per run)."""

    is_key: bool
    key_distance: int
    reason: str
    notice: str | None = None


@dataclass(frozen=True)
class PolicyState:
    """Per-stream state: index of the last key (None before the first frame), motion accumulated since, whether
    the stream has carried codec motion so far (`MotionRestarts`), and the drift of the first non-keyframe since
    the key (`DriftGuard`'s baseline)."""

    key_index: int | None = None
    energy: float = 0.0
    motion_seen: bool = False
    drift_base: float | None = None


class KeyframePolicy(ABC):
    """decide(state, meta) -> (KeyDecision, new state). The first frame of a stream is always a key."""

    name: ClassVar[str] = "?"
    uses_motion: ClassVar[bool] = False  # reads codec motion energy (the decoder must export vectors)
    uses_residual: ClassVar[bool] = False  # reads the residual proxy when a frame carries no motion
    uses_drift: ClassVar[bool] = False  # reads the method's drift of the previous frame (`DriftGuard`)

    def initial_state(self) -> PolicyState:
        return PolicyState()

    def decide(self, state: PolicyState, meta: FrameMeta) -> tuple[KeyDecision, PolicyState]:
        if state.key_index is None:
            return KeyDecision(True, 0, "first frame"), PolicyState(meta.index, 0.0)
        distance = meta.index - state.key_index
        if distance <= 0:
            raise ConfigError(
                f"frame indices must increase: frame {meta.index} came after keyframe {state.key_index}"
            )
        reason = self._key_reason(state, meta, distance)
        if reason is not None:
            return KeyDecision(True, 0, reason), PolicyState(meta.index, 0.0)
        return KeyDecision(False, distance, "non-key"), self._advance(state, meta)

    def after_drift(self, state: PolicyState, index: int, drift: float) -> tuple[KeyDecision | None, PolicyState]:
        """Frame `index` ran as a non-keyframe and drifted by `drift`: a decision to run it again as a key (None:
        keep it) and the state after it (only `DriftGuard` reads drift)."""
        return None, state

    @abstractmethod
    def _key_reason(self, state: PolicyState, meta: FrameMeta, distance: int) -> str | None:
        """Why this frame is a key, or None for a non-key frame."""

    def _advance(self, state: PolicyState, meta: FrameMeta) -> PolicyState:
        return state

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True)
class IntervalPolicy(KeyframePolicy):
    """A key every `interval` frames (by frame index since the last key)."""

    interval: int = 12
    name: ClassVar[str] = "interval"

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise ConfigError(f"keyframe interval must be >= 1, got {self.interval}")

    def _key_reason(self, state: PolicyState, meta: FrameMeta, distance: int) -> str | None:
        return f"interval {self.interval}" if distance >= self.interval else None

    def describe(self) -> str:
        return "every frame" if self.interval == 1 else f"every {self.interval} frames"


@dataclass(frozen=True)
class GopPolicy(KeyframePolicy):
    """Every codec I-frame is a key (AR-Seg's setting), and a frame after a broken motion chain.

    max_interval: also a key when this many frames passed without an I-frame (None: never), for streams whose
    picture types are unknown (camera frames) or whose GOPs are very long.
    """

    max_interval: int | None = None
    name: ClassVar[str] = "gop"

    def _key_reason(self, state: PolicyState, meta: FrameMeta, distance: int) -> str | None:
        if meta.pict_type.upper() == "I":
            return "I-frame"
        if meta.chain_broken:
            return "motion chain broken"
        if self.max_interval is not None and distance >= self.max_interval:
            return f"no I-frame for {self.max_interval} frames"
        return None

    def describe(self) -> str:
        cap = f", at most {self.max_interval} apart" if self.max_interval else ""
        return f"codec I-frames{cap}"


@dataclass(frozen=True)
class AdaptivePolicy(KeyframePolicy):
    """A key when the content drifted too far from the key, or after `max_interval` frames.

    Drift is the motion energy accumulated since the key (codec motion), or the residual proxy when the frame
    carries no motion; units in the module docstring. A codec I-frame inside a stream (a scene cut chosen by the
    encoder) and a broken motion chain are keys too.
    """

    threshold: float = 2.0
    residual_threshold: float = 8.0
    max_interval: int = 12
    name: ClassVar[str] = "adaptive"
    uses_motion: ClassVar[bool] = True
    uses_residual: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.threshold <= 0 or self.residual_threshold <= 0 or self.max_interval < 1:
            raise ConfigError(
                f"adaptive policy needs positive thresholds and max_interval >= 1, got threshold={self.threshold}, "
                f"residual_threshold={self.residual_threshold}, max_interval={self.max_interval}"
            )

    def _key_reason(self, state: PolicyState, meta: FrameMeta, distance: int) -> str | None:
        if distance >= self.max_interval:
            return f"max interval {self.max_interval}"
        if meta.pict_type.upper() == "I":
            return "I-frame"
        if meta.chain_broken:
            return "motion chain broken"
        if meta.motion_energy is not None:
            energy = state.energy + meta.motion_energy
            if energy > self.threshold:
                return f"motion energy {energy:.3g} > {self.threshold:g}"
        elif meta.residual_energy is not None and meta.residual_energy > self.residual_threshold:
            return f"residual {meta.residual_energy:.3g} > {self.residual_threshold:g}"
        return None

    def _advance(self, state: PolicyState, meta: FrameMeta) -> PolicyState:
        if meta.motion_energy is None:
            return state
        return PolicyState(state.key_index, state.energy + meta.motion_energy)

    def describe(self) -> str:
        return (
            f"adaptive (motion > {self.threshold:g} or residual > {self.residual_threshold:g}, "
            f"at most {self.max_interval} apart)"
        )


SCENE_CUT_INTRA = 0.8  # intra share at which a predicted frame counts as a scene cut (see MotionRestarts)


class _Wrapping(KeyframePolicy):
    """A policy that adds keys to another one (`inner`, a dataclass field of the subclass): the residual proxy
    and the initial state are the inner policy's."""

    inner: KeyframePolicy

    @property
    def uses_residual(self) -> bool:  # type: ignore[override]
        return self.inner.uses_residual

    def initial_state(self) -> PolicyState:
        return self.inner.initial_state()


@dataclass(frozen=True)
class MotionRestarts(_Wrapping):
    """Another policy's keys, plus a key wherever the codec motion chain back to the key ends.

    For methods that warp the keyframe's features along the codec motion (arseg): an I-frame carries no
    motion, so from an I-frame inside the interval on every non-keyframe would warp with zero motion, and a
    P-frame coded mostly intra (intra_share >= scene_cut: a scene cut the encoder left as a P-frame) has
    nothing to warp from; a chain broken by a dropped I-frame (live mode) likewise. Each such frame becomes a
    keyframe and the interval restarts there. scene_cut None: only I-frames and broken chains. I-frames count
    once the stream has carried codec motion: streams without it (HEVC, VP9, cameras) take their non-key motion
    from a flow stage or none at all, which an I-frame does not interrupt.

    How much of an ordinary P-frame is intra-coded depends on the bitrate and the noise: vidseg's synthetic
    roads (H.264, 256x512) have 12 % on average and at most 38 % at 0.5-1.5 Mb/s, 24 % and at most 51 % at
    0.2-0.5 Mb/s with strong sensor noise; a cut to another scene left as a P-frame has 99 %. 0.8 separates
    them with a margin (benchmarks/keyframe_restarts.py).
    """

    inner: KeyframePolicy = IntervalPolicy()
    scene_cut: float | None = SCENE_CUT_INTRA
    name: ClassVar[str] = "motion-restarts"
    uses_motion: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if isinstance(self.inner, MotionRestarts):
            raise ConfigError("MotionRestarts wraps a plain policy, not another MotionRestarts")
        if self.scene_cut is not None and not 0.0 < self.scene_cut <= 1.0:
            raise ConfigError(f"scene_cut must be in (0, 1] (a share of intra cells) or None, got {self.scene_cut}")

    def decide(self, state: PolicyState, meta: FrameMeta) -> tuple[KeyDecision, PolicyState]:
        seen = state.motion_seen or meta.intra_share is not None or meta.motion_energy is not None
        decision, after = self.inner.decide(state, meta)
        if not decision.is_key:
            reason, notice = self._restart(meta, state.motion_seen)
            if reason is not None:
                decision, after = KeyDecision(True, 0, reason, notice), PolicyState(meta.index, 0.0)
        return decision, dataclasses.replace(after, motion_seen=seen)

    def _restart(self, meta: FrameMeta, motion_seen: bool = True) -> tuple[str | None, str | None]:
        if meta.pict_type.upper() == "I" and motion_seen:
            return "I-frame (motion restarts)", (
                "keyframes: an I-frame inside the keyframe interval became a keyframe (the codec motion chain "
                "restarts there); the interval counts on from it")
        if meta.chain_broken:
            return "motion chain broken", None  # a live run dropped an I-frame: said by the drop count
        if self.scene_cut is not None and meta.intra_share is not None and meta.intra_share >= self.scene_cut:
            return f"scene cut ({meta.intra_share:.0%} intra)", (
                f"keyframes: a P-frame with at least {self.scene_cut:.0%} intra-coded blocks (a scene cut) became "
                "a keyframe")
        return None, None

    def _key_reason(self, state: PolicyState, meta: FrameMeta, distance: int) -> str | None:
        return self._restart(meta)[0]  # decide() above asks the inner policy first; this is for completeness

    def describe(self) -> str:
        cut = f" and scene cuts (>= {self.scene_cut:.0%} intra)" if self.scene_cut is not None else ""
        return f"{self.inner.describe()}, restarting at I-frames{cut}"


@dataclass(frozen=True)
class DriftGuard(_Wrapping):
    """Another policy's keys, plus a key right after a non-keyframe whose output drifted from the keyframe's.

    A keyframe method's cheap path can go wrong where nothing in the codec says so: the LR branch misreads a
    region (on real road footage, sky labelled road a few frames after each key), or the scene changes faster
    than the warped key feature can follow. The method measures each non-keyframe's `drift`, the share of its
    label grid that departs from the keyframe's labels carried along the same motion (`Method.drift`). Part of
    that is the cheap path's standing disagreement with the key network, already there at the first
    non-keyframe (10-35 % of the grid for the demo model on realistic roads, flat over the interval); keying on
    it would turn the method into per-frame at a higher cost. What the guard acts on is the growth since the
    interval's first non-keyframe (`PolicyState.drift_base`): when the drift exceeds that baseline by `limit`,
    the cheap path is losing the key and a key is due. The engine then runs that frame again as a key
    (`after_drift`: runs without a deadline) or makes the next frame a key (`decide` reads the previous frame's
    drift: live runs and process_frame, where latency is bounded).
    """

    inner: KeyframePolicy = IntervalPolicy()
    limit: float = 0.05
    name: ClassVar[str] = "drift-guard"
    uses_drift: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not 0.0 < self.limit <= 1.0:
            raise ConfigError(f"drift_limit (--drift-limit) must be in (0, 1] (a share of the label grid) or off, "
                              f"got {self.limit}")

    @property
    def uses_motion(self) -> bool:  # type: ignore[override]
        return self.inner.uses_motion

    def decide(self, state: PolicyState, meta: FrameMeta) -> tuple[KeyDecision, PolicyState]:
        decision, after = self.inner.decide(state, meta)
        if decision.is_key:
            return decision, dataclasses.replace(after, drift_base=None)
        if meta.drift is None:
            return decision, dataclasses.replace(after, drift_base=state.drift_base)
        base = meta.drift if state.drift_base is None else state.drift_base
        if meta.drift - base < self.limit:
            return decision, dataclasses.replace(after, drift_base=base)
        notice = (f"keyframes: a non-keyframe whose drift from the keyframe grew by {self.limit:.0%} of the map "
                  "made the next frame a keyframe (--drift-limit)")
        return (KeyDecision(True, 0, f"drift ({base:.0%} -> {meta.drift:.0%} off the key)", notice),
                dataclasses.replace(after, key_index=meta.index, energy=0.0, drift_base=None))

    def after_drift(self, state: PolicyState, index: int, drift: float) -> tuple[KeyDecision | None, PolicyState]:
        base = drift if state.drift_base is None else state.drift_base
        if drift - base < self.limit:
            return None, dataclasses.replace(state, drift_base=base)
        notice = (f"keyframes: a non-keyframe whose drift from the keyframe grew by {self.limit:.0%} of the map "
                  "ran again as a keyframe (--drift-limit)")
        return (KeyDecision(True, 0, f"drift ({base:.0%} -> {drift:.0%} off the key, re-run)", notice),
                dataclasses.replace(state, key_index=index, energy=0.0, drift_base=None))

    def _key_reason(self, state: PolicyState, meta: FrameMeta, distance: int) -> str | None:
        return None  # decide() above asks the inner policy first

    def describe(self) -> str:
        return f"{self.inner.describe()}, and where the drift from the key grows by {self.limit:.0%}"


def make_policy(config: EngineConfig, *, motion_guided: bool = False, drift_guided: bool = False
                ) -> KeyframePolicy:
    """The policy an EngineConfig asks for. The per-frame method needs no keys but gets the interval policy.

    motion_guided: the method warps the keyframe's features along the codec motion (`Method.uses_motion`), so
    frames where that motion restarts become keys too (`MotionRestarts`). drift_guided: the method measures its
    non-keyframes' drift (`Method.measures_drift`), so where it grew too far (`config.drift_limit`) a key is due
    too (`DriftGuard`)."""
    if config.keyframes == "interval":
        policy: KeyframePolicy = IntervalPolicy(config.keyframe_interval)
    elif config.keyframes == "gop":
        policy = GopPolicy()
    else:
        policy = AdaptivePolicy(
            threshold=config.adaptive_threshold,
            residual_threshold=4.0 * config.adaptive_threshold,
            max_interval=config.keyframe_interval,
        )
    if motion_guided:
        policy = MotionRestarts(policy)
    return DriftGuard(policy, config.drift_limit) if drift_guided and config.drift_limit is not None else policy


def frame_meta(frame: Frame, skipped: Sequence[Frame] = (), key_thumb: np.ndarray | None = None,
               drift: float | None = None) -> FrameMeta:
    """What a policy sees of a frame: its picture type, the codec motion energy of every hop since the last
    processed frame (the frames a live run dropped, then this one; None when a hop has no motion), the residual
    against the keyframe's `thumbnail` when given and there is no motion, whether a dropped I-frame broke the
    motion chain, the largest share of intra-coded cells (no vector at all) over the hops, and the previous
    processed frame's drift (given by the engine)."""
    hops = (*skipped, frame)
    energies = [None if h.motion is None else h.motion.energy() for h in hops]
    motion_energy = sum(energies) if all(e is not None for e in energies) else None  # type: ignore[arg-type]
    intra = [float((h.motion.ref == 0).mean()) for h in hops if h.motion is not None and h.motion.ref.size]
    residual = None
    if key_thumb is not None and motion_energy is None:
        residual = float(np.abs(thumbnail(frame.image) - key_thumb).mean()) / 255.0 * 100.0
    return FrameMeta(
        index=frame.index,
        pict_type=frame.pict_type or "?",
        motion_energy=motion_energy,
        residual_energy=residual,
        chain_broken=any(s.motion is None and s.pict_type.upper() == "I" for s in skipped),
        intra_share=max(intra) if intra else None,
        drift=drift,
    )


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A small grey image for the residual proxy (every 8th pixel)."""
    return image[::8, ::8].astype(np.float32).mean(axis=2)


def mark_keyframes(policy: KeyframePolicy, metas: Iterable[FrameMeta]) -> list[KeyDecision]:
    """Decisions for a whole sequence of frames (tests, offline planning)."""
    state = policy.initial_state()
    out = []
    for meta in metas:
        decision, state = policy.decide(state, meta)
        out.append(decision)
    return out

"""Keyframe policies on synthetic metadata sequences: no tensors, no video."""

from __future__ import annotations

import dataclasses

import pytest

from vidseg.config import EngineConfig
from vidseg.engine.schedule import (
    AdaptivePolicy,
    DriftGuard,
    FrameMeta,
    GopPolicy,
    IntervalPolicy,
    KeyDecision,
    MotionRestarts,
    frame_meta,
    make_policy,
    mark_keyframes,
)
from vidseg.errors import ConfigError


def keys(decisions: list[KeyDecision]) -> list[int]:
    return [i for i, d in enumerate(decisions) if d.is_key]


def test_interval_marks_every_l_frames_and_counts_distance():
    decisions = mark_keyframes(IntervalPolicy(4), [FrameMeta(i) for i in range(10)])
    assert keys(decisions) == [0, 4, 8]
    assert [d.key_distance for d in decisions] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert decisions[0].reason == "first frame"


def test_interval_counts_frame_indices_not_processed_frames():
    # A live run that dropped frames 2, 3 and 6: the rhythm follows the frame index.
    decisions = mark_keyframes(IntervalPolicy(4), [FrameMeta(i) for i in (0, 1, 4, 5, 7, 8, 9)])
    assert [d.is_key for d in decisions] == [True, False, True, False, False, True, False]
    assert decisions[4].key_distance == 3


def test_gop_keys_on_i_frames_only():
    types = "IPPPPPIPPPPPIP"
    decisions = mark_keyframes(GopPolicy(), [FrameMeta(i, t) for i, t in enumerate(types)])
    assert keys(decisions) == [0, 6, 12]
    assert decisions[6].reason == "I-frame"
    assert decisions[11].key_distance == 5


def test_gop_first_frame_is_key_even_when_predicted_and_max_interval_caps():
    decisions = mark_keyframes(GopPolicy(max_interval=5), [FrameMeta(i, "P") for i in range(12)])
    assert keys(decisions) == [0, 5, 10]


def test_gop_keys_after_a_broken_chain():
    metas = [FrameMeta(0, "I"), FrameMeta(1, "P"), FrameMeta(3, "P", chain_broken=True), FrameMeta(4, "P")]
    assert keys(mark_keyframes(GopPolicy(), metas)) == [0, 2]


def test_adaptive_accumulates_motion_energy_since_the_key():
    energies = [None, 0.5, 0.5, 0.5, 0.6, 0.1, 0.1, 0.1]
    metas = [FrameMeta(i, "P", motion_energy=e) for i, e in enumerate(energies)]
    decisions = mark_keyframes(AdaptivePolicy(threshold=2.0, max_interval=100), metas)
    # 0.5+0.5+0.5 = 1.5, + 0.6 = 2.1 > 2 -> key at 4; then 0.1s accumulate from zero.
    assert keys(decisions) == [0, 4]
    assert "motion energy" in decisions[4].reason


def test_adaptive_still_scene_keys_only_at_max_interval():
    metas = [FrameMeta(i, "P", motion_energy=0.0) for i in range(20)]
    assert keys(mark_keyframes(AdaptivePolicy(max_interval=8), metas)) == [0, 8, 16]


def test_adaptive_uses_the_residual_proxy_without_motion():
    residuals = [None, 1.0, 3.0, 9.5, 1.0, 20.0]
    metas = [FrameMeta(i, "P", residual_energy=r) for i, r in enumerate(residuals)]
    decisions = mark_keyframes(AdaptivePolicy(residual_threshold=8.0), metas)
    assert keys(decisions) == [0, 3, 5]
    assert decisions[3].reason.startswith("residual")


def test_adaptive_keys_on_a_scene_cut_i_frame():
    metas = [FrameMeta(0, "I"), FrameMeta(1, "P", motion_energy=0.0), FrameMeta(2, "I"), FrameMeta(3, "P")]
    assert keys(mark_keyframes(AdaptivePolicy(), metas)) == [0, 2]


def test_policies_are_pure_and_decisions_frozen():
    policy = IntervalPolicy(3)
    state = policy.initial_state()
    d1, s1 = policy.decide(state, FrameMeta(0))
    d2, s2 = policy.decide(state, FrameMeta(0))
    assert (d1, s1) == (d2, s2)
    assert state == policy.initial_state()  # the old state is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        d1.is_key = False  # type: ignore[misc]


def test_indices_must_increase():
    policy = IntervalPolicy(3)
    _, state = policy.decide(policy.initial_state(), FrameMeta(5))
    with pytest.raises(ConfigError, match="must increase"):
        policy.decide(state, FrameMeta(5))


def test_motion_restarts_keys_i_frames_inside_the_interval_and_counts_on_from_them():
    # GOP 6 under an interval of 5 (a real clip: GOP 30 under AR-Seg's 12): the I-frames at 6 and 12 end the
    # codec motion chain, so they become keys and the interval counts from them.
    metas = [FrameMeta(i, "I" if i % 6 == 0 else "P", motion_energy=None if i % 6 == 0 else 0.1,
                       intra_share=None if i % 6 == 0 else 0.02) for i in range(14)]
    plain = mark_keyframes(IntervalPolicy(5), metas)
    decisions = mark_keyframes(MotionRestarts(IntervalPolicy(5)), metas)
    assert keys(plain) == [0, 5, 10]
    assert keys(decisions) == [0, 5, 6, 11, 12]
    assert decisions[6].reason == "I-frame (motion restarts)" and decisions[6].notice is not None
    assert decisions[5].notice is None and decisions[5].reason == "interval 5"
    assert [d.key_distance for d in decisions[6:12]] == [0, 1, 2, 3, 4, 0]


def test_motion_restarts_keys_scene_cuts_and_broken_chains_not_ordinary_intra_blocks():
    shares = [None, 0.02, 0.3, 0.85, 0.01, 0.49]
    metas = [FrameMeta(i, "I" if s is None else "P", intra_share=s) for i, s in enumerate(shares)]
    metas.append(FrameMeta(7, "P", intra_share=0.0, chain_broken=True))
    decisions = mark_keyframes(MotionRestarts(IntervalPolicy(12)), metas)
    assert keys(decisions) == [0, 3, 6]
    assert decisions[3].reason == "scene cut (85% intra)" and "scene cut" in decisions[3].notice
    assert decisions[6].reason == "motion chain broken"
    assert keys(mark_keyframes(MotionRestarts(IntervalPolicy(12), scene_cut=None), metas)) == [0, 6]


def test_motion_restarts_ignore_i_frames_of_streams_without_codec_motion():
    # HEVC / VP9 / cameras: no motion on any frame, the non-key path estimates it (flow) or has none.
    metas = [FrameMeta(i, "I" if i % 6 == 0 else "P") for i in range(14)]
    assert keys(mark_keyframes(MotionRestarts(IntervalPolicy(5)), metas)) == [0, 5, 10]


def test_motion_restarts_leaves_the_inner_policys_own_keys_alone():
    metas = [FrameMeta(i, "I" if i % 6 == 0 else "P", intra_share=None if i % 6 == 0 else 0.0) for i in range(13)]
    decisions = mark_keyframes(MotionRestarts(GopPolicy()), metas)
    assert keys(decisions) == [0, 6, 12] and decisions[6].reason == "I-frame" and decisions[6].notice is None
    with pytest.raises(ConfigError):
        MotionRestarts(IntervalPolicy(5), scene_cut=1.5)


def test_frame_meta_reads_the_intra_share_of_the_codec_motion():
    import numpy as np

    from vidseg.video.frame import Frame
    from vidseg.video.motion import MotionField

    valid = np.zeros((4, 8), bool)
    valid[:, :2] = True  # 25 % of the cells carry a vector, 75 % are intra
    field = MotionField.from_dense(np.zeros((2, 4, 8), np.float32), valid)
    image = np.zeros((4, 8, 3), np.uint8)
    assert frame_meta(Frame(3, image, pict_type="P", motion=field)).intra_share == 0.75
    assert frame_meta(Frame(0, image, pict_type="I")).intra_share is None


def test_make_policy_from_config():
    assert make_policy(EngineConfig(keyframe_interval=7)) == IntervalPolicy(7)
    assert make_policy(EngineConfig(keyframe_interval=7), motion_guided=True) == MotionRestarts(IntervalPolicy(7))
    assert isinstance(make_policy(EngineConfig(keyframes="gop")), GopPolicy)
    adaptive = make_policy(EngineConfig(keyframes="adaptive", keyframe_interval=10, adaptive_threshold=1.5))
    assert adaptive == AdaptivePolicy(threshold=1.5, residual_threshold=6.0, max_interval=10)
    with pytest.raises(ConfigError):
        IntervalPolicy(0)


def test_drift_guard_keys_the_frame_after_the_drift_grew_and_counts_on_from_it():
    # FrameMeta.drift is the previous processed frame's (None after a key). The interval's first non-keyframe sets
    # the baseline (the cheap path's standing disagreement with the key); a key is due when the drift grew by the
    # limit: frame 4 follows 20 % -> 31 %; frames 6-7 sit at a high but steady 50-55 %; frame 8 follows 65 %.
    drifts = [None, None, 0.20, 0.25, 0.31, None, 0.5, 0.55, 0.65]
    metas = [FrameMeta(i, "P", drift=d) for i, d in enumerate(drifts)]
    decisions = mark_keyframes(DriftGuard(IntervalPolicy(12), 0.1), metas)
    assert keys(decisions) == [0, 4, 8]
    assert decisions[4].reason == "drift (20% -> 31% off the key)" and "--drift-limit" in decisions[4].notice
    assert [d.key_distance for d in decisions] == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    assert keys(mark_keyframes(IntervalPolicy(12), metas)) == [0]


def test_drift_guard_leaves_the_inner_policys_keys_and_state_alone():
    metas = [FrameMeta(i, "I" if i % 6 == 0 else "P", intra_share=None if i % 6 == 0 else 0.0,
                     motion_energy=None if i % 6 == 0 else 0.1, drift=0.9 if i == 6 else None) for i in range(13)]
    guarded = DriftGuard(MotionRestarts(IntervalPolicy(5)), 0.1)
    assert guarded.uses_motion and not guarded.uses_residual and guarded.uses_drift
    decisions = mark_keyframes(guarded, metas)
    assert keys(decisions) == keys(mark_keyframes(MotionRestarts(IntervalPolicy(5)), metas)) == [0, 5, 6, 11, 12]
    assert decisions[6].reason == "I-frame (motion restarts)"  # already a key: the inner policy's reason stays
    state = guarded.initial_state()
    for meta in (FrameMeta(0, "I"), FrameMeta(1, "P", intra_share=0.0), FrameMeta(2, "P", intra_share=0.0, drift=0.3),
                 FrameMeta(3, "P", intra_share=0.0, drift=0.5)):
        decision, state = guarded.decide(state, meta)
    assert decision.is_key and state.key_index == 3 and state.motion_seen  # it keeps what the inner policy learnt
    assert state.drift_base is None  # the next interval measures its own baseline
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="drift_limit"):
            DriftGuard(IntervalPolicy(5), bad)


def test_make_policy_guards_drift_only_for_methods_that_measure_it():
    config = EngineConfig(keyframe_interval=7)
    assert config.drift_limit == 0.05
    assert make_policy(config, motion_guided=True, drift_guided=True) == DriftGuard(MotionRestarts(IntervalPolicy(7)))
    assert make_policy(config, motion_guided=True) == MotionRestarts(IntervalPolicy(7))
    assert make_policy(config.replace(drift_limit=None), drift_guided=True) == IntervalPolicy(7)
    with pytest.raises(ConfigError, match="drift_limit"):
        EngineConfig(drift_limit=0.0)


def test_drift_guard_re_keys_a_frame_in_place_only_when_its_drift_grew_past_the_limit():
    guard = DriftGuard(MotionRestarts(IntervalPolicy(12)), 0.1)
    _, state = guard.decide(guard.initial_state(), FrameMeta(0, "I"))
    _, state = guard.decide(state, FrameMeta(1, "P", intra_share=0.0))
    decision, state = guard.after_drift(state, 1, 0.3)  # the first non-keyframe: the baseline, however high
    assert decision is None and state.drift_base == 0.3
    _, state = guard.decide(state, FrameMeta(2, "P", intra_share=0.0, drift=0.3))
    assert guard.after_drift(state, 2, 0.35)[0] is None
    decision, after = guard.after_drift(state, 2, 0.45)
    assert decision.is_key and decision.key_distance == 0
    assert decision.reason == "drift (30% -> 45% off the key, re-run)"
    assert after.key_index == 2 and after.motion_seen and after.drift_base is None
    following, _ = guard.decide(after, FrameMeta(3, "P", intra_share=0.0))
    assert not following.is_key and following.key_distance == 1  # the interval counts on from the re-keyed frame
    assert IntervalPolicy(12).after_drift(state, 2, 0.9) == (None, state)  # only the guard reads drift

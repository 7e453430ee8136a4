"""Keyframe policies on synthetic metadata sequences: no tensors, no video."""

from __future__ import annotations

import dataclasses

import pytest

from vidseg.config import EngineConfig
from vidseg.engine.schedule import (
    AdaptivePolicy,
    FrameMeta,
    GopPolicy,
    IntervalPolicy,
    KeyDecision,
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


def test_make_policy_from_config():
    assert make_policy(EngineConfig(keyframe_interval=7)) == IntervalPolicy(7)
    assert isinstance(make_policy(EngineConfig(keyframes="gop")), GopPolicy)
    adaptive = make_policy(EngineConfig(keyframes="adaptive", keyframe_interval=10, adaptive_threshold=1.5))
    assert adaptive == AdaptivePolicy(threshold=1.5, residual_threshold=6.0, max_interval=10)
    with pytest.raises(ConfigError):
        IntervalPolicy(0)

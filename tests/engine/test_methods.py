"""Each method gives the labels of a plain loop over the stage modules: the engine adds speed, not answers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from engine_tiny import TinyModel, make_frames

from vidseg.config import EngineConfig
from vidseg.engine.engine import Engine
from vidseg.engine.methods import make_method
from vidseg.engine.methods.arseg import ARSeg
from vidseg.engine.methods.flowwarp import FlowWarp
from vidseg.engine.methods.perframe import PerFrame
from vidseg.engine.plans import execute_plans
from vidseg.errors import ConfigError
from vidseg.models.base import logits_to_labels
from vidseg.video.decode import open_video
from vidseg.video.motion import MotionChain
from vidseg.video.motion import resize_motion as fit_motion

INTERVAL = 5


def _image(frame_image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame_image).permute(2, 0, 1)[None].contiguous()


def plain_loop(model: TinyModel, frames, method: str, *, interval: int = INTERVAL, motion: str = "codec"):
    """The obvious loop over the stages, without the engine: the reference the engine must reproduce."""
    stages = model.stages(lr_scale=0.5)
    out = []
    state: dict = {}
    key_index = None
    with torch.no_grad():
        for frame in frames:
            image = _image(frame.image)
            # arseg warps along the codec motion chain, which restarts at an I-frame: that frame is a key too.
            restart = method == "arseg" and motion == "codec" and frame.pict_type == "I"
            is_key = method == "per-frame" or key_index is None or frame.index - key_index >= interval or restart
            if is_key:
                key_index = frame.index
                logits, features = stages["key"](image)
                state = {"features": features, "image": image, "logits": logits}
                if motion == "codec":
                    state["chain"] = MotionChain(frame.image.shape[:2], cell=4)
                    state["chain"].push(frame, is_key=True)
            elif method == "arseg":
                grid = state["features"].shape[-2:]
                if motion == "codec":
                    dense, _ = state["chain"].push(frame, is_key=False).to_dense(tuple(grid), mode="area")
                    m = torch.from_numpy(dense)[None]
                elif motion == "flow":
                    (flow,) = stages["flow"](image, state["image"])
                    m = fit_motion(flow, tuple(grid))
                else:
                    m = torch.zeros(1, 2, *grid)
                logits, _ = stages["nonkey"](image, state["features"], m)
            else:
                (flow,) = stages["flow"](image, state["image"])
                (logits,) = stages["refine"](image, state["logits"], flow)
                state.update(image=image, logits=logits)
            out.append(logits_to_labels(logits, frame.image.shape[:2], align_corners=False)[0].numpy())
    return out


def engine_labels(model, source, method, **config):
    # drift_limit None: the plain loops key at the interval (the tiny model's random non-key output drifts)
    config = {"method": method, "keyframe_interval": INTERVAL, "device": "cpu", "channels_last": False,
              "drift_limit": None, **config}
    engine = Engine(EngineConfig(**config), model=model)
    results = list(engine.run(source))
    return results, engine.summary


@pytest.mark.parametrize("method", ["per-frame", "arseg", "flowwarp"])
def test_engine_matches_plain_loop_on_h264(method, h264_clip):
    model = TinyModel()
    with open_video(h264_clip, motion=True) as video:
        expected = plain_loop(model, video, method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the I-frame keyframe notice of arseg (GOP 6 vs interval 5)
        results, summary = engine_labels(model, h264_clip, method)
    assert len(results) == len(expected) == 14
    for result, labels in zip(results, expected, strict=True):
        np.testing.assert_array_equal(result.labels, labels, err_msg=f"{method} frame {result.index}")
    if method == "per-frame":
        assert all(r.is_key for r in results) and summary.keyframes == 14
    elif method == "arseg":  # the GOP-6 clip's I-frames at 6 and 12 restart the motion chain: keys there
        assert [r.index for r in results if r.is_key] == [0, 5, 6, 11, 12]
        assert [r.key_distance for r in results[:8]] == [0, 1, 2, 3, 4, 0, 0, 1]
        assert [r.reason for r in results if r.is_key][2] == "I-frame (motion restarts)"
        assert sum("I-frame inside the keyframe interval" in f for f in summary.fallbacks) == 1
        assert len(set(np.unique(results[3].labels))) > 1  # the tiny model's labels are not constant
    else:
        assert [r.index for r in results if r.is_key] == [0, 5, 10]
        assert [r.key_distance for r in results[:6]] == [0, 1, 2, 3, 4, 0]
        assert len(set(np.unique(results[3].labels))) > 1
    assert summary.frames == 14 and summary.dropped == 0


def test_arseg_codec_motion_is_used(h264_clip):
    """Zero motion would give other labels: the codec motion really reaches the non-key stage."""
    model = TinyModel()
    with open_video(h264_clip, motion=True) as video:
        zero = plain_loop(model, video, "arseg", motion="zero")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results, _ = engine_labels(model, h264_clip, "arseg")
    assert any((r.labels != z).any() for r, z in zip(results, zero, strict=True) if not r.is_key)


def test_arseg_without_codec_motion_falls_back_to_flow_and_says_so_once(hevc_clip):
    model = TinyModel()
    with open_video(hevc_clip, motion=True) as video:
        frames = list(video)
    assert all(f.motion is None for f in frames)
    expected = plain_loop(model, frames, "arseg", motion="flow")
    with pytest.warns(RuntimeWarning, match="no codec motion") as record:
        results, summary = engine_labels(model, hevc_clip, "arseg")
    assert sum("no codec motion" in str(w.message) for w in record) == 1
    assert [f for f in summary.fallbacks if "no codec motion" in f] == [
        "arseg motion: the video carries no codec motion vectors (e.g. HEVC or VP9); non-keyframes use the "
        "model's flow stage"
    ]
    for result, labels in zip(results, expected, strict=True):
        np.testing.assert_array_equal(result.labels, labels)
    assert summary.stage_s.keys() == {"key", "flow", "nonkey", "labels"}


def test_arseg_without_codec_motion_or_flow_stage_uses_zero_motion(hevc_clip):
    model = TinyModel(with_flow=False)
    with open_video(hevc_clip, motion=True) as video:
        expected = plain_loop(model, video, "arseg", motion="zero")
    with pytest.warns(RuntimeWarning, match="zero motion"):
        results, summary = engine_labels(model, hevc_clip, "arseg", keyframes="gop")
    assert any("zero motion" in f for f in summary.fallbacks)
    assert [r.index for r in results if r.is_key] == [0, 6, 12]  # GOP 6 clip, keys on I-frames
    expected_gop = plain_loop(model, _frames_of(hevc_clip), "arseg", interval=6, motion="zero")
    for result, labels in zip(results, expected_gop, strict=True):
        np.testing.assert_array_equal(result.labels, labels)
    assert len(expected) == len(results)


def _frames_of(path):
    with open_video(path, motion=True) as video:
        return list(video)


def test_gop_policy_on_h264_keys_on_i_frames_and_gives_no_fallback(h264_clip):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no I-frame note: every I-frame is a key
        results, summary = engine_labels(TinyModel(), h264_clip, "arseg", keyframes="gop")
    assert [r.index for r in results if r.is_key] == [0, 6, 12]
    assert summary.fallbacks == ()


def test_adaptive_policy_runs_on_codec_motion(h264_clip):
    results, summary = engine_labels(TinyModel(), h264_clip, "arseg", keyframes="adaptive", keyframe_interval=100,
                                     adaptive_threshold=5.0)
    keys = [r.index for r in results if r.is_key]
    # 2 px/frame on a 96-px frame is ~2.1 % of the width per frame: with threshold 5 a key every 3 frames, and
    # every codec I-frame (6, 12) is a key too.
    assert keys[0] == 0 and 6 in keys and 12 in keys
    assert 4 <= len(keys) <= 7


def test_methods_refuse_models_without_their_stages():
    assert make_method("per-frame", ["key"]).nonkey_plan().calls[0].stage == "key"
    with pytest.raises(ConfigError, match="flowwarp"):
        make_method("flowwarp", ["key", "nonkey"])
    with pytest.raises(ConfigError, match="unknown method"):
        make_method("nope", ["key"])
    assert isinstance(make_method("arseg", ["key", "nonkey"]), ARSeg)
    assert isinstance(make_method("flowwarp", ["key", "flow", "refine"]), FlowWarp)
    assert not PerFrame(["key"]).uses_keyframes


def test_execute_plans_batches_identical_calls_and_matches_separate_runs():
    model = TinyModel()
    stages = model.stages()
    method = FlowWarp(tuple(stages))
    frames = make_frames(3)
    calls = []

    def run(stage, inputs):
        calls.append((stage, inputs["image"].shape[0]))
        with torch.no_grad():
            return stages[stage].run(**inputs)

    states = [{}, {}]
    images = [_image(frames[0]), _image(frames[1])]
    logits, timings = execute_plans([method.key_plan()] * 2, [{"image": x} for x in images], states, run)
    assert calls == [("key", 2)]  # one batched call
    assert timings[0][0].shared_by == 2
    for x, out in zip(images, logits, strict=True):
        with torch.no_grad():
            alone = stages["key"](x)[0]
        torch.testing.assert_close(out, alone, rtol=1e-5, atol=1e-5)
    assert set(states[0]) == {"prev_logits", "prev_image"}
    # Different plans at one step: flow+refine for one stream, key for the other -> no batching across them.
    calls.clear()
    execute_plans([method.nonkey_plan(), method.key_plan()], [{"image": x} for x in images], states, run)
    assert calls == [("flow", 1), ("key", 1), ("refine", 1)]


def test_fit_motion_rescales_values_with_the_grid():
    m = torch.ones(1, 2, 8, 16)
    m[:, 1] = 2.0
    out = fit_motion(m, (4, 4))
    assert out.shape == (1, 2, 4, 4)
    torch.testing.assert_close(out[0, 0], torch.full((4, 4), 0.25))  # x: 16 -> 4
    torch.testing.assert_close(out[0, 1], torch.full((4, 4), 1.0))  # y: 8 -> 4
    arseg = fit_motion(m, (4, 4), convention="arseg")  # both by the height ratio
    torch.testing.assert_close(arseg[0, 0], torch.full((4, 4), 0.5))


def test_process_frame_without_motion_is_not_blamed_on_the_codec():
    engine = Engine(EngineConfig(method="arseg", keyframe_interval=4, device="cpu"), model=TinyModel())
    with pytest.warns(RuntimeWarning) as caught:
        for image in make_frames(3):
            engine.process_frame(image)
    messages = [str(w.message) for w in caught]
    assert any("no motion came with the frames" in m for m in messages)
    assert not any("HEVC" in m for m in messages)


def test_flowwarp_from_the_keyframe_keeps_the_keyframes_result():
    """SwiftNet-seq: every non-keyframe's flow starts at the keyframe, whose logits are what is warped."""
    stages = TinyModel().stages()
    method = make_method("flowwarp", tuple(stages), reference="key")
    assert method.nonkey_plan().keep == ()
    assert dict(method.key_plan().keep) == {"prev_logits": "out.logits", "prev_image": "frame.image"}
    assert make_method("flowwarp", tuple(stages)).nonkey_plan().keep == method.key_plan().keep


@pytest.mark.parametrize(("convention", "mode"), [("arseg", "arseg"), ("exact", "area")])
def test_arseg_resizes_codec_motion_as_training_does(convention, mode):
    """The engine and the LR training resize codec motion to the key feature grid by the same rule
    (`video.motion.dense_mode_for`): AR-Seg's own resize for its checkpoints, the exact area mean otherwise."""
    from vidseg.video.motion import dense_mode_for

    method = ARSeg(("key", "nonkey"), lr_scale=0.5, motion_convention=convention)
    assert method.dense_mode == dense_mode_for(convention) == mode


def test_arseg_drift_compares_the_non_key_labels_with_the_key_labels_carried_by_the_same_motion():
    method = ARSeg.for_model(TinyModel(), EngineConfig(method="arseg"))
    state = method.new_state()
    assert method.drift(state, {"motion": torch.zeros(1, 2, 16, 24)}, torch.randn(1, 5, 16, 24)) is None  # no key
    key = torch.randn(1, 5, 16, 24, generator=torch.Generator().manual_seed(3))
    state.tensors["key_logits"] = key
    motion = torch.zeros(1, 2, 16, 24)
    motion[:, 0] = 1.0  # each pixel comes from one pixel to its right in the key: the content moved left
    moved = torch.cat([key[..., 1:], key[..., -1:]], dim=-1)
    assert float(method.drift(state, {"motion": motion}, moved)) < 1 / 24 + 1e-6  # at most the border column
    assert float(method.drift(state, {"motion": torch.zeros_like(motion)}, moved)) > 0.5  # the motion matters
    assert float(method.drift(state, {"motion": motion}, moved.roll(1, dims=1))) > 0.9  # other classes everywhere
    assert method.drift(state, {}, moved) is None  # motion from the flow stage: not measured


def _growing_drift(self, state, inputs, logits):
    """A stand-in for ARSeg.drift: 20 % at the first non-keyframe after each key, 50 % after that."""
    first = getattr(state, "_drift_key", None) is not state.tensors["key_logits"]
    state._drift_key = state.tensors["key_logits"]
    return torch.tensor(0.2 if first else 0.5)


def test_a_drifted_non_keyframe_runs_again_as_a_keyframe_in_runs_without_a_deadline(h264_clip, monkeypatch):
    model = TinyModel()
    monkeypatch.setattr(ARSeg, "drift", _growing_drift)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guarded, summary = engine_labels(model, h264_clip, "arseg", keyframe_interval=12, drift_limit=0.1)
        plain, _ = engine_labels(model, h264_clip, "arseg", keyframe_interval=12)
        per_frame, _ = engine_labels(model, h264_clip, "per-frame")
    assert [r.index for r in plain if r.is_key] == [0, 6, 12]  # the GOP-6 clip's I-frames
    # each interval's first non-keyframe sets the baseline (20 %); the second grew to 50 %: it ran again as a key
    assert [r.index for r in guarded if r.is_key] == [0, 2, 4, 6, 8, 10, 12]
    assert guarded[2].reason == "drift (20% -> 50% off the key, re-run)"
    assert guarded[6].reason == "I-frame (motion restarts)"
    for result, reference in zip(guarded, per_frame, strict=True):
        if result.is_key:  # a re-run frame has the key network's labels
            np.testing.assert_array_equal(result.labels, reference.labels)
    assert {"nonkey", "drift", "key"} <= set(guarded[2].timings)  # both runs are counted
    assert sum("ran again as a keyframe" in note for note in summary.fallbacks) == 1
    assert not any("drift" in r.timings for r in plain)


def test_a_drifted_non_keyframe_makes_the_next_frame_a_keyframe_in_a_robot_loop(monkeypatch):
    """process_frame (a caller with a deadline) never runs a frame twice: the frame after the drift is a key."""
    monkeypatch.setattr(ARSeg, "drift", _growing_drift)
    engine = Engine(EngineConfig(method="arseg", keyframe_interval=12, device="cpu", drift_limit=0.1),
                    model=TinyModel())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no motion given: zero motion, said once
        results = [engine.process_frame(image) for image in make_frames(7)]
    assert [r.is_key for r in results] == [True, False, False, True, False, False, True]
    assert results[3].reason == "drift (20% -> 50% off the key)"
    assert "key" not in results[2].timings and "drift" in results[2].timings


def test_untrained_weights_run_without_the_drift_guard():
    from vidseg.engine.schedule import DriftGuard

    trained = Engine(EngineConfig(method="arseg", device="cpu"), model=TinyModel())
    untrained = Engine(EngineConfig(method="arseg", device="cpu", random_weights=True), model=TinyModel())
    assert isinstance(trained.policy, DriftGuard) and "drift" in trained.policy.describe()
    assert not untrained.policy.uses_drift  # its labels are noise, so is their drift: timing runs keep the interval


def test_re_runs_of_drifted_frames_in_several_streams_equal_separate_runs(h264_clip, tmp_path, monkeypatch):
    """run_many batches the streams' stage calls; a re-run concerns only the streams whose frame drifted."""
    import shutil

    other = tmp_path / "other.mp4"
    shutil.copy(h264_clip, other)

    def drift_of_one_stream(self, state, inputs, logits):  # only the first stream's frames drift
        first = getattr(state, "_drift_key", None) is not state.tensors["key_logits"]
        state._drift_key = state.tensors["key_logits"]
        return torch.tensor(0.2 if first or getattr(state, "_quiet", False) else 0.5)

    monkeypatch.setattr(ARSeg, "drift", drift_of_one_stream)
    config = EngineConfig(method="arseg", keyframe_interval=12, device="cpu", channels_last=False, drift_limit=0.1)
    engine = Engine(config, model=TinyModel())
    original_new_state = engine.method.new_state
    states = []

    def tracked_state():
        state = original_new_state()
        state._quiet = len(states) == 1  # the second stream's drift stays at its baseline
        states.append(state)
        return state

    monkeypatch.setattr(engine.method, "new_state", tracked_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = list(engine.run_many([str(h264_clip), str(other)]))
    keys = {s: [r.index for r in results if r.stream == s and r.is_key] for s in (0, 1)}
    assert keys == {0: [0, 2, 4, 6, 8, 10, 12], 1: [0, 6, 12]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone, _ = engine_labels(TinyModel(), h264_clip, "arseg", keyframe_interval=12, drift_limit=0.1)
    for got, want in zip([r for r in results if r.stream == 0], alone, strict=True):
        assert got.is_key == want.is_key
        np.testing.assert_allclose(got.labels, want.labels, atol=0)  # batched or not, the same labels

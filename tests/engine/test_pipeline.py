"""The pipeline around inference: live drops, errors carried out of threads, flushed outputs, several streams."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch
from engine_tiny import TinyModel, make_frames

from vidseg.config import EngineConfig
from vidseg.engine.engine import Engine, SourceFrame
from vidseg.engine.pipeline import Prefetcher, Writer
from vidseg.errors import InputError


class RecordingSink:
    def __init__(self) -> None:
        self.written: list[int] = []
        self.closed = False

    def write(self, index, image, labels) -> None:
        assert not self.closed
        assert labels.shape == image.shape[:2] and labels.dtype == np.uint8
        self.written.append(index)

    def close(self) -> None:
        self.closed = True


class SlowModel(TinyModel):
    """The tiny model whose stages each take at least `delay` seconds (a slow runner)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def stages(self, *, lr_scale=None):
        stages = super().stages(lr_scale=lr_scale)
        for stage in stages.values():
            stage.register_forward_hook(lambda *_: time.sleep(self.delay))
        return stages


def camera(frames: np.ndarray, fps: float, fail_at: int | None = None, exc: type[BaseException] = RuntimeError):
    for i, image in enumerate(frames):
        if i == fail_at:
            raise exc(f"camera failed at frame {i}")
        time.sleep(1.0 / fps)
        yield SourceFrame(i, image, pts=i / fps)


def cpu_config(**kw) -> EngineConfig:
    return EngineConfig(**{"device": "cpu", "channels_last": False, "keyframe_interval": 4, **kw})


def test_live_mode_drops_frames_that_arrive_while_busy_and_counts_them():
    frames = make_frames(30)
    engine = Engine(cpu_config(method="flowwarp", live=True), model=SlowModel(delay=0.03))
    results = list(engine.run(camera(frames, fps=200)))
    summary = engine.summary
    assert summary.dropped > 10  # 5 ms per frame in, >= 30-60 ms per frame out
    assert summary.frames == len(results) == 30 - summary.dropped
    indices = [r.index for r in results]
    assert indices == sorted(indices) and indices[-1] == 29  # the newest frame wins
    # Key rhythm follows frame indices (interval 4), whatever was dropped.
    for r in results:
        assert r.key_distance < 4


def test_offline_mode_processes_every_frame_of_a_slow_runner():
    engine = Engine(cpu_config(method="flowwarp"), model=SlowModel(delay=0.01))
    results = list(engine.run(camera(make_frames(12), fps=500)))
    assert [r.index for r in results] == list(range(12)) and engine.summary.dropped == 0


def test_live_mode_paces_a_file_at_its_frame_rate(h264_clip):
    # 14 frames at 25 fps take ~0.52 s to arrive; a fast engine drops nothing.
    engine = Engine(cpu_config(method="per-frame", live=True), model=TinyModel())
    start = time.perf_counter()
    results = list(engine.run(h264_clip))
    assert time.perf_counter() - start > 0.45
    assert len(results) + engine.summary.dropped == 14


def test_an_error_mid_stream_is_raised_after_earlier_results_are_flushed():
    sink = RecordingSink()
    engine = Engine(cpu_config(method="flowwarp"), model=TinyModel())
    got = []
    with pytest.raises(RuntimeError, match="camera failed at frame 6"):
        for result in engine.run(camera(make_frames(10), fps=1000, fail_at=6), sinks=[sink]):
            got.append(result.index)
    assert got == [0, 1, 2, 3, 4, 5]
    assert sink.written == got and sink.closed
    assert engine.summary.frames == 6


def test_keyboard_interrupt_in_the_source_leaves_outputs_flushed():
    sink = RecordingSink()
    engine = Engine(cpu_config(method="flowwarp"), model=TinyModel())
    with pytest.raises(KeyboardInterrupt):
        engine.run(camera(make_frames(10), fps=1000, fail_at=5, exc=KeyboardInterrupt), sinks=[sink],
                   callback=lambda r: None)
    assert sink.written == [0, 1, 2, 3, 4] and sink.closed
    assert engine.summary.interrupted


def test_ctrl_c_in_the_consumer_closes_the_run_and_flushes():
    sink = RecordingSink()
    engine = Engine(cpu_config(method="per-frame"), model=TinyModel())

    def callback(result):
        if result.index == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        engine.run(make_frames(10), sinks=[sink], callback=callback)
    assert sink.written == [0, 1, 2, 3] and sink.closed


def test_sinks_get_the_frames_timestamps_and_three_argument_sinks_still_work():
    class TimedSink(RecordingSink):
        def __init__(self) -> None:
            super().__init__()
            self.times: list = []

        def write(self, index, image, labels, pts=None) -> None:
            super().write(index, image, labels)
            self.times.append(pts)

    timed, plain = TimedSink(), RecordingSink()
    engine = Engine(cpu_config(), model=TinyModel())
    list(engine.run(camera(make_frames(5), fps=1000), sinks=[timed, plain]))
    assert timed.times == pytest.approx([i / 1000 for i in range(5)])
    assert plain.written == [0, 1, 2, 3, 4]


def test_the_runner_build_is_start_up_not_the_first_frames_latency(monkeypatch):
    import vidseg.engine.engine as engine_module

    real_build = engine_module.build_runner

    def slow_build(*args, **kwargs):
        time.sleep(0.3)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(engine_module, "build_runner", slow_build)
    engine = Engine(cpu_config(), model=TinyModel())
    results = list(engine.run(make_frames(3)))
    assert engine.summary.startup_s >= 0.3 and engine.summary.wall_s >= engine.summary.startup_s
    assert results[0].latency < 0.3
    list(engine.run(make_frames(2)))  # the runner is kept: no start-up in a second run
    assert engine.summary.startup_s == 0.0


def test_a_sink_error_is_carried_to_the_consumer():
    class Broken(RecordingSink):
        def write(self, index, image, labels):
            raise OSError("disk full")

    sink = Broken()
    engine = Engine(cpu_config(), model=TinyModel())
    with pytest.raises(OSError, match="disk full"):
        list(engine.run(make_frames(20), sinks=[sink]))
    assert sink.closed


def test_prefetcher_delivers_items_before_a_carried_error():
    def items():
        yield from (SourceFrame(i, np.zeros((2, 2, 3), np.uint8)) for i in range(3))
        raise ValueError("broken")

    prefetch = Prefetcher(items(), depth=1)
    seen = []
    with pytest.raises(ValueError, match="broken"):
        for arrival in prefetch:
            seen.append(arrival.frame.index)
    assert seen == [0, 1, 2]
    prefetch.close()


def test_prefetcher_close_stops_a_blocked_producer():
    def endless():
        i = 0
        while True:
            yield SourceFrame(i, np.zeros((2, 2, 3), np.uint8))
            i += 1

    prefetch = Prefetcher(endless(), depth=2)
    next(iter(prefetch))
    prefetch.close()
    assert not prefetch._thread.is_alive()


def test_writer_closes_sinks_even_when_one_fails():
    good, bad = RecordingSink(), RecordingSink()
    bad.close = lambda: (_ for _ in ()).throw(OSError("cannot close"))  # type: ignore[method-assign]
    writer = Writer([good, bad])
    writer.put(0, np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.uint8))
    with pytest.raises(OSError, match="cannot close"):
        writer.close()
    assert good.closed and good.written == [0]


@pytest.mark.parametrize("method", ["per-frame", "arseg", "flowwarp"])
def test_run_many_equals_separate_runs(method, h264_clip, tmp_path):
    from engine_tiny import encode_clip

    other = encode_clip(tmp_path / "other.mp4", make_frames(11, seed=5, shift=3), gop=4)
    config = cpu_config(method=method, keyframes="gop")
    model = TinyModel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        separate = [list(Engine(config, model=model).run(src)) for src in (h264_clip, other, h264_clip)]
        engine = Engine(config, model=model)
        results = list(engine.run_many([h264_clip, other, h264_clip]))
    for stream, expected in enumerate(separate):
        got = [r for r in results if r.stream == stream]
        assert [r.index for r in got] == [r.index for r in expected]
        for a, b in zip(got, expected, strict=True):
            assert a.is_key == b.is_key and a.key_distance == b.key_distance
            np.testing.assert_array_equal(a.labels, b.labels)
    assert engine.summary.frames == 14 + 11 + 14


def test_run_many_batches_coinciding_keyframes(h264_clip):
    model = TinyModel()
    engine = Engine(cpu_config(method="arseg", keyframes="gop"), model=model)
    batches = []
    original = engine._ensure_runner

    def spy(size):
        runner = original(size)
        if not getattr(runner, "_spied", False):
            run = runner.run

            def counting(stage, inputs):
                batches.append((stage, inputs["image"].shape[0]))
                return run(stage, inputs)

            runner.run, runner._spied = counting, True
        return runner

    engine._ensure_runner = spy
    list(engine.run_many([h264_clip, h264_clip]))
    assert ("key", 2) in batches and ("nonkey", 2) in batches
    assert all(n == 2 for _, n in batches)  # identical streams: every call batched


def test_process_frame_equals_run_and_carries_state():
    frames = make_frames(9)
    config = cpu_config(method="flowwarp")
    expected = list(Engine(config, model=TinyModel()).run(frames))
    engine = Engine(config, model=TinyModel())
    got = [engine.process_frame(image) for image in frames]
    for a, b in zip(got, expected, strict=True):
        assert (a.index, a.is_key, a.key_distance) == (b.index, b.is_key, b.key_distance)
        np.testing.assert_array_equal(a.labels, b.labels)
    engine.reset()
    assert engine.process_frame(frames[0]).is_key


def test_process_frame_keeps_one_state_per_camera_stream():
    """Two cameras interleaved through one engine give what each gives alone; reset(stream) restarts one."""
    front, rear = make_frames(9), make_frames(7)[::-1].copy()
    config = cpu_config(method="flowwarp")
    alone = {name: list(Engine(config, model=TinyModel()).run(frames))
             for name, frames in (("front", front), ("rear", rear))}
    engine = Engine(config, model=TinyModel())
    got: dict[str, list] = {"front": [], "rear": []}
    for i in range(9):
        got["front"].append(engine.process_frame(front[i], stream="front"))
        if i < 7:
            got["rear"].append(engine.process_frame(rear[i], stream="rear"))
    for name in ("front", "rear"):
        assert [r.stream for r in got[name]] == [name] * len(alone[name])
        for a, b in zip(got[name], alone[name], strict=True):
            assert (a.index, a.is_key, a.key_distance) == (b.index, b.is_key, b.key_distance)
            np.testing.assert_array_equal(a.labels, b.labels)
    engine.reset("rear")
    assert engine.process_frame(rear[0], stream="rear").is_key
    assert not engine.process_frame(front[0], stream="front").is_key  # index 9: distance 1 from key 8


def test_the_lr_scale_comes_from_the_ar_checkpoints_name_unless_given():
    """AR-Seg trains one LR network per scale and names its file by it (evaluation matches `--test_scale`)."""
    weights = "ckpt/HR/PSPNet_resnet18_1.0_99_.pth,ckpt/AR/PSPNet_resnet18_0.3_99_.pth"
    engine = Engine(cpu_config(method="arseg", weights=weights), model=TinyModel())
    assert engine.lr_scale == 0.3 and engine.stages["nonkey"].lr_scale == 0.3
    assert Engine(cpu_config(method="arseg"), model=TinyModel()).lr_scale == TinyModel().spec.lr_scale
    with pytest.warns(RuntimeWarning, match="differs from the 0.3"):
        assert Engine(cpu_config(method="arseg", weights=weights, lr_scale=0.5), model=TinyModel()).lr_scale == 0.5
    list(engine.run(make_frames(2)))
    assert engine.summary.lr_scale == 0.3


def test_process_frame_takes_dense_motion_for_arseg():
    frames = make_frames(3)
    engine = Engine(cpu_config(method="arseg"), model=TinyModel())
    engine.process_frame(frames[0])
    still = engine.process_frame(frames[1], motion=np.zeros((2, 16, 24), np.float32), pict_type="P")
    engine.reset()
    engine.process_frame(frames[0])
    moved = engine.process_frame(frames[1], motion=np.full((2, 16, 24), 3.0, np.float32), pict_type="P")
    assert not still.is_key and (still.labels != moved.labels).any()


def test_callback_form_returns_the_summary_and_logits_on_request():
    seen = []
    engine = Engine(cpu_config(method="flowwarp", return_logits=True), model=TinyModel())
    summary = engine.run(make_frames(5), callback=seen.append)
    assert summary.frames == 5 and summary.keyframes == 2 and len(seen) == 5
    assert seen[0].logits.shape == (5, 16, 24)
    assert set(seen[0].timings) == {"key", "labels"} and seen[0].timings["key"] > 0
    assert set(seen[1].timings) == {"flow", "refine", "labels"}
    assert summary.latency["all"].count == 5 and summary.fps > 0


def test_bad_inputs_raise_input_error():
    engine = Engine(cpu_config(), model=TinyModel())
    with pytest.raises(InputError):
        engine.process_frame(np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError):
        list(engine.run(42))
    with pytest.raises(InputError):
        list(engine.run("/nonexistent/clip.mp4"))


def test_stages_run_under_inference_mode():
    model = TinyModel()
    engine = Engine(cpu_config(), model=model)
    engine.process_frame(make_frames(1)[0])
    assert all(not p.requires_grad or p.grad is None for p in model.parameters())
    assert torch.is_grad_enabled()

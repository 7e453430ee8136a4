"""Frames the engine cannot take: a clear VidsegError naming the problem and the fix, never a torch error or a
silent run on stale state; frames processed before the bad one keep their outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_tiny import TinyModel, encode_clip, make_frames

from vidseg.config import EngineConfig
from vidseg.engine.engine import Engine
from vidseg.errors import ConfigError, InputError, ShapeError
from vidseg.video.sinks import LabelPNGSink, NPZSink, OverlayVideoSink


def _engine(method: str = "arseg") -> Engine:
    config = EngineConfig(device="cpu", channels_last=False, keyframe_interval=4, method=method)
    return Engine(config, model=TinyModel())


IMAGE = make_frames(1)[0]  # 64x96x3 uint8


@pytest.mark.parametrize("bad,hint", [
    (IMAGE.astype(np.float32) / 255, r"\(image \* 255\)"),
    (IMAGE[..., 0], "np.repeat"),
    (np.dstack([IMAGE, IMAGE[..., :1]]), r"image\[\.\.\., :3\]"),
    (np.ascontiguousarray(IMAGE.transpose(2, 0, 1)), r"transpose\(1, 2, 0\)"),
    (IMAGE.astype(np.int64), r"astype\(np.uint8\)"),
    (IMAGE[None], r"image\[0\]"),
    (torch.from_numpy(IMAGE), r"\.numpy\(\)"),
])
def test_wrong_layouts_say_how_to_fix_them(bad, hint):
    with pytest.raises(InputError, match=r"RGB uint8 arrays of shape HxWx3.*" + hint) as info:
        _engine().process_frame(bad)
    assert "\n" not in str(info.value)


def test_non_contiguous_views_are_accepted():
    engine = _engine()
    assert engine.process_frame(IMAGE[:, ::-1]).labels.shape == (64, 96)
    assert _engine().process_frame(IMAGE[::2, ::2]).labels.shape == (32, 48)


@pytest.mark.parametrize("shape", [(0, 96, 3), (64, 0, 3)])
def test_empty_frames_are_refused(shape):
    with pytest.raises(InputError, match="empty"):
        _engine().process_frame(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("method", ["arseg", "flowwarp"])
def test_a_frame_smaller_than_one_feature_cell_is_refused_and_the_stream_stays_usable(method):
    engine = _engine(method)  # the tiny model: feature stride 4, LR scale 0.5
    for side in (1, 3):  # were RuntimeErrors from F.interpolate / avg_pool2d
        with pytest.raises(ShapeError, match=rf"{side}x{side}: too small .* at least 4x4 pixels.* upscale"):
            engine.process_frame(np.zeros((side, side, 3), np.uint8))
    assert engine.process_frame(np.zeros((4, 4, 3), np.uint8)).labels.shape == (4, 4)


@pytest.mark.parametrize("method", ["arseg", "flowwarp"])
def test_a_size_change_between_calls_starts_a_new_keyframe(method):
    engine = _engine(method)
    engine.process_frame(IMAGE)
    assert not engine.process_frame(IMAGE).is_key
    bigger = make_frames(1, height=128, width=160)[0]
    result = engine.process_frame(bigger)  # was processed as a non-key frame on the 64x96 key's state
    assert result.is_key and result.labels.shape == (128, 160)
    assert any("frame size changed at frame 2 (64x96 -> 128x160)" in n for n in engine.notes)
    assert not engine.process_frame(bigger).is_key


def test_resolution_change_mid_video_goes_on_with_a_new_keyframe(tmp_path):
    small = encode_clip(tmp_path / "small.ts", make_frames(6), gop=6)
    large = encode_clip(tmp_path / "large.ts", make_frames(6, height=128, width=160), gop=6)
    joined = tmp_path / "joined.ts"  # two MPEG-TS files byte-concatenated: the size changes mid-stream
    joined.write_bytes(small.read_bytes() + large.read_bytes())
    out = tmp_path / "out"
    sinks = [OverlayVideoSink(out / "overlay.mp4", fps=25.0), LabelPNGSink(out / "labels"), NPZSink(out / "l.npz")]
    engine, results = _engine(), []
    # The byte join cuts one packet: the decoder skips it, goes on, and says so once the stream ends.
    with pytest.warns(RuntimeWarning, match="frame size changed"), pytest.raises(InputError, match="skipped"):
        for result in engine.run(joined, sinks=sinks):
            results.append(result)
    sizes = [r.labels.shape for r in results]
    change = sizes.index((128, 160))
    assert change >= 5 and results[change].is_key and sizes[change:] == [(128, 160)] * (len(sizes) - change)
    assert len(list((out / "labels").glob("*_trainIds.png"))) == len(results)
    assert list(np.load(out / "l.npz")["index"]) == [r.index for r in results]
    import av

    with av.open(str(out / "overlay.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == len(results)


@pytest.mark.parametrize("n", [0, -1])
def test_run_refuses_max_frames_below_one(n):
    with pytest.raises(ConfigError, match="max_frames must be >= 1"):
        _engine().run(make_frames(2), max_frames=n)

"""vidseg.video.encode: the one video writer (codec options, GOP, timing, temporary name, interruption)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from vidseg.errors import InputError, ShapeError
from vidseg.video.decode import open_video
from vidseg.video.encode import VideoWriter, fixed_gop_options, has_encoder

from .conftest import need_encoder, shifted, texture


def _frames(n: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    tex = texture(h + 16, w + 16 + 2 * n, seed=1)
    return [shifted(tex, 4.0, 2.0 * t, h, w) for t in range(n)]


def _decode(path):
    with open_video(path) as video:
        return video, list(video)


def test_fixed_gop_options_spell_the_encoder_parameters():
    assert fixed_gop_options("libx264", 12, 2, {"open-gop": 0}) == {
        "preset": "veryfast",
        "x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=2:open-gop=0:log-level=error",
    }
    x265 = fixed_gop_options("libx265", 5, 0)["x265-params"]
    assert x265 == "keyint=5:min-keyint=5:scenecut=0:bframes=0:log-level=error"
    assert fixed_gop_options("mpeg4", 12, 0) == {"sc_threshold": "1000000000"}
    assert has_encoder("libx264") is True and has_encoder("no-such-encoder") is False


@pytest.mark.parametrize("encoder", ["libx264", "mpeg4"])
def test_round_trip_with_an_exact_gop(tmp_path, encoder):
    need_encoder(encoder)
    path = tmp_path / f"gop_{encoder}.mp4"
    frames = _frames(10)
    with VideoWriter(path, width=64, height=48, rate=17, codec=encoder, bitrate=800_000, gop=4, bframes=0,
                     options=fixed_gop_options(encoder, 4, 0)) as writer:
        for t, image in enumerate(frames):
            writer.write(image, key=t % 4 == 0)
    assert writer.count == 10
    video, decoded = _decode(path)
    assert video.size == (48, 64) and video.fps == pytest.approx(17)
    assert [f.pict_type for f in decoded] == ["I" if t % 4 == 0 else "P" for t in range(10)]
    assert [round(f.pts * 17) for f in decoded] == list(range(10))
    assert np.abs(decoded[5].image.astype(float) - frames[5]).mean() < 8


def test_the_file_has_its_final_name_only_once_closed(tmp_path):
    need_encoder("mpeg4")  # no look-ahead: the first frame's packet reaches the file at once
    path = tmp_path / "out" / "clip.mp4"
    writer = VideoWriter(path, width=64, height=48, codec="mpeg4")
    writer.write(_frames(1)[0])
    assert not path.exists() and (tmp_path / "out" / "clip.part.mp4").exists()
    writer.close()
    writer.close()  # closing twice is harmless
    assert path.exists() and not (tmp_path / "out" / "clip.part.mp4").exists()
    with pytest.raises(InputError, match="closed"):
        writer.write(_frames(1)[0])


def test_an_error_discards_the_file_and_ctrl_c_keeps_a_playable_one(tmp_path):
    need_encoder("mpeg4")
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "crash.mp4", width=64, height=48, codec="mpeg4") as writer:
            for image in _frames(3):
                writer.write(image)
            assert (tmp_path / "crash.part.mp4").exists()
            raise RuntimeError("the producer failed")
    assert list(tmp_path.iterdir()) == []
    need_encoder("libx264")

    path = tmp_path / "interrupted.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(path, width=64, height=48) as writer:
            for t, image in enumerate(_frames(9)):
                if t == 6:
                    raise KeyboardInterrupt
                writer.write(image)
    video, decoded = _decode(path)
    assert len(decoded) == 6 and video.length == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["interrupted.mp4"]


def test_timestamps_in_a_fine_time_base_and_frames_of_another_size(tmp_path):
    """A variable frame rate: pts in 1/90000 s survive the round trip; a frame of another size is scaled."""
    need_encoder("libx264")
    path = tmp_path / "vfr.mp4"
    times = [0.0, 0.04, 0.1, 0.25, 0.26]
    frames = _frames(len(times))
    with VideoWriter(path, width=64, height=48, rate=25, time_base=Fraction(1, 90000)) as writer:
        for t, image in zip(times, frames, strict=True):
            writer.write(image if t != 0.1 else np.repeat(np.repeat(image, 2, 0), 2, 1), pts=round(t * 90000))
    _, decoded = _decode(path)
    assert [f.pts - decoded[0].pts for f in decoded] == pytest.approx(times, abs=1e-3)
    assert all(f.image.shape == (48, 64, 3) for f in decoded)


def test_bad_sizes_and_frames_are_refused(tmp_path):
    with pytest.raises(ShapeError, match="even"):
        VideoWriter(tmp_path / "odd.mp4", width=63, height=48)
    need_encoder("libx264")
    with VideoWriter(tmp_path / "ok.mp4", width=64, height=48) as writer:
        with pytest.raises(ShapeError, match="uint8 RGB"):
            writer.write(np.zeros((48, 64), np.uint8))
        writer.write(_frames(1)[0])
    with pytest.raises(InputError, match="no-such-encoder"):
        VideoWriter(tmp_path / "x.mp4", width=64, height=48, codec="no-such-encoder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mp4"]

import dataclasses

import av
import numpy as np
import pytest
import torch

from vidseg.errors import InputError
from vidseg.video.decode import Frame, open_video
from vidseg.video.motion import MotionField

from .conftest import encode, need_encoder, psnr, texture, translation_frames

FORMATS = [  # (extension, encoder, decoder name, container stores the frame count)
    ("mp4", "libx264", "h264", True),
    ("mkv", "libx264", "h264", False),
    ("avi", "mpeg4", "mpeg4", True),
    ("mp4", "libx265", "hevc", True),
    ("mkv", "libvpx-vp9", "vp9", False),
]


@pytest.mark.parametrize("ext,encoder,decoder,knows_length", FORMATS)
def test_decodes_containers_and_codecs(clip_dir, ext, encoder, decoder, knows_length):
    images = translation_frames((64, 96), 10, (2, 1), seed=1)
    path = encode(clip_dir / f"fmt_{encoder}.{ext}", images, codec=encoder, gop=5)
    with open_video(path) as video:
        assert video.codec == decoder
        assert video.size == (64, 96)
        assert video.fps == pytest.approx(25.0)
        assert video.length == (10 if knows_length else None)
        frames = list(video)
    assert [f.index for f in frames] == list(range(10))
    assert frames[0].pict_type == "I"
    assert {f.pict_type for f in frames} <= {"I", "P", "B"} and "P" in {f.pict_type for f in frames}
    assert np.allclose([f.pts for f in frames], np.arange(10) / 25.0, atol=1e-3)
    for f, img in zip(frames, images, strict=True):
        assert f.image.dtype == np.uint8 and f.image.shape == (64, 96, 3)
        assert psnr(f.image, img) > 25, f"frame {f.index} does not look like what was encoded"


def test_odd_size(clip_dir):
    images = translation_frames((38, 66), 6, (1, 1), seed=2)
    path = encode(clip_dir / "odd.mp4", images, gop=6)
    with open_video(path, motion=True) as video:
        assert video.size == (38, 66)
        frames = list(video)
    assert len(frames) == 6
    assert all(f.image.shape == (38, 66, 3) for f in frames)
    m = frames[1].motion
    assert m.size == (38, 66) and m.grid == (10, 17)  # ceil(38/4), ceil(66/4)
    vectors, valid = m.to_dense()
    assert vectors.shape == (2, 38, 66) and valid.shape == (38, 66)


def test_truly_odd_size_444(clip_dir):
    """A 4:4:4 stream can have odd dimensions; the image keeps them."""
    images = translation_frames((37, 65), 4, (1, 0), seed=3)
    path = encode(clip_dir / "odd444.mkv", images, pix_fmt="yuv444p", options={"x264-params": "log-level=error"})
    with open_video(path, motion=True) as video:
        frames = list(video)
    assert video.size == (37, 65) and frames[0].image.shape == (37, 65, 3)
    assert psnr(frames[2].image, images[2]) > 25
    assert frames[1].motion.size == (37, 65)


def test_frame_indices_count_frames_not_timestamps(clip_dir):
    """Variable timestamps (a gap of 10 frame periods) must not shift frame indices."""
    images = translation_frames((32, 48), 6, (1, 0), seed=4)
    path = clip_dir / "vfr.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"x264-params": "log-level=error"})
        stream.width, stream.height = 48, 32
        stream.pix_fmt = "yuv420p"
        for i, img in enumerate(images):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i if i < 3 else i + 10
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)
    with open_video(path) as video:
        frames = list(video)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4, 5]
    assert frames[3].pts == pytest.approx(13 / 25, abs=2e-3)


def test_threads_do_not_change_output(h264_clip):
    path, _ = h264_clip
    with open_video(path, motion=True, threads=1) as a, open_video(path, motion=True, threads=0) as b:
        for fa, fb in zip(a, b, strict=True):
            assert fa.index == fb.index and fa.pict_type == fb.pict_type
            assert np.array_equal(fa.image, fb.image)
            assert (fa.motion is None) == (fb.motion is None)
            if fa.motion is not None:
                assert np.array_equal(fa.motion.vectors, fb.motion.vectors)


def test_frame_is_frozen_and_gives_a_channels_last_tensor(h264_clip):
    path, _ = h264_clip
    with open_video(path) as video:
        frame = next(video)
    assert isinstance(frame, Frame)
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.index = 3
    t = frame.tensor()
    assert t.shape == (3, 64, 96) and t.dtype == torch.uint8
    assert torch.equal(t[1], torch.from_numpy(frame.image[..., 1]))
    assert t.data_ptr() == frame.image.ctypes.data  # no copy


# ------------------------------------------------------------------------------------------------- motion on/off
def test_motion_export_off_and_on(h264_clip):
    path, _ = h264_clip
    with open_video(path) as video:
        assert not video.motion_available
        assert all(f.motion is None for f in video)
    with open_video(path, motion=True) as video:
        assert video.motion_available
        frames = list(video)
    assert frames[0].pict_type == "I" and frames[0].motion is None  # key frames carry no vectors
    for f in frames[1:]:
        assert f.pict_type == "P"
        assert isinstance(f.motion, MotionField)
        assert f.motion.valid.mean() > 0.9  # a translating texture: inter-coded throughout


@pytest.mark.parametrize("encoder,ext", [("libx265", "mp4"), ("libvpx-vp9", "webm")])
def test_codecs_without_motion_export_give_none(clip_dir, encoder, ext):
    images = translation_frames((64, 96), 4, (2, 1), seed=5)
    path = encode(clip_dir / f"nomv_{encoder}.{ext}", images, codec=encoder)
    with open_video(path, motion=True) as video:
        assert not video.motion_available
        frames = list(video)
    assert len(frames) == 4 and all(f.motion is None for f in frames)
    assert frames[1].pict_type == "P"


def test_intra_only_p_frame_is_all_invalid_not_none(clip_dir):
    """A P-frame whose blocks are all intra (a scene cut the encoder did not turn into an I-frame) has no side data;
    it must come out as an all-invalid MotionField, distinct from the I-frame's None."""
    a = texture(64, 96, seed=6)
    b = texture(64, 96, seed=7)
    path = encode(clip_dir / "cut.mp4", [a, a, b, b], gop=12,
                  options={"x264-params": "log-level=error:scenecut=0"})
    with open_video(path, motion=True) as video:
        frames = list(video)
    assert [f.pict_type for f in frames] == ["I", "P", "P", "P"]
    cut = frames[2].motion
    assert cut is not None and cut.valid.mean() < 0.1
    assert frames[3].motion.valid.mean() > 0.9


def test_predicted_frames_of_exporting_codecs_never_get_none(clip_dir):
    """MPEG-4 with B-frames: the decoder returns the last frame at the final flush, where FFmpeg exports no
    vectors; it must still be a MotionField (all invalid = unknown), never None ("the codec exports nothing")."""
    images = translation_frames((64, 96), 8, (2, 1), seed=16)
    path = encode(clip_dir / "mpeg4_flush.mkv", images, codec="mpeg4", bframes=2)
    with open_video(path, motion=True) as video:
        frames = list(video)
    assert len(frames) == 8
    for f in frames:
        assert (f.motion is None) == (f.pict_type == "I")


# ------------------------------------------------------------------------------------------------- rotation
@pytest.mark.parametrize("rotation,expect", [(90, (0.0, 2.0)), (180, (2.0, 0.0)), (270, (0.0, -2.0))])
def test_rotated_stream_is_turned_upright_with_its_motion(clip_dir, rotation, expect):
    images = translation_frames((64, 96), 4, (2, 0), seed=8)
    path = encode(clip_dir / f"rot{rotation}.mp4", images, rotation=rotation)
    with open_video(path, motion=True) as video:
        assert video.rotation == rotation
        assert video.size == ((96, 64) if rotation != 180 else (64, 96))
        frames = list(video)
    for f, img in zip(frames, images, strict=True):
        assert psnr(f.image, np.rot90(img, rotation // 90)) > 25
    # Coded content moves +2 px in x per frame (backward map (-2, 0)); turned counter-clockwise by 90 degrees it
    # moves -2 px in y, so the backward map is (0, +2); by 180: (+2, 0); by 270: (0, -2).
    m = frames[1].motion
    assert m.size == video.size
    assert (np.median(m.vectors[0][m.valid]), np.median(m.vectors[1][m.valid])) == expect


def test_mirrored_stream_is_refused(clip_dir):
    images = translation_frames((32, 48), 2, (1, 0), seed=9)
    path = encode(clip_dir / "flip.mp4", images, hflip=True)
    with pytest.raises(InputError, match="mirrors"):
        open_video(path)


# ------------------------------------------------------------------------------------------------- bad input
def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_video(tmp_path / "nope.mp4")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        open_video(path)


def test_text_file_wraps_the_ffmpeg_error(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(InputError, match="cannot decode") as info:
        open_video(path)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value.__cause__, av.FFmpegError)
    assert str(path) in str(info.value)


def test_audio_only_file(tmp_path):
    need_encoder("aac")
    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        for i in range(10):
            t = (np.arange(1024) + 1024 * i) / 16000
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 16000
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)
    with pytest.raises(InputError, match=r"no video stream.*audio"):
        open_video(path)


def _truncate(path, fraction, dest):
    data = path.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


@pytest.mark.parametrize("ext,encoder,container_options", [
    ("mkv", "libx264", None),  # frame count unknown: caught by the declared duration
    ("mp4", "libx264", {"movflags": "+faststart"}),  # index in front, data cut
    ("avi", "mpeg4", None),
])
def test_truncated_file_yields_what_is_there_then_raises(clip_dir, ext, encoder, container_options):
    images = translation_frames((64, 96), 40, (1, 1), seed=10)
    full = encode(clip_dir / f"full_{encoder}.{ext}", images, codec=encoder, gop=10,
                  container_options=container_options)
    with open_video(full) as video:
        assert len(list(video)) == 40
    path = _truncate(full, 0.7, clip_dir / f"cut_{encoder}.{ext}")
    got = []
    with pytest.raises(InputError, match="truncated|stopped") as info:
        with open_video(path) as video:
            for frame in video:
                got.append(frame)
    assert 0 < len(got) < 40
    assert [f.index for f in got] == list(range(len(got)))
    assert f"after {len(got)}" in str(info.value)
    assert f"index {len(got) - 1}" in str(info.value)
    assert np.allclose([f.pts for f in got], np.arange(len(got)) / 25.0, atol=1e-3)  # drained frames too
    for f in got:
        assert psnr(f.image, images[f.index]) > 25


def test_truncated_mp4_without_index_is_refused_at_open(clip_dir, h264_clip):
    path = _truncate(h264_clip[0], 0.6, clip_dir / "cut_moov.mp4")  # moov atom (at the end) is gone
    with pytest.raises(InputError, match="cannot decode"):
        open_video(path)


def test_need_encoder_skips_cleanly():
    with pytest.raises(pytest.skip.Exception):
        need_encoder("no-such-encoder")

"""Damaged and unusual files: decoding keeps every frame it can and says what was wrong in one InputError."""

import av
import numpy as np
import pytest

from vidseg.errors import InputError
from vidseg.video.decode import open_video

from .conftest import encode, psnr, translation_frames


def _decode_all(path):
    got, error = [], None
    try:
        with open_video(path) as video:
            for frame in video:
                got.append(frame)
    except InputError as err:
        error = err
    return got, error


def test_damaged_packets_mid_stream_are_skipped_and_decoding_goes_on(clip_dir):
    images = translation_frames((64, 96), 30, (1, 1), seed=3)
    good = encode(clip_dir / "to_damage.mp4", images, gop=30)
    with av.open(str(good)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(good.read_bytes())
    for pos, size in packets[10:13]:  # three P-frames in the middle: payload overwritten
        data[pos:pos + size] = b"\xff" * size
    damaged = clip_dir / "damaged.mp4"
    damaged.write_bytes(bytes(data))

    got, error = _decode_all(damaged)
    assert error is not None and "3 packet(s)" in str(error) and "skipped" in str(error)
    assert f"after {len(got)} frames" in str(error)
    assert len(got) == 27  # everything but the damaged packets; decoding used to stop at the first one
    assert [f.index for f in got] == list(range(27))
    assert got[-1].pts == pytest.approx(29 / 25.0, abs=1e-3)
    for f in got[:10]:
        assert psnr(f.image, images[f.index]) > 25


def test_resolution_change_in_a_byte_concatenated_transport_stream_is_decoded(clip_dir):
    small = encode(clip_dir / "part_small.ts", translation_frames((64, 96), 10, (1, 0)), gop=10)
    large = encode(clip_dir / "part_large.ts", translation_frames((128, 160), 10, (1, 0)), gop=10)
    joined = clip_dir / "joined.ts"
    joined.write_bytes(small.read_bytes() + large.read_bytes())
    got, error = _decode_all(joined)
    assert {f.image.shape for f in got} == {(64, 96, 3), (128, 160, 3)}  # decoding went past the join
    assert len(got) >= 18
    assert error is None or "skipped" in str(error)


def test_a_file_cut_before_its_index_says_so(clip_dir):
    images = translation_frames((64, 96), 20, (1, 1))
    full = encode(clip_dir / "cut_index.mp4", images).read_bytes()
    # The moov atom is at the end: every cut loses it, whole or in part (a cut inside it leaves a stream without
    # codec parameters, which used to crash with an AttributeError).
    for percent in (2, 30, *range(70, 100)):
        cut = clip_dir / f"cut_index_{percent}.mp4"
        cut.write_bytes(full[: len(full) * percent // 100])
        with pytest.raises(InputError, match=r"cut_index_\d+\.mp4: .*(truncated|not a video)") as info:
            open_video(cut)
        assert "\n" not in str(info.value)


def test_one_frame_and_odd_pixel_formats_decode(clip_dir):
    one = encode(clip_dir / "one.mp4", translation_frames((64, 96), 1, (0, 0)))
    with open_video(one) as video:
        assert len(list(video)) == 1
    for pix_fmt in ("gray", "yuv444p"):
        path = encode(clip_dir / f"pix_{pix_fmt}.mp4", translation_frames((32, 48), 3, (1, 0)), pix_fmt=pix_fmt)
        with open_video(path) as video:
            frames = list(video)
        assert len(frames) == 3 and frames[0].image.shape == (32, 48, 3) and frames[0].image.dtype == np.uint8


def test_a_cut_inside_the_first_frame_says_no_frame_could_be_decoded(clip_dir):
    full = encode(clip_dir / "fast.mp4", translation_frames((64, 96), 5, (1, 1)),
                  container_options={"movflags": "+faststart"})
    with av.open(str(full)) as container:
        first = next(p for p in container.demux(video=0) if p.size)
    cut = clip_dir / "fast_cut.mp4"
    cut.write_bytes(full.read_bytes()[: first.pos + first.size // 2])  # index intact, first packet cut off
    with pytest.raises(InputError, match="truncated or corrupt: no frame could be decoded; 1 packet"):
        open_video(cut)


def test_skipped_packets_are_counted_in_constant_memory(clip_dir):
    """A lossy live stream may skip damaged packets for weeks: the decoder keeps a count and the first time,
    not one entry per packet."""
    import tracemalloc
    from types import SimpleNamespace

    from vidseg.video.decode import StreamDecoder

    path = encode(clip_dir / "lossy.mp4", translation_frames((32, 48), 3, (1, 1)), gop=3)
    with av.open(str(path)) as container:
        decoder = StreamDecoder(container, "lossy")
        first = SimpleNamespace(is_corrupt=True, pts=50, time_base=0.04)
        decoder.decode(first)
        later = SimpleNamespace(is_corrupt=True, pts=None, time_base=None)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100_000):
            decoder.decode(later)
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
    assert len(decoder.skipped) == 100_001 and decoder.skipped.first == pytest.approx(2.0)
    assert grown < 64_000  # a list of 100,000 floats would hold about 3 MB

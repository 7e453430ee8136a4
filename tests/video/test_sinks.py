import numpy as np
import pytest
from PIL import Image

from vidseg.classes import (
    CAMVID11_PALETTE,
    CAMVID12_CLASSES,
    CAMVID12_PALETTE,
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    CITYSCAPES_TRAINID_TO_LABELID,
)
from vidseg.errors import InputError, ShapeError
from vidseg.video.decode import open_video
from vidseg.video.sinks import (
    LabelPNGSink,
    NPZSink,
    OverlayVideoSink,
    colorize,
    get_palette,
    overlay,
)

from .conftest import need_encoder


def _labels(h=32, w=48, index=0):
    """Large blocks of classes (survive compression), one ignore block."""
    labels = np.zeros((h, w), np.uint8)
    labels[:, w // 2:] = 13  # car
    labels[h // 2:, : w // 4] = 10  # sky
    labels[: h // 4, : w // 4] = 255  # ignore
    return np.roll(labels, index, axis=1)


def _image(h=32, w=48, value=100):
    return np.full((h, w, 3), value, np.uint8)


def test_palettes():
    assert CITYSCAPES_PALETTE.shape == (19, 3) and len(CITYSCAPES_CLASSES) == 19
    assert tuple(CITYSCAPES_PALETTE[0]) == (128, 64, 128) and CITYSCAPES_CLASSES[0] == "road"
    assert tuple(CITYSCAPES_PALETTE[13]) == (0, 0, 142) and CITYSCAPES_CLASSES[13] == "car"
    assert len({tuple(c) for c in CITYSCAPES_PALETTE}) == 19
    assert CAMVID11_PALETTE.shape == (11, 3) and CAMVID12_PALETTE.shape == (12, 3)
    assert CAMVID12_CLASSES[11] == "void" and tuple(CAMVID12_PALETTE[11]) == (0, 0, 0)
    assert tuple(CAMVID12_PALETTE[4]) == (0, 0, 192)  # sidewalk, as in AR-Seg's pre-processing
    assert np.array_equal(CAMVID12_PALETTE[:11], CAMVID11_PALETTE)
    assert get_palette("camvid12") is CAMVID12_PALETTE
    with pytest.raises(InputError):
        get_palette("ade20k")
    with pytest.raises(ShapeError):
        get_palette(np.zeros((4, 4)))


def test_cityscapes_label_ids():
    ids = CITYSCAPES_TRAINID_TO_LABELID
    assert ids[:19].tolist() == [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
    assert ids[255] == 0


def test_colorize_and_overlay():
    labels = _labels()
    image = _image()
    colours = colorize(labels, "cityscapes")
    assert tuple(colours[0, -1]) == (0, 0, 142) and tuple(colours[0, 0]) == (0, 0, 0)
    out = overlay(image, labels, "cityscapes", alpha=0.5)
    assert tuple(out[0, 0]) == (100, 100, 100)  # ignore: untouched
    assert np.allclose(out[0, -1], [50, 50, 121], atol=1)  # (100 + (0, 0, 142)) / 2
    assert np.array_equal(overlay(image, labels, alpha=0.0), image)
    with pytest.raises(ShapeError):
        overlay(image, labels[:-1])
    with pytest.raises(ShapeError):
        colorize(np.full((2, 2), 300))


def _read_all(path):
    with open_video(path) as video:
        return video, list(video)


def test_overlay_video_round_trip(tmp_path):
    need_encoder("libx264")
    path = tmp_path / "overlay.mp4"
    with OverlayVideoSink(path, fps=10, palette="cityscapes", alpha=0.6) as sink:
        for i in range(5):
            sink.write(i, _image(value=40 * i), _labels(index=i))
    video, frames = _read_all(path)
    assert len(frames) == 5 and video.size == (32, 48) and video.fps == pytest.approx(10)
    for i, f in enumerate(frames):
        expect = overlay(_image(value=40 * i), _labels(index=i), "cityscapes", 0.6).astype(float)
        assert np.abs(f.image.astype(float) - expect).mean() < 6


def test_overlay_video_keeps_timing_of_skipped_frames(tmp_path):
    path = tmp_path / "gaps.mkv"
    with OverlayVideoSink(path, fps=25) as sink:
        for i in (0, 1, 5, 6):
            sink.write(i, _image(), _labels())
        with pytest.raises(InputError):
            sink.write(6, _image(), _labels())
    _, frames = _read_all(path)
    assert [round(f.pts * 25) for f in frames] == [0, 1, 5, 6]


def test_overlay_video_keeps_the_timestamps_of_a_variable_frame_rate_source(tmp_path):
    """Frames written with pts (seconds) are shown at those times, relative to the first; a repeated or
    decreasing pts is nudged forward one tick instead of failing the encoder."""
    need_encoder("libx264")
    path = tmp_path / "vfr.mp4"
    times = [12.5, 12.533, 12.6, 12.617, 12.617, 12.9]
    with OverlayVideoSink(path, fps=30) as sink:
        for i, t in enumerate(times):
            sink.write(i, _image(value=30 * i), _labels(index=i), pts=t)
    _, frames = _read_all(path)
    got = [f.pts - frames[0].pts for f in frames]
    assert got == pytest.approx([0.0, 0.033, 0.1, 0.117, 0.117, 0.4], abs=2e-3)
    assert all(b > a for a, b in zip(got, got[1:], strict=False))


def test_npz_sink_stores_timestamps(tmp_path):
    path = tmp_path / "labels.npz"
    with NPZSink(path) as sink:
        sink.write(0, None, _labels(), pts=0.5)
        sink.write(1, None, _labels())
    with np.load(path) as data:
        assert data["pts"][0] == 0.5 and np.isnan(data["pts"][1])


def test_overlay_video_survives_ctrl_c(tmp_path):
    """KeyboardInterrupt between writes: the with block still finalises a playable file of the frames done."""
    path = tmp_path / "interrupted.mp4"
    with pytest.raises(KeyboardInterrupt):
        with OverlayVideoSink(path, fps=25) as sink:
            for i in range(100):
                if i == 7:
                    raise KeyboardInterrupt
                sink.write(i, _image(), _labels(index=i))
    video, frames = _read_all(path)
    assert len(frames) == 7 and video.length == 7  # decodes completely: no truncation error


def test_overlay_video_pads_odd_sizes_and_writes_labels_alone(tmp_path):
    path = tmp_path / "odd.mp4"
    with OverlayVideoSink(path, palette="camvid12") as sink:
        sink.write(0, None, _labels(37, 65))
        sink.write(1, None, _labels(37, 65))
        sink.write(2, None, _labels(74, 130))  # a stream that changed resolution: scaled to the video's size
    video, frames = _read_all(path)
    assert video.size == (38, 66) and len(frames) == 3
    expect = colorize(_labels(37, 65), "camvid12").astype(float)
    assert np.abs(frames[0].image[:37, :65].astype(float) - expect).mean() < 6


def test_label_png_sink(tmp_path):
    labels = _labels()
    with LabelPNGSink(tmp_path / "pngs", label_ids=CITYSCAPES_TRAINID_TO_LABELID) as sink:
        sink.write(3, None, labels)
        sink.write(4, _image(), labels.astype(np.int64))
    train = np.asarray(Image.open(tmp_path / "pngs" / "000003_trainIds.png"))
    assert train.dtype == np.uint8 and np.array_equal(train, labels)
    label_ids = np.asarray(Image.open(tmp_path / "pngs" / "000004_labelIds.png"))
    assert label_ids[0, -1] == 26 and label_ids[-1, 0] == 23 and label_ids[0, 0] == 0 and label_ids[-1, 20] == 7
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [
        "000003_labelIds.png", "000003_trainIds.png", "000004_labelIds.png", "000004_trainIds.png"]


def test_npz_sink_flushes_on_interrupt(tmp_path):
    path = tmp_path / "labels.npz"
    with pytest.raises(KeyboardInterrupt):
        with NPZSink(path, images=True) as sink:
            for i in range(3):
                sink.write(i * 2, _image(value=i), _labels(index=i))
            raise KeyboardInterrupt
    with np.load(path) as data:
        assert data["index"].tolist() == [0, 2, 4]
        assert np.array_equal(data["labels_000002"], _labels(index=1))
        assert np.array_equal(data["image_000004"], _image(value=2))
    assert not (tmp_path / "labels.npz.part").exists()


def test_closed_sink_refuses_writes(tmp_path):
    sink = NPZSink(tmp_path / "a.npz")
    sink.close()
    sink.close()  # idempotent
    with pytest.raises(InputError, match="closed"):
        sink.write(0, None, _labels())


def test_overlay_equals_the_blend_formula_everywhere():
    """out = (image * (256 - a) + colour * a + 128) >> 8 on classes; the image itself on ignore and unknown ids."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    labels = rng.integers(0, 21, (37, 53)).astype(np.uint8)
    labels[:5] = 255
    palette = get_palette("cityscapes")
    for alpha in (0.0, 0.37, 0.5, 1.0):
        a = int(round(alpha * 256))
        colours = np.zeros((256, 3), np.int64)
        colours[: len(palette)] = palette
        expect = (image.astype(np.int64) * (256 - a) + colours[labels] * a + 128) >> 8
        known = labels < len(palette)
        expect = np.where(known[..., None], expect, image).astype(np.uint8)
        np.testing.assert_array_equal(overlay(image, labels, palette, alpha), expect)

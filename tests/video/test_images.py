"""Image sequences: folders, globs and Cityscapes city folders, in frame-number order, at a frame rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidseg.errors import InputError
from vidseg.video.images import CITYSCAPES_FPS, ImageSequenceSource
from vidseg.video.source import SourceOptions, open_source, source_kind


def write(folder: Path, names: list[str], size=(24, 32)) -> list[np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i, name in enumerate(names):
        image = np.full((*size, 3), i * 10, np.uint8)
        Image.fromarray(image).save(folder / name)
        images.append(image)
    return images


def test_a_folder_plays_in_frame_number_order_at_the_given_rate(tmp_path):
    names = [f"frame{i}.png" for i in (10, 2, 1, 9)] + ["notes.txt"]
    write(tmp_path / "f", names[:4])
    (tmp_path / "f" / "notes.txt").write_text("not an image")
    with open_source(str(tmp_path / "f"), options=SourceOptions(fps=10)) as source:
        assert source_kind(str(tmp_path / "f")) == "images" and not source.live and not source.motion_available
        frames = list(source)
    assert [int(f.image[0, 0, 0]) // 10 for f in frames] == [2, 1, 3, 0]  # frame1, frame2, frame9, frame10
    assert [f.index for f in frames] == [0, 1, 2, 3] and [f.pts for f in frames] == pytest.approx([0, .1, .2, .3])
    assert all(f.motion is None and f.pict_type == "?" and f.segment == 0 for f in frames)
    assert source.size == (24, 32)


def test_a_glob_picks_its_images_and_a_single_image_is_one_frame(tmp_path):
    write(tmp_path, ["a_1.jpg", "a_2.jpg", "b_1.png"])
    assert len(list(open_source(str(tmp_path / "a_*.jpg")))) == 2
    assert source_kind(str(tmp_path / "b_1.png")) == "images" and len(list(open_source(str(tmp_path / "b_1.png")))) == 1


def test_a_cityscapes_city_folder_is_ordered_by_sequence_and_frame_with_a_segment_per_snippet(tmp_path):
    city = tmp_path / "leftImg8bit_sequence" / "val" / "lindau"
    names = [f"lindau_{s:06d}_{f:06d}_leftImg8bit.png" for s, f in [(2, 5), (0, 19), (0, 18), (2, 4), (0, 30)]]
    write(city, names)
    source = ImageSequenceSource(city)
    assert source.fps == CITYSCAPES_FPS
    assert [p.name[7:20] for p in source.paths] == ["000000_000018", "000000_000019", "000000_000030",
                                                    "000002_000004", "000002_000005"]
    assert [f.segment for f in source] == [0, 0, 1, 2, 2]  # a jump in frame numbers is a new snippet too


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d.mkdir(), "is a directory with no images in it"),
    (lambda d: (d.mkdir(), (d / "frankfurt").mkdir()), "it holds folders (frankfurt)"),
    (lambda d: None, "the pattern matches nothing"),
])
def test_empty_folders_and_globs_say_what_to_give(tmp_path, make, message):
    target = tmp_path / "seq"
    make(target)
    spec = str(target) if target.exists() else str(target / "*.png")
    with pytest.raises(InputError) as caught:
        open_source(spec)
    assert message in str(caught.value)


def test_an_unreadable_image_names_the_file(tmp_path):
    write(tmp_path, ["0.png"])
    (tmp_path / "1.png").write_bytes(b"not a png")
    frames = open_source(str(tmp_path))
    next(iter(frames))
    with pytest.raises(InputError, match=r"1\.png: cannot read the image"):
        next(iter(frames))

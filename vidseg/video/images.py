"""Image sequences as a source: a folder, a glob, a Cityscapes ``leftImg8bit_sequence`` city folder, one image.

    with ImageSequenceSource("frames/", fps=30) as source:       # or "frames/*.jpg", or ".../val/frankfurt"
        for frame in source:                                      # Frame(index, image, pts=index / fps)
            ...

Images are ordered by frame number: names compare with their digit runs as numbers (``img2`` before
``img10``). Cityscapes city folders (``<city>_<sequence>_<frame>_leftImg8bit.png``) are ordered by sequence,
then frame, at Cityscapes' 17 frames/s; each 30-frame snippet (a new sequence number, or a jump in frame
numbers) starts a new `Frame.segment`, so the engine does not carry a keyframe across snippets. Other
sequences play at `fps` (default 25). Images carry no codec motion: methods that use it take their fallback
(said once per run). Pillow decodes; frames of another size start a new keyframe in the engine.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vidseg.errors import InputError
from vidseg.video.frame import Frame
from vidseg.video.source import FrameIterator

__all__ = ["ImageSequenceSource", "IMAGE_EXTENSIONS", "CITYSCAPES_FPS", "is_glob"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
CITYSCAPES_FPS = 17.0  # the rate of Cityscapes' sequence frames
DEFAULT_FPS = 25.0
_CITYSCAPES = re.compile(r"^[A-Za-z_-]+_(\d+)_(\d+)_leftImg8bit\.png$")


def is_glob(text: str) -> bool:
    """Whether a path contains glob wildcards (``*``, ``?``, ``[``)."""
    return glob.has_magic(text)


class ImageSequenceSource(FrameIterator):
    """The images of a folder or glob as frames (see the module docstring). Not live: every image is read (a live
    run paces them at `fps`)."""

    live = False
    motion_available = False

    def __init__(self, spec: str | os.PathLike, *, fps: float | None = None) -> None:
        self.name = os.fspath(spec)
        self.paths = _list_images(self.name)
        self.segments = _cityscapes_segments(self.paths)
        cityscapes = self.segments is not None
        self.fps = float(fps) if fps else (CITYSCAPES_FPS if cityscapes else DEFAULT_FPS)
        if self.fps <= 0:
            raise InputError(f"{self.name}: the frame rate must be > 0, got {fps}")
        self.length = len(self.paths)
        self.size: tuple[int, int] | None = None

    def _frames(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            image = _read(path)
            if self.size is None:
                self.size = (int(image.shape[0]), int(image.shape[1]))
            segment = self.segments[index] if self.segments is not None else 0
            yield Frame(index, image, pts=index / self.fps, segment=segment)

    def __repr__(self) -> str:
        return f"ImageSequenceSource({self.name!r}, {self.length} images, fps={self.fps:g})"


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)] + [str(path)]


def _list_images(spec: str) -> list[Path]:
    if is_glob(spec) and not os.path.exists(spec):
        found = [Path(p) for p in glob.glob(spec, recursive=True)]
        images = [p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
        if not images:
            what = f"{len(found)} paths, none of them an image" if found else "nothing"
            raise InputError(f"{spec}: the pattern matches {what}; image files end in "
                             f"{', '.join(sorted(IMAGE_EXTENSIONS))}")
        return sorted(images, key=_natural_key)
    folder = Path(spec)
    if folder.is_file() and folder.suffix.lower() in IMAGE_EXTENSIONS:  # one image: a sequence of one frame
        return [folder]
    if not folder.is_dir():
        raise InputError(f"{spec}: not a folder of images")
    images = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    if not images:
        subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir())
        hint = (f"; it holds folders ({', '.join(subfolders[:3])}{', ...' if len(subfolders) > 3 else ''}): give one "
                f"of them (a Cityscapes city folder), or a glob such as '{folder}/**/*.png'") if subfolders else ""
        raise InputError(f"{spec}: is a directory with no images in it; give a video file or a folder of images{hint}")
    return sorted(images, key=_natural_key)


def _cityscapes_segments(paths: list[Path]) -> list[int] | None:
    """The snippet number of each Cityscapes sequence frame (a new one at each new sequence or frame-number
    jump), with `paths` re-sorted by (sequence, frame); None when the names are not all Cityscapes'."""
    keys = []
    for path in paths:
        m = _CITYSCAPES.match(path.name)
        if m is None:
            return None
        keys.append((int(m.group(1)), int(m.group(2))))
    order = sorted(range(len(paths)), key=lambda i: keys[i])
    paths[:] = [paths[i] for i in order]
    segments, segment, previous = [], 0, None
    for sequence, frame in (keys[i] for i in order):
        if previous is not None and (sequence != previous[0] or frame != previous[1] + 1):
            segment += 1
        segments.append(segment)
        previous = (sequence, frame)
    return segments


def _read(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise InputError(f"{path}: cannot read the image ({err}); remove it or fix it") from err

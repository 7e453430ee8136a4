"""Writing results: label colours (palettes of `vidseg.classes`), and sinks for overlay videos, label PNGs and
NPZ archives.

Every sink is a context manager with ``write(index, image, labels, pts=None)`` and ``close()``:

    with OverlayVideoSink("out.mp4", fps=video.fps, palette="cityscapes") as sink:
        for result in engine.run(video):
            sink.write(result.index, frame_image, result.labels)

``index`` is the frame index (strictly increasing; gaps are allowed, e.g. frames dropped in live mode: a video
keeps their timing), ``image`` uint8 RGB [H, W, 3] (or None where a sink does not need it), ``labels`` integer
class ids [H, W] (trainIds; 255 = ignore, drawn transparent), ``pts`` the frame's presentation time in seconds
when the source has one (`OverlayVideoSink` then keeps a variable-frame-rate source's timing; `NPZSink` stores
it). Leaving the ``with`` block by an exception,
including KeyboardInterrupt (Ctrl-C between writes), still closes the sink: the video is finalised and playable
with the frames written so far, every PNG written so far is complete, the NPZ holds every frame written so far.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidseg.classes import LABEL_SETS
from vidseg.errors import InputError, ShapeError, output_error
from vidseg.video.encode import VideoWriter, stream_format

__all__ = [
    "PALETTES",
    "get_palette",
    "colorize",
    "overlay",
    "OverlayVideoSink",
    "LabelPNGSink",
    "NPZSink",
]

# Every name of every label set (vidseg.classes: "cityscapes19" or "cityscapes", "camvid11", "camvid12" or
# "camvid") -> its colours.
PALETTES = {name: ls.colours for ls in LABEL_SETS.values() for name in ls.names}


def get_palette(palette: str | np.ndarray) -> np.ndarray:
    """A palette by label-set name (`vidseg.classes`: "cityscapes19" / "cityscapes", "camvid11", "camvid12") or
    as given: uint8 [num_classes, 3]."""
    if isinstance(palette, str):
        if palette not in PALETTES:
            raise InputError(f"unknown palette {palette!r}; choose one of {', '.join(PALETTES)} or pass an array")
        return PALETTES[palette]
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[1] != 3 or not 0 < len(palette) <= 255:
        raise ShapeError(f"a palette is [num_classes <= 255, 3] RGB, got shape {palette.shape}")
    return palette.astype(np.uint8)


def _lut(palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """256-entry colour table and 'is a class' mask (ids beyond the palette, and 255, are transparent)."""
    colours = np.zeros((256, 3), np.uint8)
    colours[: len(palette)] = palette
    known = np.zeros(256, bool)
    known[: len(palette)] = True
    return colours, known


def _labels_u8(labels, shape: tuple[int, int] | None = None) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ShapeError(f"labels must be [H, W] class ids, got shape {labels.shape}")
    if shape is not None and labels.shape != shape:
        raise ShapeError(f"labels {labels.shape} and image {shape} differ in size; resize the labels first")
    if labels.dtype != np.uint8:
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise ShapeError(f"label ids must lie in 0..255, got {labels.min()}..{labels.max()}")
        labels = labels.astype(np.uint8)
    return labels


def _image_u8(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ShapeError(f"image must be uint8 RGB [H, W, 3], got {image.dtype} {image.shape}")
    return image


def colorize(labels, palette: str | np.ndarray = "cityscapes") -> np.ndarray:
    """Class ids [H, W] -> RGB uint8 [H, W, 3] (ids outside the palette, and 255, are black)."""
    colours, _ = _lut(get_palette(palette))
    return colours[_labels_u8(labels)]


def overlay(image, labels, palette: str | np.ndarray = "cityscapes", alpha: float = 0.5) -> np.ndarray:
    """Label colours alpha-blended on the image: out = (1 - alpha) * image + alpha * colour where the label is a
    class of the palette; the image is left as it is where it is not (255 = ignore)."""
    image = _image_u8(image)
    labels = _labels_u8(labels, image.shape[:2])
    colours, known = _lut(get_palette(palette))
    a = int(round(alpha * 256))
    # (image * (256 - a) + colour * a + 128) >> 8, in place on one uint16 buffer (it runs on every frame of the
    # overlay video, beside the model)
    mixed = image.astype(np.uint16)
    mixed *= 256 - a
    mixed += (colours.astype(np.uint16) * a + 128)[labels]
    mixed >>= 8
    out = mixed.astype(np.uint8)
    clear = ~known[labels]
    if clear.any():
        out[clear] = image[clear]
    return out


class _Sink:
    """Shared context-manager and index bookkeeping: close() always runs when the ``with`` block is left."""

    def __init__(self) -> None:
        self.count = 0
        self._last_index: int | None = None
        self._closed = False

    def _next_index(self, index: int) -> int:
        index = int(index)
        if self._closed:
            raise InputError(f"{type(self).__name__} is closed; open a new sink")
        if self._last_index is not None and index <= self._last_index:
            raise InputError(f"frame indices must increase: got {index} after {self._last_index}")
        self._last_index = index
        return index

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True


class OverlayVideoSink(_Sink):
    """An H.264 video (PyAV, libx264, yuv420p) of the frames with label colours alpha-blended on top.

    path: output file (.mp4, .mkv, ...). fps: nominal frame rate. Frames written with ``pts`` (seconds) are shown at
    those times, relative to the first, so a variable-frame-rate source (phones, network cameras) keeps its timing;
    without it frame ``index`` is shown at ``index / fps`` (dropped frames keep the timing either way). palette /
    alpha: see `overlay`. crf: x264 quality (lower = better); preset: x264's speed preset (veryfast: a third of
    medium's CPU time, about the same file size on road footage, which matters beside a model on a small CPU);
    threads: the encoder's threads (0: its own choice, about 1.5 per core; `vidseg.threads` budgets them). An odd
    frame width or height is padded by one replicated pixel row / column (4:2:0 needs even sizes). When ``image`` is
    None the colour labels alone are written. The video is created at the first write, at that frame's size; a later
    frame of another size (a stream that changed resolution) is scaled to it. Until the sink closes, the file is
    ``<stem>.part<suffix>`` (`vidseg.video.encode.VideoWriter`), so a crashed process leaves nothing under ``path``.
    ``path`` may also be a stream URL (rtsp://, rtmp://, udp://, tcp://, srt://): the overlay then goes out live
    (`VideoWriter`).
    """

    def __init__(self, path: str | os.PathLike, *, fps: float | Fraction = 25, palette: str | np.ndarray = "cityscapes",
                 alpha: float = 0.5, codec: str = "libx264", crf: int = 20, preset: str = "veryfast",
                 threads: int = 0, options: dict | None = None) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.rate = Fraction(fps).limit_denominator(1001000) if fps else Fraction(25)
        self.palette = get_palette(palette)
        self.alpha = float(alpha)
        self.codec = codec
        x264 = {"crf": str(crf), "preset": preset} if codec == "libx264" else {}
        self.options = {**x264, **({"threads": str(threads)} if threads else {}), **(options or {})}
        stream_format(self.path)  # an unsupported stream URL fails here, not at the first frame
        self._writer: VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self._time_base = 1 / self.rate
        self._origin: float | None = None  # pts (s) of the first frame, when frames carry timestamps
        self._last: tuple[int, int] | None = None  # (index, ticks) of the last frame written

    def write(self, index: int, image, labels, pts: float | None = None) -> None:
        frame_rgb = colorize(labels, self.palette) if image is None else overlay(image, labels, self.palette,
                                                                                  self.alpha)
        index = self._next_index(index)
        if self._writer is None:
            if pts is not None:  # MPEG's 90 kHz clock: fine enough for any source's timestamps
                self._time_base, self._origin = Fraction(1, 90000), float(pts)
            h, w = frame_rgb.shape[:2]
            self._size = (h, w)
            self._writer = VideoWriter(self.path, width=w + w % 2, height=h + h % 2, rate=self.rate,
                                       codec=self.codec, time_base=self._time_base, options=self.options)
        h, w = self._size
        if frame_rgb.shape[:2] == (h, w) and (h % 2 or w % 2):
            frame_rgb = np.pad(frame_rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        self._writer.write(frame_rgb, pts=self._ticks(index, pts))  # another size is scaled to the video's
        self.count += 1

    def _ticks(self, index: int, pts: float | None) -> int:
        """The frame's pts in the stream's time base: from its timestamp where frames carry them, else from its
        index; always after the previous frame's (an encoder refuses repeated or decreasing pts)."""
        if self._origin is None:
            ticks = index
        elif pts is not None:
            ticks = round((float(pts) - self._origin) / self._time_base)
        else:  # a frame without a timestamp in a timed stream: one nominal period per index step
            ticks = self._last[1] + round((index - self._last[0]) / (self.rate * self._time_base))
        if self._last is not None:
            ticks = max(ticks, self._last[1] + 1)
        self._last = (index, ticks)
        return ticks

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        if self._writer is not None:
            self._writer.close()  # flushes the encoder and writes the index (moov): the file is playable


class LabelPNGSink(_Sink):
    """One 8-bit PNG of class ids per frame: ``<directory>/<name>_trainIds.png`` where name is
    ``pattern.format(index=index)``; with ``label_ids`` (a 256-entry trainId -> id table such as
    `CITYSCAPES_TRAINID_TO_LABELID`) also ``<name>_labelIds.png``, the format of the Cityscapes benchmark.
    Each PNG is written to a temporary name and renamed, so an interruption never leaves a partial file.
    """

    def __init__(self, directory: str | os.PathLike, *, pattern: str = "{index:06d}",
                 label_ids: np.ndarray | None = None) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pattern = pattern
        self.label_ids = None if label_ids is None else np.asarray(label_ids, np.uint8)
        if self.label_ids is not None and self.label_ids.shape != (256,):
            raise ShapeError(f"label_ids must be a 256-entry lookup table, got shape {self.label_ids.shape}")

    def write(self, index: int, image, labels, pts: float | None = None) -> None:
        labels = _labels_u8(labels)
        index = self._next_index(index)
        name = self.pattern.format(index=index)
        _write_png(self.directory / f"{name}_trainIds.png", labels)
        if self.label_ids is not None:
            _write_png(self.directory / f"{name}_labelIds.png", self.label_ids[labels])
        self.count += 1


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    tmp = path.with_name(path.name + ".part")
    try:
        Image.fromarray(array).save(tmp, format="PNG")
        os.replace(tmp, path)
    except OSError as err:  # a full disk, a folder gone read-only: no partial file stays behind
        tmp.unlink(missing_ok=True)
        raise output_error(path, err) from err


class NPZSink(_Sink):
    """All frames' labels in one ``.npz`` (``np.load(path)``): ``labels`` (uint8 [N, H, W], every frame stacked,
    when all frames have one size), arrays ``labels_<index:06d>`` (uint8 [H, W], per frame), ``index`` (int64
    [N], the frame indices in order), ``pts`` (float64 [N], presentation times in seconds, NaN where a frame had
    none) and, with ``images=True``, ``image_<index:06d>``.

    Frames are appended to the archive as they come and the stack is spooled to a temporary file (memory stays
    flat); ``close()`` adds ``labels``, ``index`` and ``pts`` and moves ``<path>.part`` to ``path``.
    """

    def __init__(self, path: str | os.PathLike, *, images: bool = False, compress: bool = True) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.images = images
        self._part = self.path.with_name(self.path.name + ".part")
        self._zip = zipfile.ZipFile(self._part, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
        self._indices: list[int] = []
        self._pts: list[float] = []
        self._stack = tempfile.TemporaryFile(dir=self.path.parent)  # the labels of every frame, raw, in order
        self._stack_shape: tuple[int, int] | None = None  # None after a size change: nothing to stack
        self._stackable = True

    def _add(self, name: str, array: np.ndarray) -> None:
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)

    def write(self, index: int, image, labels, pts: float | None = None) -> None:
        labels = _labels_u8(labels)
        image = _image_u8(image) if self.images else None  # check both before writing either
        index = self._next_index(index)
        try:
            self._write(index, image, labels)
        except OSError as err:  # the archive cannot be finished without space: drop it, leave nothing half-written
            self._abandon()
            raise output_error(self.path, err) from err
        self._pts.append(np.nan if pts is None else float(pts))
        self.count += 1

    def _write(self, index: int, image, labels: np.ndarray) -> None:
        self._add(f"labels_{index:06d}", labels)
        if self._stackable:
            if self._stack_shape is None:
                self._stack_shape = labels.shape
            if labels.shape == self._stack_shape:
                self._stack.write(np.ascontiguousarray(labels).tobytes())
            else:  # a stream that changed size: the per-frame arrays stay, the stack cannot exist
                self._stackable = False
        if image is not None:
            self._add(f"image_{index:06d}", image)
        self._indices.append(index)

    def _abandon(self) -> None:
        self._closed = True
        for closing in (self._stack.close, self._zip.close):
            try:
                closing()
            except OSError:
                pass
        self._part.unlink(missing_ok=True)

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        try:
            if self._stackable and self._indices:
                self._add_stack()
            self._add("index", np.asarray(self._indices, np.int64))
            self._add("pts", np.asarray(self._pts, np.float64))
            self._stack.close()
            self._zip.close()
            os.replace(self._part, self.path)
        except OSError as err:
            self._abandon()
            raise output_error(self.path, err) from err

    def _add_stack(self) -> None:
        """`labels` [N, H, W] from the spooled frames, copied in chunks (never all in memory)."""
        shape = (len(self._indices), *self._stack_shape)
        self._stack.seek(0)
        with self._zip.open("labels.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
            while chunk := self._stack.read(1 << 22):
                f.write(chunk)

"""Sources: where frames come from, behind one protocol, and the one place that turns an input into a source.

    with open_source("clip.mp4", motion=True) as source:   # a video file (vidseg.video.decode)
        for frame in source:                                # vidseg.video.frame.Frame
            ...

A `Source` iterates `Frame`s in display order and says what it knows of itself: a printable `name` (never a
secret), whether frames arrive in real time (`live`: cameras and network streams, where the newest frame wins when
the consumer is busy), its frame rate and size when known, and whether frames carry codec motion. `close()` (or
leaving the ``with`` block) releases it; iterating a source twice is not supported.

`open_source` looks at an input once (`source_kind` names what it sees) and nothing downstream asks again:

    "rtsp://...", "http(s)://", "tcp://", "udp://", "rtmp://", "srt://", any URL   network stream (live)
    "/dev/video0", "0" or 0                                                        V4L2 camera (live)
    "-"                                                                            a container on stdin
    a folder, a glob ("frames/*.png"), a Cityscapes city folder, an image file     image sequence
    any other path                                                                 video file
    a numpy array (HxWx3 or TxHxWx3), an iterable of arrays / `Frame`s             IterableSource
    a `Source`                                                                     itself

How to open them (time-outs, reconnects, RTSP transport, frame rates, camera formats) is a `SourceOptions`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vidseg.errors import ConfigError, InputError
from vidseg.video.frame import Frame
from vidseg.video.redact import redact

__all__ = ["Source", "FrameIterator", "IterableSource", "SourceOptions", "open_source", "source_kind",
           "describe_input", "RTSP_TRANSPORTS"]

RTSP_TRANSPORTS = ("tcp", "udp", "udp_multicast", "http", "https")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


@runtime_checkable
class Source(Protocol):
    """What the engine reads frames from (see the module docstring)."""

    name: str
    live: bool
    fps: float | None
    size: tuple[int, int] | None
    motion_available: bool

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Source: ...

    def __exit__(self, *exc: object) -> None: ...


class FrameIterator:
    """What the sources built on a frame generator (`_frames`) share: iterated once, the generator closed with
    the source, usable in a ``with`` block."""

    _iterator: Iterator[Frame] | None = None

    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        if self._iterator is None:
            self._iterator = self._frames()
        return self._iterator

    def close(self) -> None:
        if self._iterator is not None:
            self._iterator.close()  # type: ignore[attr-defined]

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class IterableSource(FrameIterator):
    """Frames from Python: a stack of arrays or any iterable of uint8 HxWx3 arrays or `Frame`s (a camera loop's
    generator, a list). Arrays get consecutive indices; `Frame`s keep theirs. Not live: every frame is consumed
    (wrap a real-time generator in a live source to drop frames). The iterable is closed with the source when it
    has a ``close`` (generators do)."""

    live = False
    motion_available = False

    def __init__(self, items: Iterable[Any], *, name: str | None = None, fps: float | None = None) -> None:
        self._items = items
        self.name = name or type(items).__name__
        self.fps = fps
        self.size: tuple[int, int] | None = None

    def _frames(self) -> Iterator[Frame]:
        for i, item in enumerate(self._items):
            frame = Frame(i, item) if isinstance(item, np.ndarray) else item
            if self.size is None and isinstance(getattr(frame, "image", None), np.ndarray):
                self.size = tuple(frame.image.shape[:2])  # type: ignore[assignment]
            yield frame

    def close(self) -> None:
        super().close()
        close = getattr(self._items, "close", None)
        if callable(close):
            close()


@dataclass(frozen=True)
class SourceOptions:
    """How to open a source; each option applies to the kinds named and is ignored by the others.

    timeout: network, camera: seconds an open or a read may wait before the stream counts as lost.
    rtsp_transport: RTSP: "tcp" (default: no loss, works through NAT), "udp", "udp_multicast", "http", "https".
    reconnect: network, camera: attempts to reopen a lost stream (0: none, give up at once; -1: for ever).
    reconnect_delay / reconnect_max_delay: the wait before the first attempt, doubled after each failed one up to
        the maximum (seconds).
    fps: image sequences: their frame rate (default 25; Cityscapes 17); cameras: the rate to ask for.
    video_size: cameras: "WIDTHxHEIGHT" to ask for. input_format: cameras: the pixel or compressed format to ask
        for (yuyv422, mjpeg, h264; `v4l2-ctl --list-formats` lists them).
    format: FFmpeg's demuxer to force (stdin: mpegts, matroska, h264, ...; like ffmpeg's -f).
    ffmpeg_options: more FFmpeg input options, e.g. {"rtsp_flags": "listen"} to receive a pushed RTSP stream.
    threads: files: FFmpeg decoder threads (0: FFmpeg's choice, cores + 1; `vidseg.threads` budgets them).
    """

    timeout: float = 10.0
    rtsp_transport: str = "tcp"
    reconnect: int = 5
    reconnect_delay: float = 0.5
    reconnect_max_delay: float = 8.0
    fps: float | None = None
    video_size: str | None = None
    input_format: str | None = None
    format: str | None = None
    ffmpeg_options: Mapping[str, str] = field(default_factory=dict)
    threads: int = 0

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ConfigError(f"the source time-out must be > 0 seconds, got {self.timeout}")
        if self.rtsp_transport not in RTSP_TRANSPORTS:
            raise ConfigError(f"unknown RTSP transport {self.rtsp_transport!r}; choose one of "
                              f"{', '.join(RTSP_TRANSPORTS)}")
        if self.reconnect < -1:
            raise ConfigError(f"reconnect attempts must be >= 0, or -1 for ever; got {self.reconnect}")
        if not 0 < self.reconnect_delay <= self.reconnect_max_delay:
            raise ConfigError(f"reconnect delays must satisfy 0 < first ({self.reconnect_delay}) <= maximum "
                              f"({self.reconnect_max_delay})")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"the frame rate must be > 0, got {self.fps}")
        if self.video_size is not None and not re.fullmatch(r"\d+x\d+", self.video_size):
            raise ConfigError(f"video size {self.video_size!r} is not WIDTHxHEIGHT, e.g. 1280x720")
        object.__setattr__(self, "ffmpeg_options", MappingProxyType({str(k): str(v)
                                                                     for k, v in self.ffmpeg_options.items()}))

    def __reduce__(self):
        """Picklable (a read-only mapping is not): sent to other processes, e.g. cluster workers."""
        values = [getattr(self, f.name) for f in fields(self)]
        return type(self), tuple(dict(v) if isinstance(v, Mapping) else v for v in values)


def source_kind(thing: Any) -> str:
    """What `open_source` makes of an input: "network", "device", "stdin", "images", "file", "iterable" or
    "source" (already a Source). Looks at the string only, except that an existing folder is "images"."""
    if isinstance(thing, Source):
        return "source"
    if isinstance(thing, (int, np.integer)) and not isinstance(thing, bool):
        return "device"
    if not isinstance(thing, (str, os.PathLike)):
        return "iterable"
    text = os.fspath(thing)
    if text == "-":
        return "stdin"
    if _SCHEME.match(text) and not text.lower().startswith("file://"):
        return "network"
    if text.isdigit() or text.startswith("/dev/video"):
        return "device"
    from vidseg.video.images import IMAGE_EXTENSIONS, is_glob

    if os.path.isdir(text) or (is_glob(text) and not os.path.exists(text)):
        return "images"
    if Path(text).suffix.lower() in IMAGE_EXTENSIONS:
        return "images"
    return "file"


def open_source(thing: Any, *, motion: bool = False, options: SourceOptions | None = None) -> Source:
    """The one door from an input to a `Source` (see the module docstring). motion: ask the decoder for codec
    motion vectors (files, streams). Raises InputError (one line, secrets redacted) for what cannot give frames."""
    kind = source_kind(thing)
    options = options or SourceOptions()
    if kind == "source":
        return thing
    if kind in ("network", "device", "stdin"):
        from vidseg.video.live import open_stream

        return open_stream(_device_path(thing) if kind == "device" else os.fspath(thing), kind=kind,
                           motion=motion, options=options)
    if kind == "images":
        from vidseg.video.images import ImageSequenceSource

        return ImageSequenceSource(os.fspath(thing), fps=options.fps)
    if kind == "file":
        from vidseg.video.decode import open_video

        text = os.fspath(thing)
        if text.lower().startswith("file://"):
            text = text[len("file://"):]
        return open_video(text, motion=motion, threads=options.threads)
    if isinstance(thing, np.ndarray):
        arrays = thing[None] if thing.ndim == 3 else thing
        return IterableSource(list(arrays), name=describe_input(thing))
    if isinstance(thing, Iterable):
        return IterableSource(thing, name=describe_input(thing))
    raise InputError(f"cannot read frames from a {type(thing).__name__}; give a video path or URL, arrays or frames")


def _device_path(thing: Any) -> str:
    text = str(thing)
    return f"/dev/video{int(text)}" if text.isdigit() else text


def describe_input(thing: Any) -> str:
    """How an input is named in summaries and logs (URLs redacted: never a secret)."""
    name = getattr(thing, "name", None)
    if isinstance(thing, Source) and isinstance(name, str):
        return redact(name)
    kind = source_kind(thing)
    if kind == "network":
        return redact(os.fspath(thing))
    if kind == "device":
        return _device_path(thing)
    if kind == "stdin":
        return "stdin"
    if isinstance(thing, (str, os.PathLike)):
        return str(Path(thing))
    if isinstance(thing, np.ndarray):
        return f"array {tuple(thing.shape)}"
    return type(thing).__name__

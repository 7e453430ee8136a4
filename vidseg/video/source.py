"""Sources: where frames come from, behind one protocol, and the one place that turns an input into a source.

    with open_source("clip.mp4", motion=True) as source:   # a video file (vidseg.video.decode)
        for frame in source:                                # vidseg.video.frame.Frame
            ...

A `Source` iterates `Frame`s in display order and says what it knows of itself: a printable `name` (never a
secret), whether frames arrive in real time (`live`: cameras and network streams, where the newest frame wins when
the consumer is busy), its frame rate and size when known, and whether frames carry codec motion. `close()` (or
leaving the ``with`` block) releases it; iterating a source twice is not supported.

`open_source` looks at an input once: a path opens the file decoder; a numpy array (HxWx3 or TxHxWx3) or any
iterable of arrays / `Frame`s becomes an `IterableSource`; a `Source` is returned as it is. Nothing downstream
asks what the input was.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vidseg.errors import InputError
from vidseg.video.frame import Frame

__all__ = ["Source", "IterableSource", "open_source", "describe_input"]


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


class IterableSource:
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
        self._iterator: Iterator[Frame] | None = None

    def __iter__(self) -> Iterator[Frame]:
        if self._iterator is None:
            self._iterator = self._frames()
        return self._iterator

    def _frames(self) -> Iterator[Frame]:
        for i, item in enumerate(self._items):
            frame = Frame(i, item) if isinstance(item, np.ndarray) else item
            if self.size is None and isinstance(getattr(frame, "image", None), np.ndarray):
                self.size = tuple(frame.image.shape[:2])  # type: ignore[assignment]
            yield frame

    def close(self) -> None:
        if self._iterator is not None:
            self._iterator.close()  # type: ignore[attr-defined]
        close = getattr(self._items, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> IterableSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(thing: Any, *, motion: bool = False) -> Source:
    """The one door from an input to a `Source` (see the module docstring). motion: ask the decoder for codec
    motion vectors (file sources). Raises InputError for what cannot give frames."""
    if isinstance(thing, Source):
        return thing
    if isinstance(thing, (str, os.PathLike)):
        from vidseg.video.decode import open_video

        return open_video(thing, motion=motion)
    if isinstance(thing, np.ndarray):
        arrays = thing[None] if thing.ndim == 3 else thing
        return IterableSource(list(arrays), name=describe_input(thing))
    if isinstance(thing, Iterable):
        return IterableSource(thing, name=describe_input(thing))
    raise InputError(f"cannot read frames from a {type(thing).__name__}; give a video path, arrays or frames")


def describe_input(thing: Any) -> str:
    """How an input is named in summaries and logs."""
    name = getattr(thing, "name", None)
    if isinstance(thing, Source) and isinstance(name, str):
        return name
    if isinstance(thing, (str, os.PathLike)):
        return str(Path(thing))
    if isinstance(thing, np.ndarray):
        return f"array {tuple(thing.shape)}"
    return type(thing).__name__

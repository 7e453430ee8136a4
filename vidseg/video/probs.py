"""`ProbsSink`: per-class probabilities of every frame, fp16, for fusion downstream (tracking, mapping, voting).

Probabilities are stored at the resolution of the model's logits (the stride the model computes at, e.g. 1/8 of
the frame), not upsampled: a 19-class map at 1024x2048 would be 80 MB per frame in fp16. The archive says the
frame size, so a consumer resizes (bilinear) where it needs to.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from vidseg.errors import ShapeError, output_error

__all__ = ["ProbsSink"]


class ProbsSink:
    """One ``.npz`` (``np.load(path)``): ``probs_<index:06d>`` (float16 [K, h, w], softmax over the classes of
    the frame's logits), ``index`` (int64 [N]), ``pts`` (float64 [N], NaN without a time), ``frame_size``
    (int64 [2], H and W of the frames). It needs the engine to keep logits (`EngineConfig.return_logits`);
    written as ``<path>.part`` and renamed on close, so an interrupted run leaves a complete archive of the
    frames before it.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._part = self.path.with_name(self.path.name + ".part")
        self._zip = zipfile.ZipFile(self._part, "w", zipfile.ZIP_DEFLATED)
        self._indices: list[int] = []
        self._pts: list[float] = []
        self._frame_size: tuple[int, int] | None = None
        self._closed = False
        self.count = 0

    def write(self, index: int, image, labels, pts: float | None = None, logits: np.ndarray | None = None) -> None:
        if logits is None:
            raise ShapeError("ProbsSink needs the frame's logits: run the engine with return_logits=True")
        logits = np.asarray(logits, np.float32)
        if logits.ndim != 3:
            raise ShapeError(f"logits must be [K, h, w], got shape {logits.shape}")
        shifted = np.exp(logits - logits.max(axis=0, keepdims=True))
        probs = (shifted / shifted.sum(axis=0, keepdims=True)).astype(np.float16)
        try:
            self._add(f"probs_{int(index):06d}", probs)
        except OSError as err:
            self._abandon()
            raise output_error(self.path, err) from err
        self._indices.append(int(index))
        self._pts.append(np.nan if pts is None else float(pts))
        if self._frame_size is None:
            self._frame_size = tuple(np.asarray(labels).shape[:2])  # type: ignore[assignment]
        self.count += 1

    def _add(self, name: str, array: np.ndarray) -> None:
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._add("index", np.asarray(self._indices, np.int64))
            self._add("pts", np.asarray(self._pts, np.float64))
            self._add("frame_size", np.asarray(self._frame_size or (0, 0), np.int64))
            self._zip.close()
            os.replace(self._part, self.path)
        except OSError as err:
            self._abandon()
            raise output_error(self.path, err) from err

    def _abandon(self) -> None:
        """Drop an archive that cannot be finished (a full disk): nothing half-written stays."""
        self._closed = True
        try:
            self._zip.close()
        except OSError:
            pass
        self._part.unlink(missing_ok=True)

    def __enter__(self) -> ProbsSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Segmentation metrics: confusion matrix and mIoU, and mIoU per keyframe distance (temporal consistency is in
`vidseg.eval.temporal`, the CLI's tables in `vidseg.eval.tables`).

Every metric here is one confusion matrix (or a few) accumulated on the device that holds the predictions, in
one `bincount` per update, and reduced to numbers on the host only when asked for.

mIoU definitions (`absent=`), which differ only for a class with no ground-truth pixel and no prediction on a
valid pixel (tp + fp + fn == 0), i.e. never on a full Cityscapes or CamVid split:
  "skip"  (default) mean over the classes that occur; the official Cityscapes script
          (cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling: `getIouScoreForLabel` returns NaN when
          tp + fp + fn == 0 and `getScoreAverage` averages the non-NaN scores). On the same label maps our value
          equals the official one (tests/eval/test_cityscapes_official.py).
  "zero"  such a class counts as IoU 0 in a mean over all classes: GSVNet (TP / (TP+FP+FN+1e-8)) and ETC's
          temporal consistency (I / (U+1e-10)). The epsilons are not reproduced: they move an IoU by < 1e-8.
  "nan"   plain mean over all classes, NaN if a class is absent: AR-Seg's evaluation.py (no NaN handling).

Pixels: a label equal to `ignore_index` is skipped. A label outside [0, num_classes) that is not `ignore_index`
is an error (labels must be train ids), reported when the metric is read. A prediction outside
[0, num_classes) (255 for "no class", a Cityscapes labelId that has no train id) is a miss: it counts in the
ground-truth class's false negatives and in no class's false positives, exactly as the official script counts
a prediction of an ignored labelId.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vidseg.classes import IGNORE_INDEX
from vidseg.errors import InputError, ShapeError

__all__ = ["MIOU_DEFINITIONS", "ConfusionMatrix", "KeyDistanceMIoU", "mean_iou", "as_tensor", "json_float"]

MIOU_DEFINITIONS = {
    "skip": "mean over classes present (official Cityscapes script)",
    "zero": "mean over all classes, absent class = 0 (GSVNet, ETC)",
    "nan": "mean over all classes, NaN if a class is absent (AR-Seg)",
}

ArrayLike = Tensor | np.ndarray


def as_tensor(x: ArrayLike, device: torch.device | None, what: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x) if x.flags.writeable else x.copy())
    elif not isinstance(x, Tensor):
        raise ShapeError(f"{what} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex():
        raise ShapeError(f"{what} must hold integer class ids, got dtype {x.dtype} (argmax the logits first)")
    return x if device is None else x.to(device)


def mean_iou(iou: np.ndarray, absent: str = "skip") -> float:
    """Mean of per-class IoUs whose absent classes are NaN, under one of MIOU_DEFINITIONS."""
    if absent not in MIOU_DEFINITIONS:
        raise InputError(f"unknown mIoU definition absent={absent!r}; choose one of {sorted(MIOU_DEFINITIONS)}")
    iou = np.asarray(iou, dtype=np.float64)
    if absent == "nan":
        return float(iou.mean())
    if absent == "zero":
        return float(np.nan_to_num(iou, nan=0.0).mean())
    present = iou[~np.isnan(iou)]
    return float(present.mean()) if present.size else math.nan


def json_float(value: float) -> float | None:
    """NaN -> None, so that results serialise as strict JSON."""
    return None if math.isnan(value) else float(value)


class ConfusionMatrix:
    """Pixel confusion matrix over `num_classes` classes, rows = ground truth, columns = prediction.

    Stored as int64 counts of shape [K+2, K+1] on `device` (by default the device of the first update):
    rows 0..K-1 are labels, row K counts labels that are not class ids (an error, raised when read), row K+1
    ignored pixels; column K counts predictions that are no class id (misses). `matrix` is the K x K part.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: torch.device | str | None = None):
        if num_classes < 1:
            raise InputError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self._device = None if device is None else torch.device(device)
        self._counts: Tensor | None = None

    # -- accumulation ---------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        if self._counts is not None:
            return self._counts.device
        return self._device or torch.device("cpu")

    def device_for(self, pred: ArrayLike) -> torch.device:
        """Where an update with this prediction accumulates: the matrix's device once chosen, else pred's."""
        if self._counts is not None or self._device is not None:
            return self.device
        return pred.device if isinstance(pred, Tensor) else torch.device("cpu")

    def _buffer(self, device: torch.device) -> Tensor:
        if self._counts is None:
            k = self.num_classes
            self._counts = torch.zeros((k + 2) * (k + 1), dtype=torch.int64, device=device)
        return self._counts

    def update(self, pred: ArrayLike, label: ArrayLike) -> ConfusionMatrix:
        """Add one prediction / label pair (any equal shapes, integer ids; torch on any device, or numpy)."""
        device = self.device_for(pred)
        pred = as_tensor(pred, device, "prediction")
        label = as_tensor(label, device, "label")
        if pred.shape != label.shape:
            raise ShapeError(f"prediction {tuple(pred.shape)} and label {tuple(label.shape)} differ in shape")
        k = self.num_classes
        lab = label.reshape(-1).long()
        prd = pred.reshape(-1).long()
        row = torch.where((lab >= 0) & (lab < k), lab, k)
        row = torch.where(lab == self.ignore_index, k + 1, row)
        col = torch.where((prd >= 0) & (prd < k), prd, k)
        counts = self._buffer(device)
        counts += torch.bincount(row * (k + 1) + col, minlength=counts.numel())
        return self

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts (same classes and ignore index) into this one; returns self."""
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise InputError(
                f"cannot merge a {other.num_classes}-class matrix (ignore {other.ignore_index}) into a "
                f"{self.num_classes}-class one (ignore {self.ignore_index})"
            )
        if other._counts is not None:
            counts = self._buffer(other._counts.device)
            counts += other._counts.to(counts.device)
        return self

    def reset(self) -> None:
        if self._counts is not None:
            self._counts.zero_()

    # -- reading --------------------------------------------------------------------------------------------
    def _host(self) -> np.ndarray:
        k = self.num_classes
        if self._counts is None:
            return np.zeros((k + 2, k + 1), dtype=np.int64)
        full = self._counts.view(k + 2, k + 1).cpu().numpy()
        bad = int(full[k].sum())
        if bad:
            cols = ", ".join(str(c) for c in range(k + 1) if full[k, c])
            raise InputError(
                f"{bad} label pixels hold values outside [0, {k}) that are not the ignore index "
                f"{self.ignore_index} (predicted as {cols}); labels must be train ids: map dataset ids first "
                f"(e.g. Cityscapes labelIds with vidseg.eval.datasets.CITYSCAPES_LABEL_TO_TRAIN)"
            )
        return full

    @property
    def matrix(self) -> np.ndarray:
        """[K, K] int64 counts, rows = ground truth class, columns = predicted class."""
        k = self.num_classes
        return self._host()[:k, :k].copy()

    @property
    def pixels(self) -> int:
        """Valid (not ignored) label pixels counted."""
        return int(self._host()[: self.num_classes].sum())

    @property
    def ignored_pixels(self) -> int:
        return int(self._host()[self.num_classes + 1].sum())

    def iou(self) -> np.ndarray:
        """Per-class IoU tp / (tp + fp + fn) as float64 [K]; NaN where tp + fp + fn == 0."""
        k = self.num_classes
        full = self._host()[:k].astype(np.float64)  # [K, K+1]: valid label rows incl. the miss column
        tp = np.diag(full[:, :k])
        fn = full.sum(axis=1) - tp
        fp = full[:, :k].sum(axis=0) - tp
        union = tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def miou(self, absent: str = "skip") -> float:
        """Mean IoU; `absent` picks the definition for classes that never occur (module doc, MIOU_DEFINITIONS)."""
        return mean_iou(self.iou(), absent)

    def pixel_accuracy(self) -> float:
        full = self._host()
        k = self.num_classes
        total = full[:k].sum()
        return float(np.trace(full[:k, :k]) / total) if total else math.nan

    def to_dict(self, class_names: Sequence[str] | None = None, absent: str = "skip") -> dict[str, Any]:
        """JSON-able summary (NaN written as None)."""
        iou = self.iou()
        names = list(class_names) if class_names is not None else [str(c) for c in range(self.num_classes)]
        if len(names) != self.num_classes:
            raise InputError(f"{len(names)} class names given for {self.num_classes} classes")
        return {
            "miou": json_float(self.miou(absent)),
            "miou_definition": absent,
            "iou": {n: json_float(v) for n, v in zip(names, iou, strict=True)},
            "pixel_accuracy": json_float(self.pixel_accuracy()),
            "pixels": self.pixels,
            "ignored_pixels": self.ignored_pixels,
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "matrix": self.matrix.tolist(),
        }


class KeyDistanceMIoU:
    """mIoU per keyframe distance d = 0..max_distance (d = 0 is the keyframe itself).

    Reported as (gsvnet.md §9, arseg.md §5):
      per_distance()  mIoU_d from one confusion matrix per distance (AR-Seg's rows d = 0..11)
      mean()          plain mean of the mIoU_d (AR-Seg's last row)
      avg()           mIoU of the confusion matrices pooled over all distances (GSVNet "avg. mIoU")
      min()           minimum of the mIoU_d (GSVNet "min. mIoU", normally the last non-keyframe)
    Distances that received no frame are left out of all four and listed by `distances()`.
    """

    def __init__(
        self,
        num_classes: int,
        max_distance: int,
        ignore_index: int = IGNORE_INDEX,
        device: torch.device | str | None = None,
    ):
        if max_distance < 0:
            raise InputError(f"max_distance must be >= 0, got {max_distance}")
        self.num_classes = num_classes
        self.max_distance = int(max_distance)
        self.matrices = [ConfusionMatrix(num_classes, ignore_index, device) for _ in range(max_distance + 1)]
        self._seen = [0] * (max_distance + 1)

    def update(self, pred: ArrayLike, label: ArrayLike, distance: int) -> KeyDistanceMIoU:
        if not 0 <= distance <= self.max_distance:
            raise InputError(f"keyframe distance {distance} outside 0..{self.max_distance}")
        self.matrices[distance].update(pred, label)
        self._seen[distance] += 1
        return self

    def merge(self, other: KeyDistanceMIoU) -> KeyDistanceMIoU:
        if other.max_distance != self.max_distance:
            raise InputError(f"cannot merge max_distance {other.max_distance} into {self.max_distance}")
        for d, m in enumerate(other.matrices):
            self.matrices[d].merge(m)
            self._seen[d] += other._seen[d]
        return self

    def distances(self) -> list[int]:
        return [d for d, n in enumerate(self._seen) if n]

    def frames(self) -> list[int]:
        """Frames counted at each distance 0..max_distance."""
        return list(self._seen)

    def per_distance(self, absent: str = "skip") -> dict[int, float]:
        return {d: self.matrices[d].miou(absent) for d in self.distances()}

    def mean(self, absent: str = "skip") -> float:
        values = list(self.per_distance(absent).values())
        return float(np.mean(values)) if values else math.nan

    def pooled(self) -> ConfusionMatrix:
        pooled = ConfusionMatrix(self.num_classes, self.matrices[0].ignore_index, self.matrices[0].device)
        for m in self.matrices:
            pooled.merge(m)
        return pooled

    def avg(self, absent: str = "skip") -> float:
        return self.pooled().miou(absent)

    def min(self, absent: str = "skip") -> float:
        values = list(self.per_distance(absent).values())
        return float(np.min(values)) if values else math.nan

    def to_dict(self, absent: str = "skip") -> dict[str, Any]:
        per = self.per_distance(absent)
        return {
            "miou_definition": absent,
            "per_distance": {str(d): json_float(v) for d, v in per.items()},
            "frames": {str(d): n for d, n in enumerate(self._seen) if n},
            "mean": json_float(self.mean(absent)),
            "avg": json_float(self.avg(absent)),
            "min": json_float(self.min(absent)),
        }

"""Segmentation metrics: confusion matrix and mIoU, mIoU per keyframe distance, temporal consistency.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vidseg.classes import IGNORE_INDEX
from vidseg.errors import InputError, ShapeError

__all__ = [
    "MIOU_DEFINITIONS",
    "ConfusionMatrix",
    "KeyDistanceMIoU",
    "TemporalConsistency",
    "mean_iou",
    "resample2d",
    "Table",
    "format_table",
]

MIOU_DEFINITIONS = {
    "skip": "mean over classes present (official Cityscapes script)",
    "zero": "mean over all classes, absent class = 0 (GSVNet, ETC)",
    "nan": "mean over all classes, NaN if a class is absent (AR-Seg)",
}

ArrayLike = Tensor | np.ndarray


def _as_tensor(x: ArrayLike, device: torch.device | None, what: str) -> Tensor:
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


def _json_float(value: float) -> float | None:
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
        pred = _as_tensor(pred, device, "prediction")
        label = _as_tensor(label, device, "label")
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
            "miou": _json_float(self.miou(absent)),
            "miou_definition": absent,
            "iou": {n: _json_float(v) for n, v in zip(names, iou, strict=True)},
            "pixel_accuracy": _json_float(self.pixel_accuracy()),
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
            "per_distance": {str(d): _json_float(v) for d, v in per.items()},
            "frames": {str(d): n for d, n in enumerate(self._seen) if n},
            "mean": _json_float(self.mean(absent)),
            "avg": _json_float(self.avg(absent)),
            "min": _json_float(self.min(absent)),
        }


# -- temporal consistency -----------------------------------------------------------------------------------


def _flow_hw2(flow: ArrayLike, size: tuple[int, int], device: torch.device) -> Tensor:
    """Flow as float32 [H, W, 2] (dx, dy) on device, from [H,W,2] or [2,H,W], torch or numpy."""
    if isinstance(flow, np.ndarray):
        flow = torch.from_numpy(np.ascontiguousarray(flow) if flow.flags.writeable else flow.copy())
    if not isinstance(flow, Tensor):
        raise ShapeError(f"flow must be a torch.Tensor or numpy array, got {type(flow).__name__}")
    flow = flow.to(device=device, dtype=torch.float32)
    h, w = size
    if tuple(flow.shape) == (h, w, 2):
        return flow
    if tuple(flow.shape) == (2, h, w):
        return flow.permute(1, 2, 0)
    raise ShapeError(f"flow must be [{h},{w},2] or [2,{h},{w}] for {h}x{w} label maps, got {tuple(flow.shape)}")


def resample2d(labels: Tensor, flow: Tensor, mode: str = "etc") -> Tensor:
    """Backward-warp a label map [H, W] by flow [H, W, 2] (pixels): out(p) = labels(p + flow(p)).

    mode "etc": NVIDIA flownet2-pytorch `Resample2d` (kernel_size 1) on the ids as float32, as ETC's
    tool/eval_tc.py does: bilinear weights from the unclamped fractional parts, the four neighbour indices
    clamped to the border, the four terms added in float32 in the kernel's order, then truncated to uint8.
    Two quirks follow and are part of ETC's numbers: a boundary pixel between ids 2 and 13 can become 7, and
    at a fractional sample point inside a region of one id c the float32 sum can land just below c and be
    truncated to c - 1 (about 1.5 % of such pixels for uniformly random sub-pixel flow). mode "nearest": the
    id at the rounded sample point, clamped to the border (a cleaner variant; not ETC's number).
    Returns int64 [H, W].
    """
    h, w = labels.shape
    ys = torch.arange(h, device=labels.device, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, device=labels.device, dtype=torch.float32).view(1, w)
    xf = xs + flow[..., 0]
    yf = ys + flow[..., 1]
    if mode == "nearest":
        xi = torch.floor(xf + 0.5).long().clamp(0, w - 1)
        yi = torch.floor(yf + 0.5).long().clamp(0, h - 1)
        return labels.long()[yi, xi]
    if mode != "etc":
        raise InputError(f"unknown label warp mode {mode!r}; choose 'etc' or 'nearest'")
    x0 = torch.floor(xf)
    y0 = torch.floor(yf)
    alpha = (xf - x0).double()
    beta = (yf - y0).double()
    xl = x0.long().clamp(0, w - 1)
    xr = (x0.long() + 1).clamp(0, w - 1)
    yt = y0.long().clamp(0, h - 1)
    yb = (y0.long() + 1).clamp(0, h - 1)
    src = labels.float()
    val = ((1.0 - alpha) * (1.0 - beta) * src[yt, xl].double()).float()
    val = val + (alpha * (1.0 - beta) * src[yt, xr].double()).float()
    val = val + ((1.0 - alpha) * beta * src[yb, xl].double()).float()
    val = val + (alpha * beta * src[yb, xr].double()).float()
    return val.to(torch.uint8).long()


FlowFn = Callable[[ArrayLike, ArrayLike], ArrayLike]


class TemporalConsistency:
    """Temporal consistency (TC) of consecutive predictions, as ETC measures it (etc.md §4).

    For a pair (t, t+1) with flow F from frame t to frame t+1 on frame t's grid (pixels, (dx, dy): pixel p of
    frame t is at p + F(p) in frame t+1), the prediction of t+1 is backward-warped into frame t,
    W(p) = P_{t+1}(p + F(p)) (`resample2d`, mode "etc" by default), and compared with P_t: per class,
    intersection and union of {P_t == c} and {W == c} are summed over all pairs; TC = mean over all classes of
    I / U with an absent class counted 0. No ground truth is involved; every pixel counts. Predictions are
    class ids in [0, num_classes) (ETC's are; an id outside that range would be mixed by the bilinear warp).

    `occlusion_masked=True` is the variant that leaves out the pixels of frame t that an occlusion mask marks
    as not visible in t+1 (ETC has this line commented out); its name is "tc_noc" instead of "tc".

    `direction="backward"` takes, for each pair, the flow of frame t+1 into frame t on t+1's grid (and an
    occlusion mask on t+1's grid), as codec motion and vidseg's synthetic clips give it; the pair is then
    scored mirrored in time (P_t warped into t+1 and compared with P_{t+1}), which is ETC's procedure on the
    reversed clip. Its name gets a "_bwd" suffix, so the two are never mixed up in a results table.

    Flow comes with each pair (`flow=`) or from `flow_fn(image_t, image_t1)` (any estimator, e.g. a wrapped
    FlowNet2 or RAFT; it returns the flow in the direction above). `flow_source` names it in the output.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        occlusion_masked: bool = False,
        direction: str = "forward",
        label_warp: str = "etc",
        flow_fn: FlowFn | None = None,
        flow_source: str = "given",
        ignore_index: int = IGNORE_INDEX,
        device: torch.device | str | None = None,
    ):
        if direction not in ("forward", "backward"):
            raise InputError(f"direction must be 'forward' (ETC) or 'backward', got {direction!r}")
        if label_warp not in ("etc", "nearest"):
            raise InputError(f"label_warp must be 'etc' or 'nearest', got {label_warp!r}")
        self.num_classes = num_classes
        self.occlusion_masked = occlusion_masked
        self.direction = direction
        self.label_warp = label_warp
        self.flow_fn = flow_fn
        self.flow_source = flow_source
        self.ignore_index = ignore_index
        self.pairs = 0
        self.cm = ConfusionMatrix(num_classes, ignore_index, device)

    @property
    def name(self) -> str:
        name = "tc_noc" if self.occlusion_masked else "tc"
        if self.direction == "backward":
            name += "_bwd"
        if self.label_warp != "etc":
            name += f"_{self.label_warp}"
        return name

    def update(
        self,
        pred_t: ArrayLike,
        pred_t1: ArrayLike,
        *,
        flow: ArrayLike | None = None,
        occlusion: ArrayLike | None = None,
        image_t: ArrayLike | None = None,
        image_t1: ArrayLike | None = None,
    ) -> TemporalConsistency:
        """Score one pair of consecutive label maps [H, W] (see the class doc for the flow's direction)."""
        device = self.cm.device_for(pred_t)
        a = _as_tensor(pred_t, device, "prediction t")
        b = _as_tensor(pred_t1, device, "prediction t+1")
        if a.shape != b.shape or a.dim() != 2:
            raise ShapeError(f"temporal consistency needs two [H,W] label maps, got {tuple(a.shape)}, {tuple(b.shape)}")
        if flow is None:
            if self.flow_fn is None or image_t is None or image_t1 is None:
                raise InputError("temporal consistency needs a flow per pair, or a flow_fn and both images")
            flow = self.flow_fn(image_t, image_t1)
        f = _flow_hw2(flow, tuple(a.shape), device)
        ref, other = (a, b) if self.direction == "forward" else (b, a)
        warped = resample2d(other, f, self.label_warp)
        if self.occlusion_masked:
            if occlusion is None:
                raise InputError(f"{self.name}: the occlusion-masked variant needs an occlusion mask per pair")
            occ = torch.as_tensor(occlusion).to(device=device, dtype=torch.bool)
            if occ.shape != a.shape:
                raise ShapeError(f"occlusion mask {tuple(occ.shape)} must match the label maps {tuple(a.shape)}")
            warped = torch.where(occ, self.ignore_index, warped)
        self.cm.update(ref, warped)
        self.pairs += 1
        return self

    def update_clip(
        self,
        preds: Sequence[ArrayLike],
        *,
        flows: Sequence[ArrayLike] | None = None,
        occlusions: Sequence[ArrayLike] | None = None,
        images: Sequence[ArrayLike] | None = None,
    ) -> TemporalConsistency:
        """Score every consecutive pair of a clip; flows[t] / occlusions[t] belong to pair (t, t+1)."""
        n = len(preds)
        for what, seq in (("flows", flows), ("occlusions", occlusions)):
            if seq is not None and len(seq) != n - 1:
                raise InputError(f"{n} predictions make {n - 1} pairs, but {len(seq)} {what} were given")
        if images is not None and len(images) != n:
            raise InputError(f"{n} predictions but {len(images)} images")
        for t in range(n - 1):
            self.update(
                preds[t],
                preds[t + 1],
                flow=None if flows is None else flows[t],
                occlusion=None if occlusions is None else occlusions[t],
                image_t=None if images is None else images[t],
                image_t1=None if images is None else images[t + 1],
            )
        return self

    def value(self) -> float:
        """TC in [0, 1]: mean over all classes of summed intersection / summed union, absent class = 0."""
        return self.cm.miou("zero")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _json_float(self.value()),
            "pairs": self.pairs,
            "direction": self.direction,
            "label_warp": self.label_warp,
            "occlusion_masked": self.occlusion_masked,
            "flow_source": self.flow_source,
        }


# -- summary for the CLI ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """Rows for a rich table (values as percentages) and the same results as a JSON-able dict (fractions)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    data: dict[str, Any]


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100.0 * value:.2f}"


def format_table(
    *,
    miou: ConfusionMatrix | None = None,
    key_distance: KeyDistanceMIoU | None = None,
    tc: TemporalConsistency | Sequence[TemporalConsistency] = (),
    class_names: Sequence[str] | None = None,
    absent: str = "skip",
    per_class: bool = False,
    title: str = "evaluation",
) -> Table:
    """Summarise whichever metrics were computed into table rows (metric, value %, note) and a dict.

    `per_class` adds one row per class IoU of `miou` (or, without it, of the pooled key-distance matrix).
    """
    rows: list[tuple[str, str, str]] = []
    data: dict[str, Any] = {"miou_definition": absent}
    definition = MIOU_DEFINITIONS[absent] if absent in MIOU_DEFINITIONS else absent
    if miou is not None:
        data["miou"] = miou.to_dict(class_names, absent)
        rows.append(("mIoU", _pct(miou.miou(absent)), f"{miou.pixels} px; {definition}"))
    if key_distance is not None:
        kd = key_distance.to_dict(absent)
        data["key_distance"] = kd
        frames = key_distance.frames()
        for d, v in key_distance.per_distance(absent).items():
            rows.append((f"mIoU d={d}", _pct(v), f"{frames[d]} frames"))
        rows.append(("mIoU mean over d", _pct(key_distance.mean(absent)), "plain mean of mIoU_d (AR-Seg)"))
        rows.append(("mIoU avg", _pct(key_distance.avg(absent)), "pooled over all frames (GSVNet avg)"))
        rows.append(("mIoU min", _pct(key_distance.min(absent)), "worst distance (GSVNet min)"))
    if per_class:
        cm = miou if miou is not None else key_distance.pooled() if key_distance is not None else None
        if cm is not None:
            names = list(class_names) if class_names is not None else [str(c) for c in range(cm.num_classes)]
            rows.extend((f"  IoU {n}", _pct(v), "") for n, v in zip(names, cm.iou(), strict=True))
    for metric in [tc] if isinstance(tc, TemporalConsistency) else tc:
        d = metric.to_dict()
        data.setdefault("temporal_consistency", {})[metric.name] = d
        label = "TC (occlusion-masked)" if metric.occlusion_masked else "TC"
        note = f"{metric.pairs} pairs, flow: {metric.flow_source}, {metric.direction}, warp: {metric.label_warp}"
        rows.append((label, _pct(metric.value()), note))
    return Table(title, ("metric", "value (%)", "notes"), tuple(rows), data)

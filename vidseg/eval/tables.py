"""The evaluation's results as table rows (percentages) and a JSON-able dict (fractions), for the CLI."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vidseg.eval.metrics import MIOU_DEFINITIONS, ConfusionMatrix, KeyDistanceMIoU
from vidseg.eval.temporal import TemporalConsistency

__all__ = ["Table", "format_table"]


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

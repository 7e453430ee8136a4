"""vidseg.eval: segmentation metrics and evaluation datasets.

metrics    ConfusionMatrix (mIoU, official-Cityscapes agreement), KeyDistanceMIoU (mIoU_d, mean, avg, min),
           TemporalConsistency (ETC's TC and its occlusion-masked variant)
datasets   CityscapesSequence / CityscapesImages, CamVidARSeg (AR-Seg's compressed layout), SyntheticClip
consistency AgreementMeter, measure_agreement: a keyframe method's agreement with per-frame, on any video
"""

from __future__ import annotations

from vidseg.eval.consistency import AgreementMeter, measure_agreement
from vidseg.eval.datasets import (
    CAMVID_CLASSES,
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABEL_TO_TRAIN,
    CamVidARSeg,
    CamVidSample,
    CityscapesImages,
    CityscapesSequence,
    Clip,
    Sample,
    SyntheticClip,
    read_mv_bin,
)
from vidseg.eval.metrics import MIOU_DEFINITIONS, ConfusionMatrix, KeyDistanceMIoU, mean_iou
from vidseg.eval.temporal import TemporalConsistency, resample2d

__all__ = [
    "AgreementMeter",
    "measure_agreement",
    "CAMVID_CLASSES",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABEL_TO_TRAIN",
    "CamVidARSeg",
    "CamVidSample",
    "CityscapesImages",
    "CityscapesSequence",
    "Clip",
    "Sample",
    "SyntheticClip",
    "read_mv_bin",
    "MIOU_DEFINITIONS",
    "ConfusionMatrix",
    "KeyDistanceMIoU",
    "TemporalConsistency",
    "mean_iou",
    "resample2d",
]

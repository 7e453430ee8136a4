"""Our mIoU against the official Cityscapes pixel-level evaluation on the same label maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from vidseg.eval.datasets import CITYSCAPES_CLASSES, CITYSCAPES_LABEL_TO_TRAIN
from vidseg.eval.metrics import ConfusionMatrix

cs_eval = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
cs_labels = pytest.importorskip("cityscapesscripts.helpers.labels")


def test_label_to_train_table_matches_cityscapesscripts():
    expected = np.full(256, 255, dtype=np.uint8)
    for label in cs_labels.labels:
        if label.id >= 0 and label.trainId not in (-1, 255):
            expected[label.id] = label.trainId
    np.testing.assert_array_equal(CITYSCAPES_LABEL_TO_TRAIN, expected)
    names = {label.trainId: label.name for label in cs_labels.labels if 0 <= label.trainId < 255}
    assert tuple(names[i] for i in range(19)) == CITYSCAPES_CLASSES


def _fake_maps(rng, n=3, h=24, w=40):
    """GT and predictions in labelIds. GT uses every id (ignored ones too) except a few train classes, and
    predictions include ignored labelIds, so 'absent' classes and misses both occur."""
    train_ids = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
    absent_everywhere = {31, 32}  # train, motorcycle: in neither GT nor prediction -> NaN, skipped
    gt_absent = {33}  # bicycle: predicted but never in GT -> IoU 0 (counts in the official mean)
    gt_pool = [i for i in range(34) if i not in absent_everywhere | gt_absent]
    pred_pool = [i for i in train_ids if i not in absent_everywhere] + [0, 4, 9]
    pairs = []
    for _ in range(n):
        gt = rng.choice(gt_pool, size=(h, w)).astype(np.uint8)
        pred = np.where(rng.random((h, w)) < 0.6, gt, rng.choice(pred_pool, size=(h, w))).astype(np.uint8)
        pred[np.isin(pred, list(absent_everywhere))] = 7
        pairs.append((gt, pred))
    return pairs


def test_miou_agrees_with_official_cityscapes_script(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    pairs = _fake_maps(rng)
    cm = ConfusionMatrix(19)
    for k, (gt, pred) in enumerate(pairs):
        name = f"testcity_000000_{k * 30 + 19:06d}"
        gt_dir = tmp_path / "gtFine" / "val" / "testcity"
        gt_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(gt).save(gt_dir / f"{name}_gtFine_labelIds.png")
        (tmp_path / "results").mkdir(exist_ok=True)
        Image.fromarray(pred).save(tmp_path / "results" / f"{name}_pred.png")
        cm.update(CITYSCAPES_LABEL_TO_TRAIN[pred], CITYSCAPES_LABEL_TO_TRAIN[gt])

    args = cs_eval.args
    for key, value in {
        "cityscapesPath": str(tmp_path),
        "groundTruthSearch": str(tmp_path / "gtFine" / "val" / "*" / "*_gtFine_labelIds.png"),
        "predictionPath": str(tmp_path / "results"),
        "predictionWalk": None,
        "evalInstLevelScore": False,
        "evalPixelAccuracy": False,
        "JSONOutput": False,
        "quiet": True,
        "colorized": False,
        "exportFile": str(tmp_path / "result.json"),
    }.items():
        monkeypatch.setattr(args, key, value, raising=False)
    gts = sorted(cs_eval.glob.glob(args.groundTruthSearch))
    preds = [cs_eval.getPrediction(args, gt) for gt in gts]
    official = cs_eval.evaluateImgLists(preds, gts, args)

    ours = cm.iou()
    for c, name in enumerate(CITYSCAPES_CLASSES):
        theirs = official["classScores"][name]
        if math.isnan(theirs):
            assert math.isnan(ours[c]), name
        else:
            assert ours[c] == pytest.approx(theirs, abs=1e-6), name
    assert math.isnan(ours[16]) and math.isnan(ours[17]) and ours[18] == 0.0  # the cases the maps set up
    assert cm.miou() == pytest.approx(official["averageScoreClasses"], abs=1e-6)
    # The other definitions differ on exactly these maps (two absent classes):
    assert math.isnan(cm.miou("nan"))
    assert cm.miou("zero") == pytest.approx(official["averageScoreClasses"] * 17 / 19, abs=1e-6)

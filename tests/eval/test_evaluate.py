"""vidseg.eval.evaluate on tiny fake datasets in their real layouts, cross-checked against plain loops.

The model is the engine tests' tiny model (tests/engine/engine_tiny.py) with a head for the dataset's classes, so
every method (per-frame, arseg, flowwarp) runs in milliseconds; the reference loops drive the engine frame by
frame and count the confusion matrix with numpy, independently of vidseg.eval.metrics.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from engine_tiny import TINY_SPEC, RefineStage, TinyModel, make_frames  # noqa: E402

from vidseg.config import EngineConfig  # noqa: E402
from vidseg.engine.engine import Engine  # noqa: E402
from vidseg.errors import ConfigError, DatasetError  # noqa: E402
from vidseg.eval.datasets import CITYSCAPES_LABEL_TO_TRAIN  # noqa: E402
from vidseg.eval.evaluate import encode_h264, evaluate  # noqa: E402
from vidseg.video.decode import open_video  # noqa: E402
from vidseg.video.motion import MotionField  # noqa: E402

H, W = 64, 128
CS_NAMES = [("aachen", "000000", 19), ("bochum", "000003", 19)]
LABEL_IDS = np.array([7, 8, 11, 21, 23, 26, 24, 0], np.uint8)  # road .. car, person, unlabeled (-> 255)


def tiny_model(num_classes: int) -> TinyModel:
    """The engine tests' tiny model with a `num_classes` head (seeded, labels vary across the frame)."""
    model = TinyModel()
    model.spec = dataclasses.replace(TINY_SPEC, name=f"tiny{num_classes}", num_classes=num_classes)
    model.head = nn.Conv2d(8, num_classes, 1)
    model.refine = RefineStage(model.pre, num_classes)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in [*model.head.parameters(), *model.refine.parameters()]:
            p.copy_(torch.randn(p.shape, generator=gen))
    return model.eval()


def ref_miou(pairs: list[tuple[np.ndarray, np.ndarray]], k: int) -> float:
    """Official-style mIoU (classes with tp+fp+fn == 0 skipped) from (prediction, train-id label) pairs."""
    cm = np.zeros((k, k), np.int64)
    for pred, label in pairs:
        ok = label != 255
        cm += np.bincount(label[ok].astype(np.int64) * k + pred[ok], minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - tp
    return float(np.mean(tp[union > 0] / union[union > 0]))


def check_summary(kd: dict, per_d: dict[int, list], k: int) -> None:
    expected = {d: ref_miou(p, k) for d, p in per_d.items()}
    assert set(kd["per_distance"]) == {str(d) for d in per_d}
    for d, value in expected.items():
        assert kd["per_distance"][str(d)] == pytest.approx(value, abs=1e-12)
        assert kd["frames"][str(d)] == len(per_d[d])
    assert kd["mean"] == pytest.approx(np.mean(list(expected.values())), abs=1e-12)
    assert kd["min"] == pytest.approx(min(expected.values()), abs=1e-12)
    assert kd["avg"] == pytest.approx(ref_miou([p for ps in per_d.values() for p in ps], k), abs=1e-12)


# -- Cityscapes ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory) -> Path:
    """Two annotated frames with frames gt-2 .. gt of a translating textured scene; labelIds with ignored ids."""
    root = tmp_path_factory.mktemp("cityscapes")
    rng = np.random.default_rng(0)
    for n, (city, seq, gt) in enumerate(CS_NAMES):
        frames = make_frames(3, H, W, seed=n, shift=3)
        seq_dir = root / "leftImg8bit_sequence" / "val" / city
        gt_dir = root / "gtFine" / "val" / city
        seq_dir.mkdir(parents=True)
        gt_dir.mkdir(parents=True)
        for j, frame in enumerate(frames):
            Image.fromarray(frame).save(seq_dir / f"{city}_{seq}_{gt - 2 + j:06d}_leftImg8bit.png")
        ids = LABEL_IDS[rng.integers(0, len(LABEL_IDS), (H // 8, W // 8))].repeat(8, 0).repeat(8, 1)
        Image.fromarray(ids).save(gt_dir / f"{city}_{seq}_{gt:06d}_gtFine_labelIds.png")
    return root


def cityscapes_reference(root: Path, model, method: str, d_max: int) -> dict[int, list]:
    """Plain loop: for each annotated frame and d, run gt-d..gt (first = key), keep the last labels."""
    engine = Engine(EngineConfig(method=method, device="cpu", keyframe_interval=d_max + 1, drift_limit=None),
                    model=model)
    per_d: dict[int, list] = {d: [] for d in range(d_max + 1)}
    for n, (city, seq, gt) in enumerate(CS_NAMES):
        label_ids = np.array(Image.open(root / "gtFine" / "val" / city / f"{city}_{seq}_{gt:06d}_gtFine_labelIds.png"))
        label = CITYSCAPES_LABEL_TO_TRAIN[label_ids]
        for d in range(d_max + 1):
            frames = [np.array(Image.open(root / "leftImg8bit_sequence" / "val" / city /
                                          f"{city}_{seq}_{gt - d + j:06d}_leftImg8bit.png")) for j in range(d + 1)]
            if method == "arseg":  # re-encoded, decoded with motion, fed one frame at a time
                path = encode_h264(root.parent / f"ref_{n}_{d}.mp4", frames)
                engine.reset()
                with open_video(path, motion=True) as video:
                    decoded = list(video)
                assert [f.pict_type for f in decoded] == ["I"] + ["P"] * d
                for f in decoded:
                    out = engine.process_frame(f.image, motion=f.motion, pict_type=f.pict_type, index=f.index)
                assert out.key_distance == d
            else:
                out = list(engine.run(np.stack(frames)))[-1]
            per_d[d].append((out.labels.astype(np.int64), label))
    return per_d


@pytest.mark.parametrize("method", ["per-frame", "arseg", "flowwarp"])
def test_cityscapes_matches_a_plain_loop(cityscapes, method):
    model = tiny_model(19)
    result = evaluate(EngineConfig(method=method, device="cpu"), "cityscapes", cityscapes, model=model,
                      max_distance=2)
    data = result.to_dict()
    assert (result.items, result.frames) == (2, 6)
    check_summary(data["key_distance"], cityscapes_reference(cityscapes, model, method, 2), 19)
    assert data["method"] == method and data["split"] == "val"
    if method == "arseg":
        assert data["motion_source"].startswith("codec (H.264 re-encode")
        assert not [f for f in data["fallbacks"] if "no codec motion" in f]
    if method == "per-frame":  # computed once, counted at every d
        assert len(set(data["key_distance"]["per_distance"].values())) == 1
    else:  # the key at distance d matters
        assert len(set(data["key_distance"]["per_distance"].values())) > 1


def test_cityscapes_limit_and_errors(cityscapes, tmp_path):
    model = tiny_model(19)
    result = evaluate(EngineConfig(device="cpu"), "cityscapes", cityscapes, model=model, max_distance=0, limit=1)
    assert (result.items, result.frames) == (1, 1)
    with pytest.raises(DatasetError, match="expected path"):  # frames gt-3 do not exist
        evaluate(EngineConfig(device="cpu"), "cityscapes", cityscapes, model=model, max_distance=3)
    with pytest.raises(DatasetError, match="expected layout"):
        evaluate(EngineConfig(device="cpu"), "cityscapes", tmp_path, model=model)
    with pytest.raises(ConfigError, match="predicts 12 classes"):
        evaluate(EngineConfig(device="cpu"), "cityscapes", cityscapes, model=tiny_model(12), max_distance=0)
    with pytest.raises(ConfigError, match="synthetic"):
        evaluate(EngineConfig(device="cpu"), "cityscapes", cityscapes, model=model, max_distance=0, tc=True)


# -- CamVid (AR-Seg layout) ---------------------------------------------------------------------------------

CAMVID_NAMES = ["0001TP_006690", "0006R0_f00933"]  # raw frames 31 and 935


@pytest.fixture(scope="module")
def camvid(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("camvid")
    base = root / "3M-GOP12"
    rng = np.random.default_rng(1)
    frames = make_frames(4, H, W, seed=5, shift=4)
    for name, raw in zip(CAMVID_NAMES, (31, 935), strict=True):
        seq = name.split("_")[0]
        (base / "frames" / seq).mkdir(parents=True, exist_ok=True)
        for d in range(3):
            dist = base / f"decoded_GOP12_dist_{d}"
            for sub in ("test", "test_labels_with_ignored"):
                (dist / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(frames[d]).save(dist / "test" / f"{name}.png")
            label = rng.integers(0, 12, (H // 8, W // 8)).astype(np.uint8)
            label[0, :] = 255
            Image.fromarray(label.repeat(8, 0).repeat(8, 1)).save(dist / "test_labels_with_ignored" / f"{name}.png")
            Image.fromarray(frames[0]).save(base / "frames" / seq / f"{seq}_{raw - d:06d}.png")
            if d:
                mv = np.zeros((H, W, 2), np.int16)
                mv[..., 0] = 4 * 4 * d  # quarter-pel: frame d shows at x what the key shows at x + 4d
                (base / f"MVmap_GOP12_dist_{d}" / seq).mkdir(parents=True, exist_ok=True)
                mv.tofile(base / f"MVmap_GOP12_dist_{d}" / seq / f"{name}.bin")
    return root


@pytest.mark.parametrize("method", ["per-frame", "arseg"])
def test_camvid_matches_a_plain_loop(camvid, method):
    model = tiny_model(12)
    result = evaluate(EngineConfig(method=method, device="cpu"), "camvid", camvid, model=model, max_distance=2)
    data = result.to_dict()
    assert (result.items, result.frames) == (2, 6) and data["split"] == "test"
    engine = Engine(EngineConfig(method=method, device="cpu"), model=model)
    per_d: dict[int, list] = {0: [], 1: [], 2: []}
    base = camvid / "3M-GOP12"
    for name, raw in zip(CAMVID_NAMES, (31, 935), strict=True):
        seq = name.split("_")[0]
        for d in range(3):
            dist = base / f"decoded_GOP12_dist_{d}"
            frame = np.array(Image.open(dist / "test" / f"{name}.png"))
            label = np.array(Image.open(dist / "test_labels_with_ignored" / f"{name}.png"))
            engine.reset()
            if d and method == "arseg":
                engine.process_frame(np.array(Image.open(base / "frames" / seq / f"{seq}_{raw - d:06d}.png")))
                mv = np.fromfile(base / f"MVmap_GOP12_dist_{d}" / seq / f"{name}.bin", "<i2").reshape(H, W, 2) / 4
                out = engine.process_frame(frame, motion=MotionField.from_dense(mv.transpose(2, 0, 1)), index=d)
                assert not out.is_key
            else:
                out = engine.process_frame(frame)
            per_d[d].append((out.labels.astype(np.int64), label))
    check_summary(data["key_distance"], per_d, 12)
    if method == "arseg":
        assert "per-pixel" in data["motion_source"]


# -- synthetic clips ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    from vidseg.synthetic import SceneConfig, write_clip

    root = tmp_path_factory.mktemp("synthetic")
    write_clip(root / "street.mp4", SceneConfig(height=H, width=W, seed=2), 6, gop=3)
    return root


def test_synthetic_matches_a_plain_loop_with_tc(synthetic):
    from vidseg.eval.temporal import TemporalConsistency
    from vidseg.synthetic import load_ground_truth

    model = tiny_model(19)
    config = EngineConfig(method="arseg", keyframes="gop", device="cpu")
    result = evaluate(config, "synthetic", synthetic, model=model, tc=True)
    data = result.to_dict()
    assert (result.items, result.frames, result.unscored_frames) == (1, 6, 0)
    outs = list(Engine(config, model=model).run(synthetic / "street.mp4"))
    assert [o.key_distance for o in outs] == [0, 1, 2, 0, 1, 2]
    gts = [load_ground_truth(synthetic / "street.mp4", t) for t in range(6)]
    per_d: dict[int, list] = {0: [], 1: [], 2: []}
    for o, gt in zip(outs, gts, strict=True):
        per_d[o.key_distance].append((o.labels.astype(np.int64), gt["labels"]))
    check_summary(data["key_distance"], per_d, 19)
    tc = data["temporal_consistency"]
    assert set(tc) == {"tc_bwd", "tc_noc_bwd"}
    for masked, name in ((False, "tc_bwd"), (True, "tc_noc_bwd")):
        ref = TemporalConsistency(19, direction="backward", occlusion_masked=masked)
        for t in range(5):
            ref.update(outs[t].labels, outs[t + 1].labels, flow=gts[t + 1]["flow_prev"],
                       occlusion=gts[t + 1]["occ_prev"])
        assert tc[name]["value"] == pytest.approx(ref.value(), abs=1e-12)
        assert tc[name]["pairs"] == 5 and tc[name]["direction"] == "backward"
        assert "ground truth" in tc[name]["flow_source"]
    assert [row[0] for row in result.table().rows][-2:] == ["TC", "TC (occlusion-masked)"]


def test_synthetic_per_frame_scores_gop_position_and_interval_caps(synthetic):
    model = tiny_model(19)
    result = evaluate(EngineConfig(method="per-frame", device="cpu"), "synthetic", synthetic / "street.mp4",
                      model=model)
    assert result.key_distance.frames() == [2, 2, 2]
    result = evaluate(EngineConfig(method="flowwarp", keyframe_interval=6, device="cpu"), "synthetic", synthetic,
                      model=model, max_distance=3)
    assert result.key_distance.frames() == [1, 1, 1, 1] and result.unscored_frames == 2
    with pytest.raises(DatasetError, match="no synthetic clip"):
        evaluate(EngineConfig(device="cpu"), "synthetic", synthetic / "street_gt" / "labels", model=model)

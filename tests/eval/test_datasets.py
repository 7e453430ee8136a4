"""Dataset readers on tiny fake directories in the real layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vidseg.errors import DatasetError
from vidseg.eval.datasets import (
    CITYSCAPES_LABEL_TO_TRAIN,
    CamVidARSeg,
    CityscapesImages,
    CityscapesSequence,
    SyntheticClip,
    read_mv_bin,
)
from vidseg.eval.temporal import TemporalConsistency

H, W = 8, 12


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _frame(value):
    return np.full((H, W, 3), value, np.uint8)


def _cityscapes(root, frames=range(0, 30), cities=(("aachen", "000001", 19), ("bonn", "000042", 49))):
    for city, seq, gt in cities:
        for f in frames:
            n = gt - 19 + f
            _png(root / "leftImg8bit_sequence" / "val" / city / f"{city}_{seq}_{n:06d}_leftImg8bit.png", _frame(n))
        label = np.tile(np.arange(W, dtype=np.uint8) + 6, (H, 1))  # labelIds 6..17
        _png(root / "gtFine" / "val" / city / f"{city}_{seq}_{gt:06d}_gtFine_labelIds.png", label)
        _png(root / "leftImg8bit" / "val" / city / f"{city}_{seq}_{gt:06d}_leftImg8bit.png", _frame(gt))


def test_cityscapes_sequence_clips(tmp_path):
    _cityscapes(tmp_path)
    ds = CityscapesSequence(tmp_path, "val", max_distance=3)
    assert len(ds) == 2 and ds.names == ["aachen_000001_000019", "bonn_000042_000049"]
    clip = ds.clip(1, 3)
    assert clip.distance == 3 and len(clip.frames) == 4
    assert [int(f[0, 0, 0]) for f in clip.frames] == [46, 47, 48, 49]  # keyframe first, annotated frame last
    assert clip.paths[-1].name == "bonn_000042_000049_leftImg8bit.png"
    expected = CITYSCAPES_LABEL_TO_TRAIN[np.arange(W) + 6]
    np.testing.assert_array_equal(clip.label[0], expected)
    assert clip.label.dtype == np.uint8 and clip.label[0, 0] == 255 and clip.label[0, 1] == 0  # 6 ignored, 7 road
    assert [c.distance for c in ds.clips(0)] == [0, 0]
    frames, paths = ds.snippet(0)
    assert len(frames) == 30 and int(frames[0][0, 0, 0]) == 0 and int(frames[-1][0, 0, 0]) == 29
    with pytest.raises(DatasetError):
        ds.clip(0, 4)


def test_cityscapes_sequence_reports_missing_frames(tmp_path):
    _cityscapes(tmp_path, frames=range(17, 30))  # only 2 frames before the annotated one
    CityscapesSequence(tmp_path, max_distance=2)
    with pytest.raises(DatasetError, match="aachen_000001_000016_leftImg8bit.png") as err:
        CityscapesSequence(tmp_path, max_distance=3)
    assert "2 of 8 expected path(s) missing" in str(err.value) and "leftImg8bit_sequence" in str(err.value)
    with pytest.raises(DatasetError, match="expected layout"):
        CityscapesSequence(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="snippet|missing"):
        CityscapesSequence(tmp_path, max_distance=2).snippet(0)


def test_cityscapes_images(tmp_path):
    _cityscapes(tmp_path, frames=[19])
    ds = CityscapesImages(tmp_path)
    samples = list(ds)
    assert [s.name for s in samples] == ["aachen_000001_000019", "bonn_000042_000049"]
    assert samples[0].image.shape == (H, W, 3) and samples[0].label[0, 1] == 0
    assert CityscapesImages(tmp_path, labels=False)[0].label is None
    (tmp_path / "gtFine" / "val" / "bonn" / "bonn_000042_000049_gtFine_labelIds.png").unlink()
    with pytest.raises(DatasetError, match="bonn_000042_000049_gtFine_labelIds.png"):
        CityscapesImages(tmp_path)


def _camvid(root, names=("0001TP_006690", "0006R0_f00930"), gop=4):
    base = root / f"3M-GOP{gop}"
    raws = {"0001TP_006690": ("0001TP", 31), "0006R0_f00930": ("0006R0", 932)}
    for d in range(gop):
        dist = base / f"decoded_GOP{gop}_dist_{d}"
        for name in names:
            seq, raw = raws[name]
            _png(dist / "test" / f"{name}.png", _frame(10 * d))
            label = np.full((H, W), 11, np.uint8)
            label[0, 0] = 255
            _png(dist / "test_labels_with_ignored" / f"{name}.png", label)
            if d:
                mv = np.zeros((H, W, 2), np.int16)
                mv[..., 0] = -4 * d  # d pixels left, in quarter-pel
                mv[..., 1] = 2  # half a pixel down
                mv_path = base / f"MVmap_GOP{gop}_dist_{d}" / seq / f"{name}.bin"
                mv_path.parent.mkdir(parents=True, exist_ok=True)
                mv.tofile(mv_path)
                _png(base / "frames" / seq / f"{seq}_{raw - d:06d}.png", _frame(200 + d))
    return base


def test_camvid_arseg_layout(tmp_path):
    _camvid(tmp_path)
    ds = CamVidARSeg(tmp_path, gop=4)
    assert len(ds) == 2 and ds.names == ["0001TP_006690", "0006R0_f00930"]
    s = ds.sample(1, 3)
    assert s.name == "0006R0_f00930" and s.distance == 3
    assert int(s.frame[0, 0, 0]) == 30 and int(s.keyframe[0, 0, 0]) == 203  # I-frame raw 932 - 3 = 929
    assert s.label[0, 0] == 255 and s.label[1, 1] == 11  # void is a class
    assert s.motion.dtype == np.float32 and s.motion[0, 0].tolist() == [-3.0, 0.5]
    s0 = ds.sample(0, 0)
    assert s0.motion is None and s0.keyframe is s0.frame
    assert [x.distance for x in ds.samples(2)] == [2, 2]


def test_camvid_arseg_reports_missing(tmp_path):
    base = _camvid(tmp_path)
    (base / "MVmap_GOP4_dist_2" / "0001TP" / "0001TP_006690.bin").unlink()
    (base / "frames" / "0006R0" / "0006R0_000929.png").unlink()
    with pytest.raises(DatasetError) as err:
        CamVidARSeg(tmp_path, gop=4)
    msg = str(err.value)
    assert "0001TP_006690.bin" in msg and "0006R0_000929.png" in msg and "MVmap_GOP<g>_dist_<d>" in msg
    CamVidARSeg(tmp_path, gop=4, distances=[0, 1])  # the missing files are not needed
    with pytest.raises(DatasetError, match="expected layout"):
        CamVidARSeg(tmp_path, bitrate="5M", gop=4)
    with pytest.raises(DatasetError):
        CamVidARSeg(tmp_path, gop=4, distances=[4])


def test_read_mv_bin_checks_size(tmp_path):
    path = tmp_path / "x.bin"
    np.arange(2 * 3 * 2, dtype=np.int16).tofile(path)
    mv = read_mv_bin(path, (2, 3))
    assert mv.shape == (2, 3, 2) and mv[0, 1].tolist() == [0.5, 0.75]
    with pytest.raises(DatasetError, match="needs"):
        read_mv_bin(path, (4, 3))
    with pytest.raises(DatasetError):
        read_mv_bin(tmp_path / "missing.bin", (2, 3))


def _fake_synthetic(root, n=3, gop=2):
    gt = root / "clip_gt"
    (root / "clip.mp4").parent.mkdir(parents=True, exist_ok=True)
    (root / "clip.mp4").write_bytes(b"not decoded by the reader")
    meta = {"format": "vidseg-synthetic-gt", "version": 1, "video": "clip.mp4", "num_frames": n, "gop": gop,
            "classes": ["a", "b"], "ignore_index": 255}  # fmt: skip
    gt.mkdir(parents=True)
    (gt / "meta.json").write_text(json.dumps(meta))
    for t in range(n):
        _png(gt / "labels" / f"{t:06d}.png", np.full((H, W), t % 2, np.uint8))
        (gt / "flow").mkdir(exist_ok=True)
        flow = np.full((H, W, 2), t, np.float32)
        np.savez(gt / "flow" / f"{t:06d}.npz", flow_prev=flow, occ_prev=np.zeros((H, W), bool), flow_key=flow,
                 occ_key=np.zeros((H, W), bool), key_index=np.int64(t // gop * gop))  # fmt: skip
    return gt


def test_synthetic_clip_reads_the_written_layout(tmp_path):
    gt = _fake_synthetic(tmp_path)
    for clip in (SyntheticClip(tmp_path / "clip.mp4"), SyntheticClip(gt)):
        assert len(clip) == 3 and clip.video == tmp_path / "clip.mp4" and clip.classes == ("a", "b")
        assert clip.label(1).tolist() == np.ones((H, W)).tolist()
        assert [clip.key_distance(t) for t in range(3)] == [0, 1, 0]
        flow, occ = clip.pair_flow(1)  # pair (1, 2): frame 2's flow into frame 1
        assert flow[0, 0].tolist() == [2.0, 2.0] and occ.dtype == bool
    with pytest.raises(DatasetError):
        SyntheticClip(gt).pair_flow(2)
    (gt / "flow" / "000001.npz").unlink()
    with pytest.raises(DatasetError, match="000001.npz"):
        SyntheticClip(gt)
    with pytest.raises(DatasetError, match="meta.json"):
        SyntheticClip(tmp_path / "other.mp4")
    meta = json.loads((gt / "meta.json").read_text())
    del meta["gop"]
    (gt / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="gop"):
        SyntheticClip(gt)


def test_synthetic_clip_ground_truth_flow_is_backward(tmp_path):
    from vidseg.synthetic import SceneConfig, write_clip

    write_clip(tmp_path / "clip.mp4", SceneConfig(height=96, width=160, speed=12), 4, gop=3)
    clip = SyntheticClip(tmp_path / "clip.mp4")
    labels = [clip.label(t) for t in range(len(clip))]
    scores = {}
    for direction in ("backward", "forward"):
        tc = TemporalConsistency(19, direction=direction, occlusion_masked=True, label_warp="nearest")
        for t in range(len(clip) - 1):
            flow, occ = clip.pair_flow(t)
            tc.update(labels[t], labels[t + 1], flow=flow, occlusion=occ)
        scores[direction] = tc.cm.miou("skip")
    # Exact flow on exact labels: consistent up to half-pixel sampling at boundaries, in the right direction only.
    assert scores["backward"] > 0.95 > 0.7 > scores["forward"]

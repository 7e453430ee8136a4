"""Confusion matrix, mIoU definitions, mIoU per keyframe distance, temporal consistency."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from vidseg.errors import InputError, ShapeError
from vidseg.eval.metrics import ConfusionMatrix, KeyDistanceMIoU, mean_iou
from vidseg.eval.temporal import TemporalConsistency, resample2d


def _brute_iou(preds, labels, k, ignore=255):
    """Per-class IoU by explicit pixel sets: predictions outside 0..k-1 are misses."""
    tp = np.zeros(k)
    fp = np.zeros(k)
    fn = np.zeros(k)
    for pred, label in zip(preds, labels, strict=True):
        valid = label != ignore
        p, g = pred[valid].astype(int), label[valid].astype(int)
        for c in range(k):
            tp[c] += np.sum((p == c) & (g == c))
            fp[c] += np.sum((p == c) & (g != c))
            fn[c] += np.sum((p != c) & (g == c))
    union = tp + fp + fn
    with np.errstate(invalid="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def _random_pairs(rng, n=4, k=5, shape=(13, 17)):
    pairs = []
    for _ in range(n):
        label = rng.integers(0, k, size=shape).astype(np.uint8)
        label[rng.random(shape) < 0.1] = 255
        pred = np.where(rng.random(shape) < 0.5, label, rng.integers(0, k, size=shape)).astype(np.uint8)
        pred[rng.random(shape) < 0.05] = 255  # "no class" predictions: misses
        pairs.append((pred, label))
    return pairs


def test_confusion_matrix_matches_brute_force_torch_and_numpy():
    rng = np.random.default_rng(1)
    pairs = _random_pairs(rng)
    preds, labels = zip(*pairs, strict=True)
    cm_np, cm_t = ConfusionMatrix(5), ConfusionMatrix(5)
    for pred, label in pairs:
        cm_np.update(pred, label)
        cm_t.update(torch.from_numpy(pred), torch.from_numpy(label).long())
    expected = _brute_iou(preds, labels, 5)
    np.testing.assert_allclose(cm_np.iou(), expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(cm_np.matrix, cm_t.matrix)
    assert cm_np.matrix.dtype == np.int64 and cm_np.matrix.shape == (5, 5)
    valid = sum(int((label != 255).sum()) for label in labels)
    assert cm_np.pixels == valid
    assert cm_np.ignored_pixels == sum(int((label == 255).sum()) for label in labels)
    assert cm_np.miou() == pytest.approx(float(np.mean(expected)))
    correct = sum(int(((p == g) & (g != 255)).sum()) for p, g in pairs)
    assert cm_np.pixel_accuracy() == pytest.approx(correct / valid)


def test_merge_equals_single_pass_and_to_dict_is_json():
    rng = np.random.default_rng(2)
    pairs = _random_pairs(rng, n=6)
    whole, a, b = ConfusionMatrix(5), ConfusionMatrix(5), ConfusionMatrix(5)
    for i, (pred, label) in enumerate(pairs):
        whole.update(pred, label)
        (a if i % 2 else b).update(pred, label)
    a.merge(b)
    np.testing.assert_array_equal(a.matrix, whole.matrix)
    d = whole.to_dict(class_names=list("abcde"))
    assert json.loads(json.dumps(d))["miou"] == pytest.approx(whole.miou())
    assert list(d["iou"]) == list("abcde") and d["miou_definition"] == "skip"
    with pytest.raises(InputError):
        a.merge(ConfusionMatrix(4))


def test_miou_definitions_on_an_absent_class():
    label = np.array([[0, 0, 1, 1]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 1]], dtype=np.uint8)
    cm = ConfusionMatrix(3).update(pred, label)  # class 2: no GT, never predicted
    iou = cm.iou()
    assert iou[0] == pytest.approx(1 / 2) and iou[1] == pytest.approx(2 / 3) and math.isnan(iou[2])
    assert cm.miou() == pytest.approx((1 / 2 + 2 / 3) / 2)  # official Cityscapes: skip
    assert cm.miou("zero") == pytest.approx((1 / 2 + 2 / 3) / 3)  # GSVNet / ETC
    assert math.isnan(cm.miou("nan"))  # AR-Seg
    with pytest.raises(InputError):
        mean_iou(iou, "bogus")
    assert math.isnan(ConfusionMatrix(3).miou())  # nothing seen


def test_bad_inputs_are_reported():
    cm = ConfusionMatrix(3)
    with pytest.raises(ShapeError):
        cm.update(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))
    with pytest.raises(ShapeError):
        cm.update(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.uint8))
    cm.update(np.zeros((2, 2), np.uint8), np.full((2, 2), 7, np.uint8))  # label 7 is neither class nor ignore
    with pytest.raises(InputError, match="train ids"):
        cm.miou()


def test_key_distance_miou_per_distance_mean_avg_min():
    rng = np.random.default_rng(3)
    kd = KeyDistanceMIoU(5, max_distance=2)
    by_d = {d: _random_pairs(rng, n=2) for d in range(3)}
    for d, pairs in by_d.items():
        for pred, label in pairs:
            kd.update(pred, label, d)
    per = kd.per_distance()
    for d, pairs in by_d.items():
        preds, labels = zip(*pairs, strict=True)
        assert per[d] == pytest.approx(float(np.nanmean(_brute_iou(preds, labels, 5))))
    assert kd.mean() == pytest.approx(np.mean(list(per.values())))
    assert kd.min() == pytest.approx(min(per.values()))
    every = [p for pairs in by_d.values() for p in pairs]
    preds, labels = zip(*every, strict=True)
    assert kd.avg() == pytest.approx(float(np.nanmean(_brute_iou(preds, labels, 5))))  # pooled, not a mean
    assert kd.avg() != pytest.approx(kd.mean(), abs=1e-9)
    out = json.loads(json.dumps(kd.to_dict()))
    assert set(out["per_distance"]) == {"0", "1", "2"} and out["frames"] == {"0": 2, "1": 2, "2": 2}
    with pytest.raises(InputError):
        kd.update(*by_d[0][0], distance=3)


def test_key_distance_leaves_out_unseen_distances():
    kd = KeyDistanceMIoU(2, max_distance=3)
    kd.update(np.array([[0, 1]]), np.array([[0, 1]]), 0)
    kd.update(np.array([[0, 0]]), np.array([[0, 1]]), 2)
    assert kd.distances() == [0, 2] and kd.frames() == [1, 0, 1, 0]
    assert kd.per_distance() == {0: 1.0, 2: pytest.approx(0.5 / 2)}  # class 0: 1/2, class 1: 0
    assert kd.min() == pytest.approx(0.25) and kd.mean() == pytest.approx(0.625)


# -- temporal consistency ------------------------------------------------------------------------------------


def _resample2d_loop(labels, flow):
    """flownet2-pytorch Resample2d (kernel_size 1) written as the CUDA kernel's scalar loop, then uint8."""
    h, w = labels.shape
    out = np.zeros((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            xf = np.float32(x) + np.float32(flow[y, x, 0])
            yf = np.float32(y) + np.float32(flow[y, x, 1])
            a, b = float(xf - np.floor(xf)), float(yf - np.floor(yf))
            xl = min(max(int(np.floor(xf)), 0), w - 1)
            xr = min(max(int(np.floor(xf)) + 1, 0), w - 1)
            yt = min(max(int(np.floor(yf)), 0), h - 1)
            yb = min(max(int(np.floor(yf)) + 1, 0), h - 1)
            v = np.float32(0)
            v += np.float32((1 - a) * (1 - b) * labels[yt, xl])
            v += np.float32(a * (1 - b) * labels[yt, xr])
            v += np.float32((1 - a) * b * labels[yb, xl])
            v += np.float32(a * b * labels[yb, xr])
            out[y, x] = v
    return out.astype(np.uint8)


def test_resample2d_reproduces_flownet2_kernel_and_truncation():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 19, size=(9, 11)).astype(np.uint8)
    flow = (rng.normal(size=(9, 11, 2)) * 4).astype(np.float32)  # fractional, some points far outside
    ours = resample2d(torch.from_numpy(labels), torch.from_numpy(flow)).numpy()
    np.testing.assert_array_equal(ours, _resample2d_loop(labels, flow))
    # ETC warps ids bilinearly: halfway between 2 and 13 is 7.5, truncated to 7.
    two_13 = torch.tensor([[2, 13]], dtype=torch.uint8)
    half = torch.tensor([[[0.5, 0.0], [0.0, 0.0]]])
    assert resample2d(two_13, half).tolist() == [[7, 13]]
    assert resample2d(two_13, half, "nearest").tolist() == [[13, 13]]


def _etc_tc(pairs_p_t, pairs_p_t1, flows, k):
    """ETC's tool/eval_tc.py loop: intersectionAndUnion (numpy histograms) summed, mean of I / (U + 1e-10)."""
    inter, union = np.zeros(k), np.zeros(k)
    for p_t, p_t1, f in zip(pairs_p_t, pairs_p_t1, flows, strict=True):
        target = _resample2d_loop(p_t1, f).reshape(-1)
        output = p_t.reshape(-1).copy()
        output[target == 255] = 255
        i = output[output == target]
        a_i, _ = np.histogram(i, bins=np.arange(k + 1))
        a_o, _ = np.histogram(output, bins=np.arange(k + 1))
        a_t, _ = np.histogram(target, bins=np.arange(k + 1))
        inter += a_i
        union += a_o + a_t - a_i
    return float(np.mean(inter / (union + 1e-10)))


def test_temporal_consistency_matches_etc_procedure():
    rng = np.random.default_rng(5)
    k = 6
    preds = [rng.integers(0, k - 1, size=(10, 12)).astype(np.uint8) for _ in range(4)]  # class 5 never occurs
    flows = [(rng.normal(size=(10, 12, 2)) * 2).astype(np.float32) for _ in range(3)]
    tc = TemporalConsistency(k).update_clip(preds, flows=flows)
    assert tc.pairs == 3 and tc.name == "tc"
    assert tc.value() == pytest.approx(_etc_tc(preds[:-1], preds[1:], flows, k), abs=1e-9)
    assert json.loads(json.dumps(tc.to_dict()))["value"] == pytest.approx(tc.value())


def _moving_square(t, size=(24, 32), step=(2, 1), k_obj=1):
    lab = np.zeros(size, np.uint8)
    x0, y0 = 4 + step[0] * t, 5 + step[1] * t
    lab[y0 : y0 + 8, x0 : x0 + 8] = k_obj
    return lab


def test_temporal_consistency_with_exact_flow_and_occlusion():
    preds = [_moving_square(t) for t in range(4)]
    fwd = np.broadcast_to(np.array([2.0, 1.0], np.float32), (24, 32, 2))
    exact = TemporalConsistency(2).update_clip(preds, flows=[fwd] * 3)
    assert exact.value() == 1.0
    zero = TemporalConsistency(2).update_clip(preds, flows=[np.zeros((2, 24, 32), np.float32)] * 3)
    assert zero.value() < 1.0

    # Backward flow (t+1 -> t on t+1's grid): the mirrored pair, ETC on the reversed clip.
    bwd = TemporalConsistency(2, direction="backward").update_clip(preds, flows=[-fwd] * 3)
    assert bwd.name == "tc_bwd" and bwd.value() == 1.0
    rev = TemporalConsistency(2).update_clip(preds[::-1], flows=[-fwd] * 3)
    np.testing.assert_array_equal(bwd.cm.matrix, rev.cm.matrix)

    # Zero flow is wrong where the square moved; masking exactly those pixels as occluded gives 1 again.
    occ = [preds[t] != preds[t + 1] for t in range(3)]
    noc = TemporalConsistency(2, occlusion_masked=True)
    noc.update_clip(preds, flows=[np.zeros((24, 32, 2), np.float32)] * 3, occlusions=occ)
    assert noc.name == "tc_noc" and noc.value() == 1.0
    with pytest.raises(InputError, match="occlusion"):
        TemporalConsistency(2, occlusion_masked=True).update(preds[0], preds[1], flow=fwd)


def test_temporal_consistency_flow_fn_and_errors():
    preds = [_moving_square(t) for t in range(3)]
    images = [np.repeat(p[..., None] * 255, 3, axis=2) for p in preds]
    calls = []

    def flow_fn(a, b):
        calls.append((a.shape, b.shape))
        return torch.tensor([2.0, 1.0]).view(2, 1, 1).expand(2, 24, 32)

    tc = TemporalConsistency(2, flow_fn=flow_fn, flow_source="test").update_clip(preds, images=images)
    assert tc.value() == 1.0 and len(calls) == 2 and tc.to_dict()["flow_source"] == "test"
    with pytest.raises(InputError):
        TemporalConsistency(2).update(preds[0], preds[1])
    with pytest.raises(ShapeError):
        TemporalConsistency(2).update(preds[0], preds[1], flow=np.zeros((3, 24, 32), np.float32))
    with pytest.raises(InputError):
        TemporalConsistency(2).update_clip(preds, flows=[np.zeros((24, 32, 2))])


@pytest.mark.cuda
def test_cuda_accumulation_matches_cpu():
    rng = np.random.default_rng(6)
    cpu, gpu = ConfusionMatrix(5), ConfusionMatrix(5)
    for pred, label in _random_pairs(rng):
        cpu.update(pred, label)
        gpu.update(torch.from_numpy(pred).cuda(), torch.from_numpy(label).cuda())
    assert gpu.device.type == "cuda"
    np.testing.assert_array_equal(cpu.matrix, gpu.matrix)
    preds = [_moving_square(t) for t in range(3)]
    flow = torch.rand(24, 32, 2, device="cuda") * 3
    tc_gpu = TemporalConsistency(2).update_clip([torch.from_numpy(p).cuda() for p in preds], flows=[flow] * 2)
    tc_cpu = TemporalConsistency(2).update_clip(preds, flows=[flow.cpu()] * 2)
    np.testing.assert_array_equal(tc_gpu.cm.matrix, tc_cpu.cm.matrix)


def test_format_table_rows_and_json():
    from vidseg.eval.tables import format_table

    kd = KeyDistanceMIoU(2, max_distance=1)
    kd.update(np.array([[0, 1]]), np.array([[0, 1]]), 0)
    kd.update(np.array([[0, 0]]), np.array([[0, 1]]), 1)
    preds = [_moving_square(t) for t in range(3)]
    fwd = np.broadcast_to(np.array([2.0, 1.0], np.float32), (24, 32, 2))
    tcs = [
        TemporalConsistency(2, flow_source="gt").update_clip(preds, flows=[fwd] * 2),
        TemporalConsistency(2, occlusion_masked=True, flow_source="gt").update_clip(
            preds, flows=[fwd] * 2, occlusions=[np.zeros((24, 32), bool)] * 2
        ),
    ]
    table = format_table(key_distance=kd, tc=tcs, class_names=["bg", "fg"], per_class=True)
    rows = {r[0]: r for r in table.rows}
    assert table.columns == ("metric", "value (%)", "notes") and all(len(r) == 3 for r in table.rows)
    assert rows["mIoU d=0"][1] == "100.00" and rows["mIoU d=1"][1] == "25.00"
    assert rows["mIoU mean over d"][1] == "62.50" and rows["mIoU min"][1] == "25.00"
    assert rows["mIoU avg"][1] == f"{100 * (2 / 3 + 1 / 2) / 2:.2f}"  # pooled: bg 2/3, fg 1/2
    assert rows["  IoU fg"][1] == "50.00"
    assert rows["TC"][1] == "100.00" and "gt" in rows["TC (occlusion-masked)"][2]
    data = json.loads(json.dumps(table.data))
    assert set(data["temporal_consistency"]) == {"tc", "tc_noc"}
    assert data["key_distance"]["min"] == pytest.approx(0.25)
    assert format_table(miou=kd.pooled()).rows[0][0] == "mIoU"


def test_etc_warp_truncates_inside_uniform_regions():
    # Documented ETC quirk: float32 weights that sum to just below 1 turn some interior ids c into c - 1.
    lab = torch.full((64, 64), 13, dtype=torch.uint8)
    flow = torch.rand(64, 64, 2, generator=torch.Generator().manual_seed(0)) * 6 - 3
    out = resample2d(lab, flow)
    assert set(out.unique().tolist()) == {12, 13} and 0.002 < (out == 12).float().mean() < 0.05
    assert (resample2d(lab, flow, "nearest") == 13).all()

"""vidseg.synthetic: determinism, class coverage, exact flow and occlusion, clips and their ground truth."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch

from vidseg.errors import ConfigError, InputError
from vidseg.kernels.reference import warp
from vidseg.synthetic import (
    CLASS_NAMES,
    CODECS,
    SceneConfig,
    StreetScene,
    load_ground_truth,
    write_clip,
)

H, W = 128, 256
CORE_CLASSES = {"road", "sidewalk", "building", "pole", "vegetation", "sky", "person", "car"}


def _ids(names) -> set[int]:
    return {CLASS_NAMES.index(n) for n in names}


@pytest.fixture(scope="module")
def still_light() -> StreetScene:
    """Constant lighting and no moving shadows: brightness constancy holds up to texture sampling and haze."""
    return StreetScene(SceneConfig(height=H, width=W, seed=3, lighting=0.0, shadows=False))


@pytest.fixture(scope="module")
def scene() -> StreetScene:
    return StreetScene(SceneConfig(height=H, width=W, seed=0))


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward bilinear warp with the project's reference op ("exact": pixel centres at integers)."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    m = torch.from_numpy(flow).permute(2, 0, 1)[None]
    return warp(x, m, "exact")[0].permute(1, 2, 0).numpy()


def _interior(flow: np.ndarray, occlusion: np.ndarray, surfaces_t: np.ndarray, surfaces_ref: np.ndarray):
    """Non-occluded pixels whose bilinear footprint in the reference frame lies on their own surface."""
    h, w = occlusion.shape
    up = np.arange(w)[None] + flow[..., 0]
    vp = np.arange(h)[:, None] + flow[..., 1]
    inside = (up >= 0) & (up <= w - 1) & (vp >= 0) & (vp <= h - 1)
    u0 = np.clip(np.floor(up).astype(int), 0, w - 1)
    v0 = np.clip(np.floor(vp).astype(int), 0, h - 1)
    u1, v1 = np.clip(u0 + 1, 0, w - 1), np.clip(v0 + 1, 0, h - 1)
    same = np.ones_like(occlusion)
    for vv, uu in ((v0, u0), (v0, u1), (v1, u0), (v1, u1)):
        same &= surfaces_ref[vv, uu] == surfaces_t
    return ~occlusion & inside & same


# ---------------------------------------------------------------------------------------------------- scene


def test_config_is_validated():
    with pytest.raises(ConfigError, match="height"):
        SceneConfig(height=8)
    with pytest.raises(ConfigError, match="fps"):
        SceneConfig(fps=0)
    with pytest.raises(ConfigError, match="SceneConfig"):
        StreetScene("street")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="frame index"):
        StreetScene(SceneConfig(height=32, width=64)).render(-1)


def test_frame_shapes_and_frame_zero(scene):
    frame = scene.render(0)
    assert frame.index == 0
    assert frame.image.shape == (H, W, 3) and frame.image.dtype == np.uint8
    assert frame.labels.shape == (H, W) and frame.labels.dtype == np.uint8
    assert frame.surfaces.shape == (H, W) and frame.surfaces.dtype == np.int32
    assert set(np.unique(frame.labels).tolist()) <= set(range(19))
    # Frame 0 has no previous frame: zero flow, everything occluded.
    assert frame.flow_prev.shape == (H, W, 2) and frame.flow_prev.dtype == np.float32
    assert not frame.flow_prev.any() and frame.occlusion_prev.all()
    nxt = scene.render(1)
    assert nxt.occlusion_prev.dtype == bool and 0 < nxt.occlusion_prev.mean() < 0.3
    assert np.isfinite(nxt.flow_prev).all() and np.abs(nxt.flow_prev).max() > 1.0


def test_deterministic_by_seed_and_random_access():
    config = SceneConfig(height=H, width=W, seed=5)
    a = StreetScene(config)
    sequential = [a.render(t) for t in range(5)][-1]
    b = StreetScene(config).render(4)  # fresh scene, straight to frame 4
    for field in ("image", "labels", "surfaces", "flow_prev", "occlusion_prev"):
        assert np.array_equal(getattr(sequential, field), getattr(b, field)), field
    other = StreetScene(SceneConfig(height=H, width=W, seed=6)).render(4)
    assert not np.array_equal(other.image, b.image)
    assert (other.labels != b.labels).mean() > 0.05


def test_render_flow_agrees_with_flow_and_identity(scene):
    frame = scene.render(7)
    flow, occlusion = scene.flow(7, 6)
    assert np.array_equal(flow, frame.flow_prev) and np.array_equal(occlusion, frame.occlusion_prev)
    same, none = scene.flow(7, 7)
    assert not same.any() and not none.any()
    forward, occ_fwd = scene.flow(6, 7)  # later reference frames work too
    assert forward.shape == (H, W, 2) and 0 < occ_fwd.mean() < 0.5


def test_expected_classes_appear():
    seen = set()
    for seed in range(4):
        scene = StreetScene(SceneConfig(height=96, width=192, seed=seed))
        for t in range(0, 200, 25):
            labels = scene.render(t).labels
            seen |= set(np.unique(labels).tolist())
            if seed == 0 and t == 0:
                assert _ids(CORE_CLASSES) <= set(np.unique(labels).tolist())
    expected = set(range(19)) - _ids(["train"])  # no trains in this scene
    assert expected <= seen, f"missing classes: {[CLASS_NAMES[i] for i in sorted(expected - seen)]}"


def test_lighting_drifts_over_time():
    calm = StreetScene(SceneConfig(height=64, width=128, seed=1, lighting=0.0, shadows=False, speed=0.0,
                                   pan_amplitude=0.0, sway=0.0, cars=0.0, pedestrians=0.0))
    a, b = calm.render(0).image, calm.render(40).image
    assert np.array_equal(a, b)  # a still camera in a still scene with constant lighting
    lit = StreetScene(SceneConfig(height=64, width=128, seed=1, lighting=1.0, shadows=False, speed=0.0,
                                  pan_amplitude=0.0, sway=0.0, cars=0.0, pedestrians=0.0))
    a, b = lit.render(0).image.astype(float), lit.render(40).image.astype(float)
    assert abs(a.mean() - b.mean()) > 2.0


# ---------------------------------------------------------------------------------------------------- exact flow


@pytest.mark.parametrize("t,t_ref", [(6, 5), (9, 6), (4, 7)])
def test_flow_warps_reference_frame_onto_frame(still_light, t, t_ref):
    """Warping frame t_ref by the exact flow reproduces frame t on visible pixels, up to texture sampling."""
    a, b = still_light.render(t), still_light.render(t_ref)
    flow, occlusion = still_light.flow(t, t_ref)
    mask = _interior(flow, occlusion, a.surfaces, b.surfaces)
    assert mask.mean() > 0.6

    def error(f):
        return np.abs(_warp(b.image, f) - a.image.astype(np.float32)).mean(-1)[mask]

    exact = error(flow)
    assert np.median(exact) < 2.0 and exact.mean() < 4.5 and np.percentile(exact, 90) < 9.5, (
        np.median(exact), exact.mean(), np.percentile(exact, 90))
    # The bound is tight enough to see a flow that is off by one pixel, or 10 % too short.
    assert error(flow + np.float32([1.0, 0.0])).mean() > 1.6 * exact.mean()
    assert error(flow * np.float32(0.9)).mean() > 1.2 * exact.mean()


@pytest.mark.parametrize("t,t_ref", [(6, 5), (12, 4)])
def test_labels_follow_the_flow(scene, t, t_ref):
    a, b = scene.render(t), scene.render(t_ref)
    flow, occlusion = scene.flow(t, t_ref)
    h, w = scene.height, scene.width  # also called by test_roads.py with other scenes
    u = np.clip(np.rint(np.arange(w)[None] + flow[..., 0]).astype(int), 0, w - 1)
    v = np.clip(np.rint(np.arange(h)[:, None] + flow[..., 1]).astype(int), 0, h - 1)
    visible = ~occlusion
    agree = (b.labels[v, u] == a.labels)[visible].mean()
    assert agree >= 0.99, agree
    assert (b.surfaces[v, u] == a.surfaces)[visible].all()  # the occlusion test is exactly this


def test_ground_flow_matches_an_independent_projection(scene):
    """Re-derive the flow of ground pixels from the cameras alone: ray -> ground plane -> reference camera."""
    t, t_ref = 9, 5
    flow, occlusion = scene.flow(t, t_ref)
    surfaces = scene.render(t).surfaces
    cam, ref = scene.camera(t), scene.camera(t_ref)
    f, cx, cy, hc = cam["focal"], cam["cx"], cam["cy"], cam["height"]
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    ground = (surfaces == 1) & ~occlusion
    assert ground.mean() > 0.2
    xn, depth = (u - cx) / f, f * hc / np.maximum(v - cy, 1e-9)
    yaw = cam["yaw"]
    x = cam["x"] + depth * (xn * np.cos(yaw) + np.sin(yaw))
    z = cam["z"] + depth * (-xn * np.sin(yaw) + np.cos(yaw))
    dx, dz, ry = x - ref["x"], z - ref["z"], ref["yaw"]
    xc, zc = dx * np.cos(ry) - dz * np.sin(ry), dx * np.sin(ry) + dz * np.cos(ry)
    expected = np.stack([cx + f * xc / zc - u, cy + f * hc / zc - v], -1)
    err = np.abs(expected - flow)[ground]
    assert err.max() < 0.02, err.max()


def test_flow_composes_across_frames(scene):
    """flow(t, t-2) = flow(t, t-1) followed by flow(t-1, t-2), on pixels visible throughout."""
    t = 10
    f1, o1 = scene.flow(t, t - 1)
    f2, o2 = scene.flow(t - 1, t - 2)
    f12, o12 = scene.flow(t, t - 2)
    s_t, s_1 = scene.render(t).surfaces, scene.render(t - 1).surfaces
    mask = _interior(f1, o1, s_t, s_1) & ~o12
    mask &= _warp(o2[..., None].astype(np.float32), f1)[..., 0] == 0  # t-1's neighbours visible in t-2
    chained = f1 + _warp(f2, f1)
    err = np.abs(chained - f12).max(-1)[mask]
    assert mask.mean() > 0.5
    # Exact up to float32 and the bilinear interpolation of a smooth flow (about 5e-4 px at most here).
    assert np.median(err) < 1e-3 and np.percentile(err, 99) < 1e-2, (np.median(err), np.percentile(err, 99))


def test_occlusion_covers_out_of_frame_and_disocclusion(scene):
    t, t_ref = 12, 4
    flow, occlusion = scene.flow(t, t_ref)
    up = np.arange(W)[None] + flow[..., 0]
    vp = np.arange(H)[:, None] + flow[..., 1]
    outside = (up < -0.5) | (up >= W - 0.5) | (vp < -0.5) | (vp >= H - 0.5)
    assert occlusion[outside].all()
    inside_but_hidden = occlusion & ~outside
    assert inside_but_hidden.any()  # moving objects and parallax disocclude some background


# ---------------------------------------------------------------------------------------------------- clips


def _pict_types(path) -> str:
    with av.open(str(path)) as container:
        return "".join(av.video.frame.PictureType(int(f.pict_type)).name for f in container.decode(video=0))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def test_write_clip_round_trip(tmp_path):
    config = SceneConfig(height=H, width=W, seed=2)
    info = write_clip(tmp_path / "clip.mp4", config, 10, gop=4, bitrate=4_000_000)
    assert info.path.is_file() and info.gt_dir == tmp_path / "clip_gt"
    assert (info.num_frames, info.size, info.gop, info.bframes, info.codec) == (10, (H, W), 4, 0, "h264")
    assert info.fps == pytest.approx(17.0)
    scene = StreetScene(config)
    with av.open(str(info.path)) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == pytest.approx(17.0)
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 10
    types = _pict_types(info.path)
    assert [i for i, c in enumerate(types) if c == "I"] == [0, 4, 8] and "B" not in types
    meta = json.loads((info.gt_dir / "meta.json").read_text())
    assert meta["num_frames"] == 10 and meta["gop"] == 4 and meta["size"] == [H, W]
    assert meta["config"]["seed"] == 2 and meta["classes"] == list(CLASS_NAMES)
    for t in range(10):
        frame = scene.render(t)
        assert _psnr(decoded[t], frame.image) > 26
        gt = load_ground_truth(info.path, t)
        assert gt["key_index"] == t // 4 * 4
        assert gt["labels"].shape == (H, W) and gt["labels"].dtype == np.uint8
        assert np.array_equal(gt["labels"], frame.labels)
        for name in ("flow_prev", "flow_key"):
            assert gt[name].shape == (H, W, 2) and gt[name].dtype == np.float32
        for name in ("occ_prev", "occ_key"):
            assert gt[name].shape == (H, W) and gt[name].dtype == bool
        assert np.array_equal(gt["flow_prev"], frame.flow_prev)
        if t == gt["key_index"]:
            assert not gt["flow_key"].any() and not gt["occ_key"].any()
    flow, occ = scene.flow(7, 4)
    gt = load_ground_truth(info.gt_dir, 7)  # the folder works as well as the video path
    assert np.array_equal(gt["flow_key"], flow) and np.array_equal(gt["occ_key"], occ)


@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize("bframes", [0, 2])
def test_write_clip_honours_gop_and_bframes(tmp_path, codec, bframes):
    try:
        av.codec.Codec(CODECS[codec], "w")
    except Exception:
        pytest.skip(f"this FFmpeg build has no {CODECS[codec]} encoder")
    ext = "avi" if codec == "mpeg4" else "mp4"
    config = SceneConfig(height=64, width=128, seed=4)
    info = write_clip(tmp_path / f"clip.{ext}", config, 16, codec=codec, gop=5, bframes=bframes,
                      ground_truth=False)
    assert info.gt_dir is None and not (tmp_path / "clip_gt").exists()
    types = _pict_types(info.path)
    assert len(types) == 16
    assert [i for i, c in enumerate(types) if c == "I"] == [0, 5, 10, 15], types
    assert ("B" in types) == (bframes > 0), types


def test_write_clip_rejects_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="codec"):
        write_clip(tmp_path / "a.mp4", SceneConfig(height=32, width=64), 2, codec="vp9")
    with pytest.raises(ConfigError, match="even"):
        write_clip(tmp_path / "a.mp4", SceneConfig(height=33, width=64), 2)
    with pytest.raises(ConfigError, match="gop"):
        write_clip(tmp_path / "a.mp4", SceneConfig(height=32, width=64), 2, gop=0)


def test_load_ground_truth_says_what_is_missing(tmp_path):
    with pytest.raises(InputError, match="no synthetic ground truth"):
        load_ground_truth(tmp_path / "nothing.mp4", 0)
    info = write_clip(tmp_path / "small.mkv", SceneConfig(height=32, width=64), 3, gop=2)
    with pytest.raises(InputError, match="frame 5"):
        load_ground_truth(info.path, 5)
    (info.gt_dir / "flow" / "000001.npz").unlink()
    with pytest.raises(InputError, match="000001.npz"):
        load_ground_truth(info.path, 1)
    assert load_ground_truth(info.path, 2)["key_index"] == 2

"""Open roads: suburb and rural settings, terrain textures, hills and clouds at infinity, the camera's sensor
effects (pixels only), and the presets that draw whole clips from a seed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vidseg.errors import ConfigError
from vidseg.synthetic import (
    CLASS_NAMES,
    HELDOUT_SEED0,
    SceneConfig,
    StreetScene,
    load_ground_truth,
    road_clip,
    write_road_set,
)
from vidseg.synthetic.sky import HILLS_ID

H, W = 96, 192
ROAD, SIDEWALK, TERRAIN, VEGETATION = (CLASS_NAMES.index(n) for n in ("road", "sidewalk", "terrain", "vegetation"))
RURAL = SceneConfig(height=H, width=W, seed=4, setting="rural", terrain="dry", hills=0.12, clouds=1.5)


@pytest.fixture(scope="module")
def rural() -> StreetScene:
    return StreetScene(RURAL)


def _ground_x(scene: StreetScene, t: int) -> np.ndarray:
    """World X of every pixel's ray on the ground plane (nan above the horizon)."""
    cam = scene.camera(t)
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    below = v > cam["cy"]
    depth = np.where(below, cam["focal"] * cam["height"] / np.where(below, v - cam["cy"], 1.0), np.nan)
    xn = (u - cam["cx"]) / cam["focal"]
    return cam["x"] + depth * (xn * np.cos(cam["yaw"]) + np.sin(cam["yaw"]))


def test_new_options_are_validated():
    for bad in (dict(setting="desert"), dict(terrain="snow"), dict(hills=0.5), dict(clouds=-1), dict(noise=99),
                dict(motion_blur=2.0), dict(exposure=0.0), dict(white_balance=(1.0, 3.0, 1.0))):
        with pytest.raises(ConfigError):
            SceneConfig(height=H, width=W, **bad)


def test_sky_clouds_and_hills_move_as_directions_at_infinity(rural):
    """Sky and hill pixels move by the camera's rotation alone: re-derive their flow from the yaw of both frames
    (ray -> world direction -> reference camera), whatever the camera's translation."""
    t, t_ref = 9, 3
    frame = rural.render(t)
    flow, occlusion = rural.flow(t, t_ref)
    cam, ref = rural.camera(t), rural.camera(t_ref)
    f, cx, cy = cam["focal"], cam["cx"], cam["cy"]
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    xn, yn = (u - cx) / f, (cy - v) / f
    dx = xn * np.cos(cam["yaw"]) + np.sin(cam["yaw"])  # world direction (x, z), y unchanged by the yaw
    dz = -xn * np.sin(cam["yaw"]) + np.cos(cam["yaw"])
    rx = dx * np.cos(ref["yaw"]) - dz * np.sin(ref["yaw"])
    rz = dx * np.sin(ref["yaw"]) + dz * np.cos(ref["yaw"])
    expected = np.stack([cx + f * rx / rz - u, cy - f * yn / rz - v], -1)
    far = np.isin(frame.surfaces, (0, HILLS_ID)) & ~occlusion
    hills = frame.surfaces == HILLS_ID
    assert far.mean() > 0.2 and hills.mean() > 0.01
    assert np.abs(expected - flow)[far].max() < 0.02
    assert abs(cam["z"] - ref["z"]) > 1.0  # the camera did move forward: the flow ignores it


def test_hills_are_labelled_by_their_cover_and_sit_on_the_horizon(rural):
    frame = rural.render(5)
    hills = frame.surfaces == HILLS_ID
    assert set(np.unique(frame.labels[hills])) == {TERRAIN}  # bare hills over dry terrain
    rows = np.nonzero(hills)[0]
    assert rows.max() <= rural.camera(5)["cy"]  # above the horizon, nowhere on the ground
    forest = StreetScene(dataclasses.replace(RURAL, terrain="grass")).render(5)
    assert set(np.unique(forest.labels[forest.surfaces == HILLS_ID])) == {VEGETATION}
    flat = StreetScene(dataclasses.replace(RURAL, hills=0.0)).render(5)
    assert not (flat.surfaces == HILLS_ID).any()


@pytest.mark.parametrize("t,t_ref", [(6, 5), (12, 4)])
def test_rural_labels_follow_the_flow(rural, t, t_ref):
    from test_synthetic import test_labels_follow_the_flow

    test_labels_follow_the_flow(rural, t, t_ref)  # hills, bushes, woods and fences too


def test_rural_ground_is_road_then_terrain_with_markings_on_the_road(rural):
    t = 7
    frame = rural.render(t)
    ground = frame.surfaces == 1
    x = np.abs(_ground_x(rural, t))
    assert not (frame.labels == SIDEWALK).any()  # open roads have no sidewalks
    assert (frame.labels[ground & (x < 6.9)] == ROAD).all()
    assert (frame.labels[ground & (x > 7.1)] == TERRAIN).all()
    assert (ground & (x > 7.1)).mean() > 0.05
    # The yellow double centre line (|X| 0.07 .. 0.17) is painted on the road and labelled road.
    near = ground & (np.arange(H)[:, None] > 0.8 * H)
    line = near & (np.abs(x - 0.12) < 0.03)
    assert line.sum() > 5
    rgb = frame.image[line].astype(float).mean(0)
    assert (frame.labels[line] == ROAD).all() and rgb[0] > rgb[2] + 40 and rgb[1] > rgb[2] + 20


def test_rural_roadsides_show_vegetation_fences_and_poles():
    seen = set()
    for seed in range(3):
        scene = StreetScene(dataclasses.replace(RURAL, seed=seed))
        for t in (0, 40):
            seen |= set(np.unique(scene.render(t).labels).tolist())
    assert {ROAD, TERRAIN, VEGETATION, CLASS_NAMES.index("pole"), CLASS_NAMES.index("fence"),
            CLASS_NAMES.index("sky")} <= seen


def test_terrain_textures_differ_in_colour():
    def terrain_rgb(terrain: str) -> np.ndarray:
        scene = StreetScene(dataclasses.replace(RURAL, terrain=terrain, hills=0.0))
        frame = scene.render(3)
        return frame.image[(frame.labels == TERRAIN) & (frame.surfaces == 1)].astype(float).mean(0)

    dry, grass = terrain_rgb("dry"), terrain_rgb("grass")
    assert dry[0] > dry[2] + 30 and dry[0] > dry[1]  # straw: red > green > blue
    assert grass[1] > grass[0] and grass[1] > grass[2]


def test_suburb_has_houses_yards_and_sidewalks():
    scene = StreetScene(SceneConfig(height=H, width=W, seed=2, setting="suburb"))
    labels = np.concatenate([scene.render(t).labels.ravel() for t in (0, 30)])
    for name in ("road", "sidewalk", "building", "vegetation", "sky"):
        assert (labels == CLASS_NAMES.index(name)).any(), name


def test_sensor_effects_change_pixels_never_labels_or_flow():
    clean = StreetScene(RURAL)
    camera = StreetScene(dataclasses.replace(RURAL, exposure=1.3, white_balance=(1.05, 1.0, 0.9), noise=6.0,
                                             motion_blur=0.6))
    for t in (0, 6):
        a, b = clean.render(t), camera.render(t)
        for name in ("labels", "flow_prev", "occlusion_prev", "surfaces"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() > 3
    np.testing.assert_array_equal(camera.render(6).image, StreetScene(camera.config).render(6).image)  # seeded


def test_motion_blur_smears_along_the_motion_only():
    still = dict(speed=0.0, pan_amplitude=0.0, sway=0.0, cars=0.0, pedestrians=0.0, lighting=0.0)
    sharp = StreetScene(dataclasses.replace(RURAL, **still)).render(4).image
    blurred = StreetScene(dataclasses.replace(RURAL, motion_blur=1.0, **still)).render(4).image
    np.testing.assert_array_equal(sharp, blurred)  # nothing moves: nothing to blur
    moving = dataclasses.replace(RURAL, speed=15.0)
    a = StreetScene(moving).render(4).image.astype(float)
    b = StreetScene(dataclasses.replace(moving, motion_blur=1.0)).render(4).image.astype(float)
    bottom = slice(int(0.75 * H), H)  # the near road moves fastest, mostly downwards there
    assert np.abs(np.diff(b[bottom], axis=0)).mean() < np.abs(np.diff(a[bottom], axis=0)).mean()


def test_clouds_cover_the_sky_by_degree():
    def sky_rgb(clouds: float) -> np.ndarray:
        frame = StreetScene(dataclasses.replace(RURAL, clouds=clouds, hills=0.0)).render(2)
        return frame.image[frame.surfaces == 0].astype(float)

    clear, overcast = sky_rgb(0.0), sky_rgb(3.0)
    assert clear[:, 2].mean() - clear[:, 0].mean() > 40  # a clear sky is blue
    assert overcast[:, 2].mean() - overcast[:, 0].mean() < 15  # an overcast one grey


def test_road_clips_are_deterministic_and_the_heldout_split_is_harsher():
    assert road_clip(3) == road_clip(3)
    train = [road_clip(s) for s in range(40)]
    held = [road_clip(HELDOUT_SEED0 + s, split="heldout") for s in range(40)]
    assert {c.config.setting for c in train} == {"city", "suburb", "rural"}
    assert max(c.bitrate for c in held) < min(c.bitrate for c in train)
    assert min(c.config.noise for c in held) >= max(c.config.noise for c in train)
    assert min(c.config.motion_blur for c in held) >= max(c.config.motion_blur for c in train)
    assert all(abs(c.config.exposure - 1.0) > 0.14 for c in held)
    with pytest.raises(ConfigError):
        road_clip(0, split="test")


def test_write_road_set_renders_clips_with_ground_truth_and_keeps_them(tmp_path):
    paths = write_road_set(tmp_path, 2, (64, 128), num_frames=3, gop=2)
    assert [p.name for p in paths] == [f"road{HELDOUT_SEED0 + i}_64x128_g2.mp4" for i in range(2)]
    gt = load_ground_truth(paths[1], 2)
    assert gt["labels"].shape == (64, 128) and gt["key_index"] == 2
    assert gt["meta"]["config"]["seed"] == HELDOUT_SEED0 + 1
    stamp = paths[0].stat().st_mtime_ns
    assert write_road_set(tmp_path, 2, (64, 128), num_frames=3, gop=2) == paths
    assert paths[0].stat().st_mtime_ns == stamp  # already there: not rendered again

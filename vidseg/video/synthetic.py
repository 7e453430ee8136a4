"""Procedural street scenes with exact labels, optical flow and occlusion, encoded with PyAV.

A `StreetScene` is a deterministic (by seed) 2.5D driving scene seen by a camera that drives forward along a
straight four-lane road, sways in its lane and pans (yaw) left and right. Everything in it is a planar surface:

- the sky, at infinity (its flow comes from the camera's yaw alone);
- the ground plane Y = 0: road (with lane markings), sidewalks, terrain (front yards);
- vertical faces of axis-aligned boxes: building blocks (facades and end walls, with windows), walls, fences,
  hedges, tree trunks and crowns, street-lamp poles, traffic signs and traffic lights on poles; and moving
  boxes with their own velocities: cars, trucks, buses, motorcycles and bicycles with riders, pedestrians.
  A face's outline is a column-wise interval [bottom(a), top(a)] of heights along the face (car cabins,
  wheels, heads and legs, round signs, tree crowns), so a box reads as a car, a person or a tree.

The camera has no pitch or roll, so the horizontal part of every ray depends only on the image column: the
depth of any vertical face is a function of the column, and its coverage of a column is one interval of rows.
Rendering is a column-wise ray cast into a z-buffer, vectorised with NumPy (no per-pixel Python); textures come
from a mip-mapped RGBA atlas addressed by each surface's own coordinates, so they stick to the surfaces.

Exact ground truth. Every pixel p of frame t lies on a known surface at known surface coordinates; moving that
point with its surface to time t_ref and projecting it with the camera of t_ref gives where p was in frame
t_ref, which is the backward flow: p + flow(p) (pixels, x then y; pixel centres at integer coordinates, the
`exact` convention of `vidseg.kernels.reference.warp`). The point is occluded in t_ref (occlusion True) when
the reprojected position falls outside the image area [-0.5, W-0.5) x [-0.5, H-0.5), lies behind the camera
of t_ref, or the front-most surface at that position in t_ref (read at the nearest pixel centre) is not the
same surface. Surfaces have stable ids across frames (`SyntheticFrame.surfaces`: 0 sky, 1 ground).

Known approximations (the flow itself is exact to float32; tests/video/test_synthetic.py bounds the rest):
- occlusion is decided at the nearest pixel centre of the reprojected point, so it can be wrong on pixels
  within half a pixel of an occlusion boundary;
- textures are sampled bilinearly (in 1/16 texel steps) from one mip level chosen per column (faces) or per
  row (ground), and a haze fades colours with depth, so brightness constancy holds up to sampling, mip-level
  switches and the haze change between frames (a few grey levels; more at sharp texture and object edges);
  lighting drift and moving contact shadows break it on purpose (`SceneConfig.lighting`, `.shadows`);
- objects are rigid boxes (no walking legs, no rotating wheels), all moving parallel to the road;
- content exists up to a distance ahead: buildings to `SceneConfig.view_distance`, vehicles to 80 % of it,
  vegetation, walls and fences 65 %, poles, signs and lights 50 %, people and two-wheelers 40 %; things appear
  there (hazed), and such pixels are occluded in earlier frames, as the surface was not in them;
- no trains (trainId 16) appear.

`write_clip` renders a clip, encodes it with PyAV (H.264 / HEVC / MPEG-4 Part 2) with an exact GOP structure and
writes the ground truth beside it; `load_ground_truth` reads it back.
"""

from __future__ import annotations

import functools
import json
import math
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidseg.errors import ConfigError, InputError

__all__ = [
    "SceneConfig",
    "StreetScene",
    "SyntheticFrame",
    "ClipInfo",
    "write_clip",
    "load_ground_truth",
    "CLASS_NAMES",
    "IGNORE_INDEX",
    "CODECS",
]

CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # Cityscapes trainIds 0..18
IGNORE_INDEX = 255
(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION, TERRAIN, SKY, PERSON,
 RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE) = range(19)

CODECS = {"h264": "libx264", "hevc": "libx265", "mpeg4": "mpeg4"}  # write_clip codec -> PyAV encoder

# World layout (metres). X right, Y up, Z forward along the road; the road is centred on X = 0.
ROAD_HALF = 7.0  # four 3.5 m lanes: two oncoming (X < 0), two in the camera's direction (X > 0)
SIDEWALK_EDGE = 11.0  # sidewalks from |X| = 7 to 11; terrain (front yards) beyond, up to the buildings
EGO_X = 1.75
CELL = 15.0  # static content is generated per 15 m cell and side of the road
CHUNK = 16  # cells (static) or slots (moving groups) generated and cached together
NEAR = 0.05  # near plane (m)
SWAY_PERIOD = 11.0  # s
HAZE_DISTANCE = 160.0  # m: colour keeps exp(-depth / HAZE_DISTANCE) of itself
_SUN = (0.6, -0.8)  # horizontal direction the light comes from, for per-face shading
_WHITE = np.float32(230.0)  # lane marking colours
_YELLOW = (np.float32(225.0), np.float32(185.0), np.float32(60.0))
_PIECE = 96  # wide faces are z-buffered in pieces of this many columns
_SMALL_FACE = 1024  # faces whose bounding box has at most this many pixels are z-buffered together
_BEHIND = 1e7  # flow sentinel (pixels) for points behind the reference camera: out of frame, then set to 0

# Face table columns (one row per box face; float64).
(OX, OZ, EX, EZ, LEN, NX, NZ, VX, VZ, CLS, SID, PROF, HS, TILE, SX, SY, AOFF, YOFF, TR, TG, TB, SHADE) = range(22)
_NCOL = 22


@dataclass(frozen=True)
class SceneConfig:
    """A street scene: image size, seed, frame rate, camera motion, traffic and lighting.

    height, width: frame size in pixels; seed: everything random derives from it; fps: frames per second.
    speed: camera forward speed (m/s); pan_amplitude (degrees) and pan_period (s): the camera's yaw swing;
    sway: lateral sway in the lane (m). focal: focal length as a fraction of the width; horizon: the horizon's
    row as a fraction of the height; camera_height (m).
    cars, pedestrians: traffic density multipliers (0 = none; pedestrians also scales cyclists).
    lighting: amplitude multiplier of the global gain and colour drift over time (0 = constant lighting).
    shadows: moving contact shadows under vehicles and people (they change the ground's brightness).
    view_distance: how far ahead (m) content is generated.
    """

    height: int = 512
    width: int = 1024
    seed: int = 0
    fps: float = 17.0
    speed: float = 8.0
    pan_amplitude: float = 6.0
    pan_period: float = 7.0
    sway: float = 0.3
    focal: float = 0.75
    horizon: float = 0.45
    camera_height: float = 1.5
    cars: float = 1.0
    pedestrians: float = 1.0
    lighting: float = 1.0
    shadows: bool = True
    view_distance: float = 300.0

    def __post_init__(self) -> None:
        checks = [
            (isinstance(self.height, int) and self.height >= 16, "height must be an int >= 16"),
            (isinstance(self.width, int) and self.width >= 16, "width must be an int >= 16"),
            (isinstance(self.seed, int) and self.seed >= 0, "seed must be an int >= 0"),
            (self.fps > 0, "fps must be > 0"),
            (0 <= self.speed <= 40, "speed must be in [0, 40] m/s"),
            (0 <= self.pan_amplitude <= 20, "pan_amplitude must be in [0, 20] degrees"),
            (self.pan_period > 0, "pan_period must be > 0 s"),
            (0 <= self.sway <= 1.0, "sway must be in [0, 1] m"),
            (0.2 <= self.focal <= 3.0, "focal must be in [0.2, 3] (fraction of the width)"),
            (0.1 <= self.horizon <= 0.8, "horizon must be in [0.1, 0.8] (fraction of the height)"),
            (0.5 <= self.camera_height <= 3.0, "camera_height must be in [0.5, 3] m"),
            (self.cars >= 0 and self.pedestrians >= 0, "cars and pedestrians must be >= 0"),
            (self.lighting >= 0, "lighting must be >= 0"),
            (30 <= self.view_distance <= 2000, "view_distance must be in [30, 2000] m"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"SceneConfig: {message} (got {self})")


@dataclass
class SyntheticFrame:
    """One rendered frame and its exact ground truth.

    index: frame number t. image: uint8 [H, W, 3] RGB. labels: uint8 [H, W] Cityscapes trainIds (255 = ignore;
    the renderer assigns a class to every pixel, so 255 does not occur). flow_prev: float32 [H, W, 2] backward
    flow (x, y) in pixels to frame t-1; occlusion_prev: bool [H, W], True where the pixel is not visible in
    frame t-1. Frame 0 has no previous frame: flow_prev is all zeros and occlusion_prev all True.
    surfaces: int32 [H, W] stable surface ids (0 sky, 1 ground, others one per box face), the same across frames.
    """

    index: int
    image: np.ndarray
    labels: np.ndarray
    flow_prev: np.ndarray
    occlusion_prev: np.ndarray
    surfaces: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class ClipInfo:
    """What `write_clip` wrote: the video, its ground-truth folder (None if not written) and how it was encoded.

    size is (height, width), as NumPy arrays are shaped.
    """

    path: Path
    gt_dir: Path | None
    num_frames: int
    fps: float
    size: tuple[int, int]
    gop: int
    bframes: int
    codec: str
    bitrate: int


# --------------------------------------------------------------------------------------------------------------
# Textures: RGBA tiles (alpha = how much the surface's tint applies; 0 keeps the texel's own colour), y-up (row 0
# at the bottom of a face / at Z = 0 on the ground), power-of-two sizes, mip-mapped, packed into one uint32 atlas.


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma, ) -> np.ndarray:
    """Periodic (tileable) smooth noise, zero mean, unit std; sigma in texels, scalar or (sigma_y, sigma_x)."""
    sy, sx = (sigma, sigma) if np.isscalar(sigma) else sigma
    white = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    filt = np.exp(-2.0 * math.pi**2 * ((sy * fy) ** 2 + (sx * fx) ** 2))
    out = np.fft.irfft2(np.fft.rfft2(white) * filt, s=shape)
    out -= out.mean()
    return out / (out.std() + 1e-12)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Periodic Gaussian blur of [h, w, c] (soft edges, so that textures do not alias)."""
    fy = np.fft.fftfreq(img.shape[0])[:, None]
    fx = np.fft.rfftfreq(img.shape[1])[None, :]
    filt = np.exp(-2.0 * math.pi**2 * sigma**2 * (fy**2 + fx**2))[..., None]
    return np.fft.irfft2(np.fft.rfft2(img, axes=(0, 1)) * filt, s=img.shape[:2], axes=(0, 1))


def _rgba(rgb: np.ndarray, alpha) -> np.ndarray:
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), rgb.shape[:2])
    out = np.concatenate([rgb, alpha[..., None]], axis=-1)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _paint(rgb: np.ndarray, alpha: np.ndarray, mask: np.ndarray, colour, a: float) -> None:
    rgb[mask] = colour
    alpha[mask] = a


def _grid(th: int, tw: int, height: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Normalised horizontal coordinate a in (0, 1) and height y in (0, height), y-up."""
    a = (np.arange(tw)[None, :] + 0.5) / tw
    y = (np.arange(th)[:, None] + 0.5) / th * height
    return np.broadcast_to(a, (th, tw)), np.broadcast_to(y, (th, tw))


def _make_tiles(seed: int) -> dict[str, tuple[np.ndarray, float]]:
    """name -> (RGBA uint8 tile, texel size in metres for world-tiled textures or 0 for decals)."""
    rng = np.random.default_rng([seed, 7])
    tiles: dict[str, tuple[np.ndarray, float]] = {}
    grey = np.ones(3)

    # Ground (rows along Z, columns along X), 256 x 256 texels of 3 cm: 7.68 m tiles.
    n = 256
    v = 0.42 + 0.045 * _noise(rng, (n, n), 0.8) + 0.04 * _noise(rng, (n, n), 5) + 0.05 * _noise(rng, (n, n), 28)
    patches = _noise(rng, (n, n), 20) > 1.2
    v = np.where(patches, v * 0.8, v)
    tiles["asphalt"] = (_rgba(v[..., None] * 255 * np.array([1.0, 1.0, 1.04]), 0), 0.03)
    slab = 16  # 0.48 m paving slabs
    yy, xx = np.mgrid[0:n, 0:n]
    slab_id = (yy // slab) * (n // slab) + (xx // slab)
    slab_v = rng.uniform(0.88, 1.08, (n // slab) ** 2)[slab_id]
    joint = ((yy % slab) < 1.5) | ((xx % slab) < 1.5)
    v = 0.62 * slab_v * (1 + 0.05 * _noise(rng, (n, n), 1.2)) * np.where(joint, 0.72, 1.0)
    rgb = _blur(v[..., None] * 255 * np.array([1.0, 0.97, 0.93]), 0.6)
    tiles["paving"] = (_rgba(rgb, 0), 0.03)
    g1, g2 = _noise(rng, (n, n), 1.0), _noise(rng, (n, n), 9)
    rgb = np.stack([0.25 + 0.05 * g2 + 0.04 * g1, 0.42 + 0.06 * g1 + 0.05 * g2, 0.16 + 0.03 * g1], -1) * 255
    tiles["grass"] = (_rgba(rgb, 0), 0.03)

    # Facades: 256 x 256 texels of 5 cm (12.8 m): 3.2 m floors; window columns of 3.2 / 1.6 / 3.2 / 6.4 m.
    specs = [(64, 26, 30, 18), (32, 16, 34, 14), (64, 44, 34, 14), (128, 100, 40, 12)]
    for k, (col_w, win_w, win_h, sill) in enumerate(specs):
        a, y = np.mgrid[0:n, 0:n][1] + 0.5, np.mgrid[0:n, 0:n][0] + 0.5
        plaster = 0.86 + 0.035 * _noise(rng, (n, n), 1.5) + 0.04 * _noise(rng, (n, n), 20)
        if k == 2:  # stone bands
            plaster = plaster * np.where((y % 16) < 2, 0.85, 1.0)
        rgb = plaster[..., None] * 255 * grey
        alpha = np.full((n, n), 255.0)
        fy, fx = y % 64, a % col_w
        dx = np.abs(fx - col_w / 2)
        frame_m = (dx < win_w / 2 + 2) & (fy >= sill - 2) & (fy < sill + win_h + 2)
        win = (dx < win_w / 2) & (fy >= sill) & (fy < sill + win_h)
        cornice = fy < 2.5
        rgb[cornice] *= 0.8
        _paint(rgb, alpha, frame_m, (222, 220, 212), 120)
        wid = (y // 64).astype(int) * 97 + (a // col_w).astype(int)
        lum = rng.uniform(0.6, 1.5, wid.max() + 1)[wid]
        refl = 1 + 0.25 * _noise(rng, (n, n), 6)
        wrgb = np.stack([40 * lum * refl, 52 * lum * refl, 68 * lum * refl], -1)
        rgb[win] = wrgb[win]
        alpha[win] = 30
        if k == 3:  # mullions
            mull = win & ((fx % 25) < 1.5)
            _paint(rgb, alpha, mull, (90, 92, 95), 60)
        tiles[f"facade{k}"] = (_rgba(_blur(rgb, 0.7), _blur(alpha[..., None], 0.7)[..., 0]), 0.05)

    m = 128
    a, y = np.mgrid[0:m, 0:m][1], np.mgrid[0:m, 0:m][0]
    v = 0.8 + 0.04 * _noise(rng, (m, m), 1.0) + 0.04 * _noise(rng, (m, m), 10)
    v = v * np.where(((a % 32) < 1.2) | ((y % 32) < 1.2), 0.75, 1.0)
    tiles["wall"] = (_rgba(_blur(v[..., None] * 255 * grey, 0.5), 255), 0.04)
    slat = (a % 8) < 6
    v = np.where(slat, 0.85 + 0.05 * _noise(rng, (m, m), (12, 0.7)), 0.25)
    v = v * np.where((y % 64) < 3, 0.8, 1.0)
    tiles["fence"] = (_rgba(_blur(v[..., None] * 255 * grey, 0.5), np.where(slat, 255, 0)), 0.02)

    n1, n2 = _noise(rng, (n, n), 3.0), _noise(rng, (n, n), 1.0)
    v = np.clip(0.62 + 0.22 * n1 + 0.12 * n2, 0.15, 1.2)
    rgb = np.stack([70 * v, 125 * v, 55 * v], -1)
    rgb[n1 < -1.1] = (22, 40, 18)
    tiles["leaves"] = (_rgba(rgb, 255), 0.02)
    s = 64
    v = 0.8 + 0.15 * _noise(rng, (s, s), (8, 0.8))
    tiles["bark"] = (_rgba(v[..., None] * np.array([100, 78, 58]), 180), 0.02)
    v = 0.62 + 0.03 * _noise(rng, (s, s), 2) + 0.03 * _noise(rng, (s, s), (16, 1))
    tiles["metal"] = (_rgba(v[..., None] * 255 * grey, 255), 0.02)

    # Sky clouds: 128 rows of elevation (0 .. 0.64 of the unit cylinder) x 1024 columns of azimuth (0 .. 2 pi),
    # sampled bilinearly (tiled: it wraps around in azimuth).
    c = 1.5 * (_noise(rng, (128, 1024), (5, 28)) + 0.45 * _noise(rng, (128, 1024), (2, 10))) - 0.9
    c = np.clip(c, 0, 1) * np.clip(np.arange(128)[:, None] / 12.0, 0, 1)
    tiles["clouds"] = (_rgba(np.repeat(c[..., None] * 255, 3, -1), 0), 2 * math.pi / 1024)

    # Decals (mapped once onto a face): vehicles, people, signs, lights.
    def vehicle_side(name, th, tw, height, length, wheels, radius, windows, lights=True, clearance=0.25):
        a, y = _grid(th, tw, height)
        rgb = (0.86 + 0.03 * _noise(rng, (th, tw), 1.0))[..., None] * 255 * grey
        alpha = np.full((th, tw), 255.0)
        _paint(rgb, alpha, y < clearance, (45, 45, 48), 0)
        for a0, a1, y0, y1 in windows:
            _paint(rgb, alpha, (a > a0) & (a < a1) & (y > y0) & (y < y1), (38, 48, 60), 20)
        for ac in wheels:
            r = np.hypot((a - ac) * length, y - radius)
            _paint(rgb, alpha, r < radius, (24, 24, 26), 0)
            _paint(rgb, alpha, r < radius * 0.55, (150, 150, 155), 0)
        if lights:
            _paint(rgb, alpha, (a < 0.025) & (y > 0.75 * height / 1.6) & (y < 0.9 * height / 1.6), (200, 30, 30), 0)
            _paint(rgb, alpha, (a > 0.975) & (y > 0.7 * height / 1.6) & (y < 0.85 * height / 1.6),
                   (240, 235, 200), 0)
        rgba = _rgba(_blur(rgb, 0.6), _blur(alpha[..., None], 0.6)[..., 0])
        tiles[name] = (rgba, 0.0)
        tiles[name + "_flip"] = (np.ascontiguousarray(rgba[:, ::-1]), 0.0)

    vehicle_side("car_side", 64, 256, 1.6, 4.4, (0.175, 0.825), 0.32,
                 [(0.31, 0.53, 0.98, 1.40), (0.56, 0.76, 0.98, 1.40)])
    vehicle_side("bus_side", 64, 256, 3.2, 11.0, (0.15, 0.77), 0.5,
                 [(0.05 + 0.1 * i, 0.14 + 0.1 * i, 1.25, 2.65) for i in range(9)], clearance=0.3)
    vehicle_side("truck_side", 64, 256, 3.6, 8.0, (0.12, 0.24, 0.88), 0.5, [(0.82, 0.96, 1.8, 2.5)], clearance=0.4)
    vehicle_side("moto_side", 32, 64, 1.2, 2.1, (0.15, 0.85), 0.3, [], lights=False, clearance=0.0)
    vehicle_side("bike_side", 32, 64, 1.1, 1.75, (0.2, 0.8), 0.34, [], lights=False, clearance=0.0)

    def vehicle_end(name, th, tw, height, window, lamps, lamp_colour, extra=()):
        a, y = _grid(th, tw, height)
        rgb = (0.86 + 0.03 * _noise(rng, (th, tw), 1.0))[..., None] * 255 * grey
        alpha = np.full((th, tw), 255.0)
        _paint(rgb, alpha, y < 0.27 * height / 1.6, (35, 35, 38), 0)
        a0, a1, y0, y1 = window
        _paint(rgb, alpha, (a > a0) & (a < a1) & (y > y0) & (y < y1), (36, 46, 58), 20)
        for l0, l1 in ((0.05, 0.2), (0.8, 0.95)):
            _paint(rgb, alpha, (a > l0) & (a < l1) & (y > lamps[0]) & (y < lamps[1]), lamp_colour, 0)
        for a0, a1, y0, y1, col in extra:
            _paint(rgb, alpha, (a > a0) & (a < a1) & (y > y0) & (y < y1), col, 0)
        tiles[name] = (_rgba(_blur(rgb, 0.6), _blur(alpha[..., None], 0.6)[..., 0]), 0.0)

    vehicle_end("car_rear", 64, 64, 1.6, (0.18, 0.82, 1.0, 1.38), (0.78, 0.92), (190, 25, 25),
                [(0.4, 0.6, 0.45, 0.56, (235, 235, 235)), (0.1, 0.9, 0.28, 0.4, (50, 50, 52))])
    vehicle_end("car_front", 64, 64, 1.6, (0.14, 0.86, 0.98, 1.38), (0.7, 0.82), (240, 238, 220),
                [(0.3, 0.7, 0.52, 0.7, (30, 30, 32))])
    vehicle_end("bus_end", 64, 64, 3.2, (0.08, 0.92, 1.2, 2.8), (0.5, 0.7), (235, 225, 190))
    vehicle_end("truck_end", 64, 64, 3.6, (0.1, 0.9, 1.9, 2.7), (0.6, 0.8), (235, 225, 190))
    vehicle_end("two_wheel_end", 32, 16, 1.2, (0.3, 0.7, 0.9, 1.1), (0.6, 0.8), (230, 80, 40))

    def person(name, th, tw):
        a, y = _grid(th, tw, 1.8)
        rgb = np.zeros((th, tw, 3)) + 230.0
        alpha = np.full((th, tw), 255.0)  # shirt: tinted
        _paint(rgb, alpha, y < 0.88, (62, 66, 88), 60)  # trousers
        _paint(rgb, alpha, y < 0.08, (28, 26, 26), 0)  # shoes
        _paint(rgb, alpha, y > 1.5, (222, 180, 150), 0)  # face, hands
        _paint(rgb, alpha, y > 1.68, (52, 38, 30), 0)  # hair
        rgb *= (1 + 0.05 * _noise(rng, (th, tw), 1.0))[..., None]
        tiles[name] = (_rgba(_blur(rgb, 0.5), _blur(alpha[..., None], 0.5)[..., 0]), 0.0)

    person("person_front", 64, 32)
    person("person_side", 64, 16)

    def sign(name, kind):
        a, y = _grid(64, 64, 1.0)
        r = np.hypot(a - 0.5, y - 0.5)
        rgb = np.zeros((64, 64, 3)) + 200.0
        if kind == "prohibitory":
            rgb[:] = (240, 240, 240)
            rgb[r > 0.38] = (200, 25, 30)
        elif kind == "mandatory":
            rgb[:] = (30, 80, 170)
            rgb[(np.abs(a - 0.5) < 0.06) & (y > 0.22) & (y < 0.65)] = (245, 245, 245)
            rgb[(y > 0.6) & (y < 0.78) & (np.abs(a - 0.5) < 0.78 - y)] = (245, 245, 245)
        elif kind == "warning":
            rgb[:] = (200, 25, 30)
            inner = (y > 0.12) & (np.abs(a - 0.5) < 0.5 * (0.8 - y) / 0.8 * 0.8)
            rgb[inner] = (240, 240, 240)
            rgb[inner & (np.abs(a - 0.5) < 0.035) & (y > 0.3) & (y < 0.55)] = (20, 20, 20)
        else:  # information
            rgb[:] = (30, 80, 170)
            rgb[(np.abs(a - 0.5) > 0.42) | (np.abs(y - 0.5) > 0.42)] = (240, 240, 240)
            rgb[(np.abs(a - 0.5) < 0.25) & (np.abs(y - 0.5) < 0.1)] = (240, 240, 240)
        tiles[name] = (_rgba(_blur(rgb, 0.6), 0), 0.0)

    for kind in ("prohibitory", "mandatory", "warning", "information"):
        sign("sign_" + kind, kind)

    for lit in range(3):  # red, amber, green lit
        a, y = _grid(64, 32, 1.0)
        rgb = np.zeros((64, 32, 3)) + 32.0
        for i, (yc, col) in enumerate(((0.8, (230, 40, 30)), (0.5, (240, 170, 30)), (0.2, (40, 220, 90)))):
            scale = 1.0 if i == lit else 0.25
            rgb[np.hypot((a - 0.5) * 0.35, y - yc) < 0.11] = np.array(col) * scale
        tiles[f"tlight{lit}"] = (_rgba(_blur(rgb, 0.5), 0), 0.0)
    return tiles


class _Atlas:
    """All tiles and their mip levels in one uint32 (packed RGBA) array.

    Each level is stored with one extra row and column (wrapped for tiled textures, repeated for decals), so
    that a bilinear fetch reads texels i, i + 1, i + stride and i + stride + 1 without wrapping. Per tile and
    level: offset, size (th, tw, a power of two) and stride (tw + 1).
    """

    def __init__(self, tiles: dict[str, tuple[np.ndarray, float]]):
        self.names = list(tiles)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.texel = np.array([tiles[name][1] for name in self.names])
        self.decal = self.texel == 0
        self.shape = np.array([tiles[name][0].shape[:2] for name in self.names])  # (th, tw) at level 0
        max_levels = 1 + int(np.log2(self.shape.min(axis=1)).max())
        nt = len(self.names)
        self.levels = np.zeros(nt, np.int64)
        self.off = np.zeros((nt, max_levels), np.int64)
        self.th = np.ones((nt, max_levels), np.int64)
        self.tw = np.ones((nt, max_levels), np.int64)
        chunks, pos = [], 0
        for i, name in enumerate(self.names):
            img = tiles[name][0]
            th, tw = img.shape[:2]
            if th & (th - 1) or tw & (tw - 1):
                raise AssertionError(f"tile {name} is {th}x{tw}; tiles must be powers of two")
            mode = "edge" if self.decal[i] else "wrap"
            level = 0
            while True:
                padded = np.pad(img, ((0, 1), (0, 1), (0, 0)), mode=mode)
                packed = np.ascontiguousarray(padded).view(np.uint32).reshape(-1)
                self.off[i, level], self.th[i, level], self.tw[i, level] = pos, img.shape[0], img.shape[1]
                chunks.append(packed)
                pos += packed.size
                level += 1
                if min(img.shape[:2]) == 1 or level == max_levels:
                    break
                f = img.astype(np.float32)
                img = (f[0::2, 0::2] + f[1::2, 0::2] + f[0::2, 1::2] + f[1::2, 1::2]) * 0.25 + 0.5
                img = img.astype(np.uint8)
            self.levels[i] = level
            self.off[i, level:] = self.off[i, level - 1]
            self.th[i, level:] = self.th[i, level - 1]
            self.tw[i, level:] = self.tw[i, level - 1]
        self.stride = self.tw + 1
        self.data = np.concatenate(chunks)
        if self.data.size >= 1 << 26:
            raise AssertionError("texture atlas too large for 26-bit texel indices")


@functools.lru_cache(maxsize=4)
def _atlas_for_seed(seed: int) -> _Atlas:
    """The texture atlas of a seed (pure function of the seed, read-only, so scenes of one seed share it)."""
    atlas = _Atlas(_make_tiles(seed))
    atlas.data.setflags(write=False)
    return atlas


_LG_SHIFT = 26  # tinfo = texel index of (row 0, column) | log2(rows) << _LG_SHIFT


def _face_texels(v, flat, ay, by, ytop, tinfo, xinfo):
    """Per pixel of a band of faces (rows v [h, 1], slot * W + column `flat`): the top-left texel of the
    bilinear fetch, the row stride and the x and y fractions (1/16), from the per-(slot, column) tables."""
    yf = by.take(flat)
    yf *= v
    yf += ay.take(flat)
    np.maximum(yf, np.float32(0.0), out=yf)
    np.minimum(yf, ytop.take(flat), out=yf)
    iy = yf.astype(np.int32)
    yf -= iy
    yf *= np.float32(16)
    yf += np.float32(0.5)
    ti = tinfo.take(flat)
    xi = xinfo.take(flat)
    stride = xi >> 5
    iy &= (1 << (ti >> _LG_SHIFT)) - 1
    iy *= stride
    ti &= (1 << _LG_SHIFT) - 1
    iy += ti
    return iy, stride, xi & 31, yf.astype(np.int32)


def _bilinear(data: np.ndarray, i00: np.ndarray, stride: np.ndarray, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """Bilinear fetch of packed RGBA texels: i00 the top-left texel's index, stride the level's row stride,
    wx, wy the fractions in 1/16. Blends two channels at a time in 16-bit lanes of uint32 (weights sum to 256).
    Returns packed RGBA uint32."""
    wx = wx.astype(np.uint32)
    w11 = wy.astype(np.uint32)
    w10 = w11 << np.uint32(4)  # 16 wy
    w11 *= wx  # wx wy
    w10 -= w11  # (16 - wx) wy
    w01 = wx << np.uint32(4)
    w01 -= w11  # wx (16 - wy)
    w00 = np.uint32(256) - w01
    w00 -= w10
    w00 -= w11
    m = np.uint32(0x00FF00FF)
    i10 = i00 + stride
    lo = hi = None
    for idx, w in ((i00, w00), (i00 + 1, w01), (i10, w10), (i10 + 1, w11)):
        p = data.take(idx)
        t = p & m
        t *= w
        p >>= np.uint32(8)
        p &= m
        p *= w
        if lo is None:
            lo, hi = t, p
        else:
            lo += t
            hi += p
    lo >>= np.uint32(8)
    lo &= m
    hi &= np.uint32(0xFF00FF00)
    lo |= hi
    return lo


# --------------------------------------------------------------------------------------------------------------
# Scene content: boxes whose vertical faces are the surfaces. A face row holds its origin O (at time 0), unit
# direction e along it, length, outward normal n, velocity, class, stable id, outline profile, texture mapping
# (tile, metres per texel along a and Y, offsets), tint and shading.

_BOX_GEOMETRY = {  # face -> (origin, direction, length, normal) given x0, x1, z0, z1
    0: lambda x0, x1, z0, z1: (x0, z0, 1.0, 0.0, x1 - x0, 0.0, -1.0),  # -Z face
    1: lambda x0, x1, z0, z1: (x1, z0, 0.0, 1.0, z1 - z0, 1.0, 0.0),  # +X face
    2: lambda x0, x1, z0, z1: (x0, z0, 0.0, 1.0, z1 - z0, -1.0, 0.0),  # -X face
    3: lambda x0, x1, z0, z1: (x0, z1, 1.0, 0.0, x1 - x0, 0.0, 1.0),  # +Z face
}


@dataclass(frozen=True)
class _Look:
    """How a face looks: outline profile, tile, metres per texel (sx along the face, sy up), offsets."""

    prof: int
    tile: int
    sx: float
    sy: float
    aoff: float = 0.0
    yoff: float = 0.0


class _Builder:
    """Accumulates face rows for one chunk of content."""

    def __init__(self):
        self.rows: list[tuple] = []
        self.casters: list[tuple] = []  # shadow casters: x0, x1, z0, z1, vz

    def box(self, uid: int, x0, x1, z0, z1, vz, cls, hs, tint, looks: dict[int, _Look], shadow=False):
        for face, look in looks.items():
            ox, oz, ex, ez, length, nx, nz = _BOX_GEOMETRY[face](x0, x1, z0, z1)
            shade = 0.84 + 0.16 * (nx * _SUN[0] + nz * _SUN[1])
            self.rows.append((ox, oz, ex, ez, length, nx, nz, 0.0, vz, cls, 2 + uid * 4 + face, look.prof, hs,
                              look.tile, look.sx, look.sy, look.aoff, look.yoff, *tint, shade))
        if shadow:
            self.casters.append((x0, x1, z0, z1, vz))

    def table(self) -> tuple[np.ndarray, np.ndarray]:
        rows = np.array(self.rows, np.float64).reshape(-1, _NCOL)
        casters = np.array(self.casters, np.float64).reshape(-1, 5)
        return rows, casters


def _kn(*pairs) -> tuple[np.ndarray, np.ndarray]:
    k = np.array(pairs, np.float64).reshape(-1, 2)
    return k[:, 0], k[:, 1]


def _steps(base: float, low: float, spans) -> tuple[np.ndarray, np.ndarray]:
    """A profile bottom at `base` except `low` over the (a0, a1) spans (wheels, legs)."""
    pts = [(0.0, base)]
    for a0, a1 in spans:
        pts += [(a0 - 1e-4, base), (a0, low), (a1, low), (a1 + 1e-4, base)]
    pts.append((1.0, base))
    return _kn(*pts)


class StreetScene:
    """A deterministic procedural street scene; `render(t)` draws frame t, `flow(t, t_ref)` its exact flow.

    Frames are random-access (any t >= 0, any order); rendering consecutive frames reuses the previous frame's
    surface ids for the occlusion test. One instance is not thread-safe (it caches content per chunk of road).
    """

    def __init__(self, config: SceneConfig | None = None):
        if config is None:
            config = SceneConfig()
        if not isinstance(config, SceneConfig):
            raise ConfigError(f"StreetScene needs a SceneConfig, got {type(config).__name__}")
        self.config = config
        c = config
        self.height, self.width = c.height, c.width
        self._f = c.focal * c.width
        self._cx = c.width / 2.0 - 0.5
        self._cy = c.horizon * c.height - 0.5
        self._hc = c.camera_height
        rng = np.random.default_rng([c.seed, 1])
        self._pan_phase, self._sway_phase = rng.uniform(0, 2 * math.pi, 2)
        self._light_phase = rng.uniform(0, 2 * math.pi, 4)
        self._sky_zenith = np.array([68, 118, 196]) * rng.uniform(0.9, 1.1, 3)
        self._sky_horizon = np.array([188, 204, 226]) * rng.uniform(0.95, 1.05, 3)
        self._haze = (self._sky_horizon * 0.97).astype(np.float32)
        self._atlas = _atlas_for_seed(c.seed)
        self._profiles: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._prof = self._standard_profiles()
        self._groups = self._make_groups(rng)
        self._chunks: OrderedDict = OrderedDict()
        self._ids: OrderedDict = OrderedDict()
        self._knot_cache = None
        self._buffers: dict[str, np.ndarray] = {}
        # Detail distance per class (fraction of the view distance): small things appear nearer.
        lod = np.ones(19)
        lod[[PERSON, RIDER, BICYCLE, MOTORCYCLE]] = 0.4
        lod[[POLE, TRAFFIC_SIGN, TRAFFIC_LIGHT]] = 0.5
        lod[[VEGETATION, WALL, FENCE]] = 0.65
        lod[[CAR, TRUCK, BUS]] = 0.8
        self._lod = lod * c.view_distance
        # Per-pixel constants.
        self._u = np.arange(c.width, dtype=np.float64)
        self._xn = (self._u - self._cx) / self._f
        self._u32 = self._u.astype(np.float32)[None, :]
        self._v32 = np.arange(c.height, dtype=np.float32)[:, None]
        self._g0 = min(c.height, max(0, int(math.floor(self._cy)) + 1))  # first ground row (v > cy)
        vg = np.arange(self._g0, c.height, dtype=np.float64)
        self._sg = self._f * self._hc / (vg - self._cy)  # ground depth per row
        self._ground_rows(vg)
        self._band = max(2, 32768 // c.width)  # rows per band of the per-pixel passes (stays in cache)
        self._sky_cosa = (1.0 / (self._f * np.sqrt(1.0 + self._xn**2))).astype(np.float32)[None]

    # ---------------------------------------------------------------- public API

    def render(self, t: int) -> SyntheticFrame:
        """Frame t: image, labels, surfaces, and the flow and occlusion to frame t-1 (see SyntheticFrame)."""
        frame, _ = self._render(t, ())
        return frame

    def flow(self, t: int, t_ref: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact backward flow of frame t to frame t_ref, float32 [H, W, 2] (x, y) pixels, and occlusion bool
        [H, W] (True where the pixel of frame t is not visible in frame t_ref: disoccluded, out of frame or
        behind the camera; the flow there is the reprojection where one exists, else 0)."""
        t, t_ref = self._check_index(t), self._check_index(t_ref)
        if t == t_ref:
            return (np.zeros((self.height, self.width, 2), np.float32),
                    np.zeros((self.height, self.width), bool))
        return self._rasterize(t, (t_ref,), colour=False)["flows"][0]

    def camera(self, t: int) -> dict[str, float]:
        """The camera of frame t: position x, z (m), height (m), yaw (radians), focal and principal point (px)."""
        x, z, yaw = self._camera(self._check_index(t) / self.config.fps)
        return {"x": x, "z": z, "height": self._hc, "yaw": yaw, "focal": self._f, "cx": self._cx, "cy": self._cy}

    # ---------------------------------------------------------------- internals: frames

    def _check_index(self, t) -> int:
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)) or t < 0:
            raise InputError(f"frame index must be an int >= 0, got {t!r}")
        return int(t)

    def _render(self, t: int, extra_refs: tuple[int, ...]) -> tuple[SyntheticFrame, list]:
        """Frame t with flow to t-1, plus flows to extra_refs (each (flow, occlusion)) in the same pass."""
        t = self._check_index(t)
        refs = ([t - 1] if t > 0 else []) + [self._check_index(r) for r in extra_refs if r != t]
        out = self._rasterize(t, tuple(refs), colour=True)
        results = list(out["flows"])
        if t > 0:
            flow_prev, occ_prev = results.pop(0)
        else:
            flow_prev = np.zeros((self.height, self.width, 2), np.float32)
            occ_prev = np.ones((self.height, self.width), bool)
        extra = []
        for r in extra_refs:
            if r == t:
                extra.append((np.zeros((self.height, self.width, 2), np.float32),
                              np.zeros((self.height, self.width), bool)))
            else:
                extra.append(results.pop(0))
        frame = SyntheticFrame(t, out["image"], out["labels"], flow_prev, occ_prev, out["ids"])
        return frame, extra

    def _scratch(self, name: str, shape: tuple[int, int], dtype) -> np.ndarray:
        """A reusable work buffer (contents undefined) of at least `shape`; rows beyond need are kept."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] < shape[0] or buf.shape[1:] != shape[1:] or buf.dtype != dtype:
            buf = np.empty((max(shape[0], 2 * (buf.shape[0] if buf is not None else 0)),) + shape[1:], dtype)
            self._buffers[name] = buf
        return buf[: shape[0]]

    def _surface_ids(self, t: int) -> np.ndarray:
        ids = self._ids.get(t)
        if ids is None:
            ids = self._rasterize(t, (), colour=False)["ids"]
        else:
            self._ids.move_to_end(t)
        return ids

    # ---------------------------------------------------------------- internals: camera, lighting

    def _camera(self, time: float) -> tuple[float, float, float]:
        c = self.config
        x = EGO_X + c.sway * math.sin(2 * math.pi * time / SWAY_PERIOD + self._sway_phase)
        yaw = math.radians(c.pan_amplitude) * math.sin(2 * math.pi * time / c.pan_period + self._pan_phase)
        return x, c.speed * time, yaw

    def _gain(self, time: float) -> np.ndarray:
        amp = self.config.lighting
        p = self._light_phase
        g = 1.0 + 0.14 * amp * math.sin(2 * math.pi * time / 9.0 + p[0])
        tint = [1.0 + 0.05 * amp * math.sin(2 * math.pi * time / 13.0 + p[1 + i]) for i in range(3)]
        return np.array([g * x for x in tint], np.float32)

    # ---------------------------------------------------------------- internals: ground per-row constants

    def _ground_rows(self, vg: np.ndarray) -> None:
        at = self._atlas
        s = self._sg
        tex_ids = [at.index["asphalt"], at.index["paving"], at.index["grass"]]
        texel = at.texel[tex_ids[0]]
        n = int(at.shape[tex_ids[0], 1])
        # Footprint of a pixel on the ground, in texels: along Z (foreshortened) and along X.
        foot = np.maximum(s * s / (self._f * self._hc), s / self._f) / texel
        level = np.clip(np.floor(np.log2(np.maximum(foot, 1e-9)) + 0.5), 0, at.levels[tex_ids[0]] - 1).astype(int)
        size = n >> level
        self._g_period = texel * n  # metres: every level tiles with this period
        self._g_inv = (1.0 / (texel * (1 << level))).astype(np.float32)[:, None]
        self._g_mask = (size - 1).astype(np.int32)[:, None]
        self._g_stride = (size + 1).astype(np.int32)[:, None]
        self._g_off = [at.off[k][level].astype(np.int32)[:, None] for k in tex_ids]
        self._g_fpx = (self._f / s).astype(np.float32)[:, None]  # 1 / lateral footprint (m)
        self._g_fpz = (self._f * self._hc / (s * s)).astype(np.float32)[:, None]  # 1 / footprint along Z (m)
        self._g_s = s.astype(np.float32)[:, None]

    # ---------------------------------------------------------------- internals: content

    def _profile(self, top, bottom) -> int:
        kt, vt = top
        kb, vb = bottom
        self._profiles.append((kt, vt, kb, vb))
        return len(self._profiles) - 1

    def _standard_profiles(self) -> dict[str, int]:
        p = {}
        flat1 = _kn((0, 1), (1, 1))
        zero = _kn((0, 0), (1, 0))
        p["flat"] = self._profile(flat1, zero)
        car_top = _kn((0, 0.75), (0.03, 0.95), (0.12, 1.0), (0.2, 1.03), (0.3, 1.45), (0.75, 1.45), (0.85, 1.02),
                      (0.97, 0.9), (1, 0.72))
        car_bot = _steps(0.25, 0.0, [(0.1, 0.25), (0.75, 0.9)])
        p["car_side"] = self._profile(car_top, car_bot)
        p["car_side_flip"] = self._profile((1 - car_top[0][::-1], car_top[1][::-1]),
                                           (1 - car_bot[0][::-1], car_bot[1][::-1]))
        p["car_end"] = self._profile(_kn((0, 0.9), (0.08, 1.0), (0.2, 1.42), (0.8, 1.42), (0.92, 1.0), (1, 0.9)),
                                     _steps(0.0, 0.25, [(0.14, 0.86)]))
        bus_bot = _steps(0.3, 0.0, [(0.1, 0.2), (0.72, 0.82)])
        p["bus_side"] = self._profile(_kn((0, 3.1), (1, 3.1)), bus_bot)
        p["bus_side_flip"] = self._profile(_kn((0, 3.1), (1, 3.1)), (1 - bus_bot[0][::-1], bus_bot[1][::-1]))
        p["bus_end"] = self._profile(_kn((0, 3.0), (0.05, 3.1), (0.95, 3.1), (1, 3.0)), _kn((0, 0.0), (1, 0.0)))
        tr_top = _kn((0, 3.4), (0.74, 3.4), (0.7401, 1.1), (0.78, 1.1), (0.7801, 2.8), (0.97, 2.8), (1, 2.5))
        tr_bot = _steps(0.4, 0.0, [(0.08, 0.16), (0.2, 0.28), (0.84, 0.92)])
        p["truck_side"] = self._profile(tr_top, tr_bot)
        p["truck_side_flip"] = self._profile((1 - tr_top[0][::-1], tr_top[1][::-1]),
                                             (1 - tr_bot[0][::-1], tr_bot[1][::-1]))
        p["truck_end"] = self._profile(_kn((0, 3.4), (1, 3.4)), _kn((0, 0.0), (1, 0.0)))
        p["person_front"] = self._profile(
            _kn((0, 0.85), (0.12, 1.38), (0.3, 1.48), (0.36, 1.55), (0.42, 1.8), (0.58, 1.8), (0.64, 1.55),
                (0.7, 1.48), (0.88, 1.38), (1, 0.85)),
            _kn((0, 0.95), (0.08, 0.95), (0.0801, 0), (0.46, 0), (0.47, 0.8), (0.53, 0.8), (0.54, 0),
                (0.92, 0), (0.9201, 0.95), (1, 0.95)))
        p["person_side"] = self._profile(
            _kn((0, 1.3), (0.2, 1.45), (0.3, 1.6), (0.35, 1.8), (0.7, 1.8), (0.8, 1.5), (1, 1.3)), zero)
        p["rider_front"] = self._profile(
            _kn((0, 1.3), (0.2, 1.45), (0.35, 1.55), (0.4, 1.75), (0.6, 1.75), (0.65, 1.55), (0.8, 1.45), (1, 1.3)),
            _kn((0, 0.95), (0.2, 0.95), (0.25, 0.35), (0.4, 0.35), (0.45, 0.95), (0.55, 0.95), (0.6, 0.35),
                (0.75, 0.35), (0.8, 0.95), (1, 0.95)))
        p["rider_side"] = self._profile(_kn((0, 1.2), (0.3, 1.5), (0.5, 1.75), (0.8, 1.75), (1, 1.3)),
                                        _kn((0, 0.9), (0.3, 0.9), (0.5, 0.35), (0.7, 0.35), (1, 0.9)))
        p["bike_side"] = self._profile(
            _kn((0, 0.72), (0.3, 0.72), (0.35, 0.95), (0.4, 0.95), (0.7, 0.9), (0.8, 1.05), (0.85, 1.05), (1, 0.72)),
            zero)
        p["moto_side"] = self._profile(_kn((0, 0.7), (0.2, 0.85), (0.5, 1.0), (0.75, 1.1), (0.85, 1.15), (1, 0.8)),
                                       zero)
        for name in ("bike_side", "moto_side"):
            kt, vt, kb, vb = self._profiles[p[name]]
            p[name + "_flip"] = self._profile((1 - kt[::-1], vt[::-1]), (1 - kb[::-1], vb[::-1]))
        p["two_wheel_end"] = self._profile(_kn((0, 0.8), (0.2, 1.05), (0.8, 1.05), (1, 0.8)), zero)
        disc = np.linspace(0, 1, 17)
        half = 0.35 * np.sqrt(np.clip(1 - (2 * disc - 1) ** 2, 0, 1))
        p["sign_disc"] = self._profile((disc, 2.35 + half), (disc, 2.35 - half))
        p["sign_tri"] = self._profile(_kn((0, 2.0), (0.5, 2.65), (1, 2.0)), _kn((0, 2.0), (1, 2.0)))
        p["sign_rect"] = self._profile(_kn((0, 2.7), (1, 2.7)), _kn((0, 2.0), (1, 2.0)))
        p["tlight"] = self._profile(_kn((0, 4.2), (1, 4.2)), _kn((0, 3.2), (1, 3.2)))
        return p

    def _make_groups(self, rng) -> list[tuple]:
        """Moving groups: (kind, x, speed, slot length, probability per slot)."""
        c = self.config
        sp = c.speed
        groups = [
            ("vehicle", -5.25, -rng.uniform(8, 12), 24.0, 0.45 * c.cars),
            ("vehicle", -1.75, -rng.uniform(9, 13), 26.0, 0.45 * c.cars),
            ("ego", EGO_X, sp + rng.uniform(0.3, 1.0), 40.0, 0.5 * c.cars),
            ("vehicle", 5.25, max(sp, 5.0) * rng.uniform(0.4, 0.8), 24.0, 0.45 * c.cars),
            ("cyclist", 6.5, rng.uniform(3.5, 5.0), 45.0, 0.35 * c.pedestrians),
            ("cyclist", -6.5, -rng.uniform(3.5, 5.0), 45.0, 0.35 * c.pedestrians),
        ]
        for side in (-1.0, 1.0):
            groups.append(("ped", side, rng.uniform(1.1, 1.5), 7.0, 0.3 * c.pedestrians))
            groups.append(("ped", side, -rng.uniform(1.0, 1.4), 7.0, 0.3 * c.pedestrians))
            groups.append(("ped", side, 0.0, 9.0, 0.15 * c.pedestrians))
        return groups

    def _decal(self, name: str, length: float, height: float, prof: str | int, yoff: float = 0.0) -> _Look:
        tile = self._atlas.index[name]
        th, tw = self._atlas.shape[tile]
        prof_id = self._prof[prof] if isinstance(prof, str) else prof
        return _Look(prof_id, tile, length / tw, height / th, 0.0, yoff)

    def _tiled(self, name: str, prof: str | int, aoff: float = 0.0) -> _Look:
        tile = self._atlas.index[name]
        texel = float(self._atlas.texel[tile])
        prof_id = self._prof[prof] if isinstance(prof, str) else prof
        return _Look(prof_id, tile, texel, texel, aoff, 0.0)

    def _chunk(self, key: tuple) -> tuple[np.ndarray, np.ndarray]:
        got = self._chunks.get(key)
        if got is not None:
            self._chunks.move_to_end(key)
            return got
        builder = _Builder()
        if key[0] == "static":
            for k in range(key[1] * CHUNK, (key[1] + 1) * CHUNK):
                for side in (-1, 1):
                    self._static_cell(builder, k, side)
        else:
            gid = key[1]
            for j in range(key[2] * CHUNK, (key[2] + 1) * CHUNK):
                self._moving_slot(builder, gid, j)
        got = builder.table()
        self._chunks[key] = got
        while len(self._chunks) > 96:
            self._chunks.popitem(last=False)
        return got

    def _static_cell(self, b: _Builder, k: int, side: int) -> None:
        """Buildings, yards, walls/fences/hedges, trees, lamps, signs and traffic lights of one cell side."""
        rng = np.random.default_rng([self.config.seed, 11, k + 2**21, side + 1])
        base_uid = ((k + 2**21) * 2 + (side > 0)) * 16
        n = 0

        def uid():  # at most 14 boxes per cell side; 16 ids are reserved
            nonlocal n
            n += 1
            return base_uid + n - 1

        z0, z1 = k * CELL, (k + 1) * CELL
        s = float(side)

        def xs(a, b_):  # X range of something from |X| = a to b on this side
            return (min(s * a, s * b_), max(s * a, s * b_))

        # Building block.
        setback = 0.0 if rng.random() < 0.6 else rng.uniform(3.0, 9.0)
        front = SIDEWALK_EDGE + setback
        height = rng.uniform(7.0, 26.0) if rng.random() > 0.15 else rng.uniform(4.0, 7.0)
        palette = [(1.0, 0.95, 0.85), (0.9, 0.9, 0.92), (0.95, 0.75, 0.6), (0.8, 0.55, 0.45), (0.85, 0.9, 1.0),
                   (0.75, 0.75, 0.72), (1.0, 0.9, 0.7), (0.65, 0.62, 0.6)]
        tint = np.array(palette[rng.integers(len(palette))]) * rng.uniform(0.85, 1.1, 3)
        facade = self._tiled(f"facade{rng.integers(4)}", "flat", aoff=rng.uniform(0, 12.8))
        x0, x1 = xs(front, front + 25.0)
        road_face = 2 if side > 0 else 1
        b.box(uid(), x0, x1, z0, z1, 0.0, BUILDING, height, tint, {road_face: facade, 0: facade})
        # Front yard: property-line wall / fence / hedge, and trees.
        if setback > 0:
            kind = rng.choice(["wall", "fence", "hedge", "none"], p=[0.3, 0.3, 0.25, 0.15])
            if kind != "none":
                low, high = {"wall": (0.8, 2.2), "fence": (1.0, 2.0), "hedge": (0.8, 1.6)}[kind]
                h = rng.uniform(low, high)
                cls, tile = {"wall": (WALL, "wall"), "fence": (FENCE, "fence"), "hedge": (VEGETATION, "leaves")}[kind]
                t_ = np.array([0.95, 0.95, 0.95]) if kind != "hedge" else np.array([0.8, 1.0, 0.8])
                t_ = t_ * rng.uniform(0.8, 1.1, 3)
                look = self._tiled(tile, "flat", rng.uniform(0, 5))
                gate = rng.uniform(z0 + 3, z1 - 5)
                wx0, wx1 = xs(SIDEWALK_EDGE + 0.1, SIDEWALK_EDGE + 0.35)
                for za, zb in ((z0 + 0.3, gate), (gate + 1.6, z1 - 0.3)):
                    b.box(uid(), wx0, wx1, za, zb, 0.0, cls, h, t_, {road_face: look, 0: look, 3: look})
            for _ in range(rng.integers(0, 3)):
                self._tree(b, uid(), uid(), rng, s * rng.uniform(SIDEWALK_EDGE + 1.5, front - 1.0),
                           rng.uniform(z0 + 2, z1 - 2))
        # Sidewalk trees, lamp poles, signs, traffic lights.
        if rng.random() < 0.45:
            self._tree(b, uid(), uid(), rng, s * 8.2, rng.uniform(z0 + 1, z1 - 1))
        metal = self._tiled("metal", "flat")
        if rng.random() < 0.4:
            zp = rng.uniform(z0, z1 - 0.2)
            px0, px1 = xs(7.26, 7.44)
            grey = np.array([0.8, 0.82, 0.85]) * rng.uniform(0.6, 1.1)
            b.box(uid(), px0, px1, zp, zp + 0.18, 0.0, POLE, rng.uniform(6.5, 8.5), grey,
                  {0: metal, 1: metal, 2: metal})
        if rng.random() < 0.3:
            zp = rng.uniform(z0 + 0.5, z1 - 0.5)
            kind = rng.choice(["prohibitory", "mandatory", "warning", "information"])
            prof = {"prohibitory": "sign_disc", "mandatory": "sign_disc", "warning": "sign_tri",
                    "information": "sign_rect"}[kind]
            px0, px1 = xs(7.31, 7.39)
            b.box(uid(), px0, px1, zp + 0.06, zp + 0.14, 0.0, POLE, 2.6, (0.8, 0.8, 0.8),
                  {0: metal, 1: metal, 2: metal})
            sx0, sx1 = s * 7.35 - 0.35, s * 7.35 + 0.35
            face = self._decal("sign_" + kind, 0.7, 0.7, prof, yoff=-2.0)
            back = _Look(self._prof[prof], self._atlas.index["metal"], 0.02, 0.02)
            b.box(uid(), sx0, sx1, zp, zp + 0.04, 0.0, TRAFFIC_SIGN, 1.0, (0.7, 0.7, 0.7),
                  {0: face, 3: back, 1: back, 2: back})
        if k % 7 == 3:
            zp = z0 + 1.0
            px0, px1 = xs(7.27, 7.43)
            dark = (0.45, 0.45, 0.45)
            b.box(uid(), px0, px1, zp + 0.1, zp + 0.26, 0.0, POLE, 4.4, dark, {0: metal, 1: metal, 2: metal})
            lit = self._decal(f"tlight{rng.integers(3)}", 0.36, 1.0, "tlight", yoff=-3.2)
            housing = _Look(self._prof["tlight"], self._atlas.index["metal"], 0.02, 0.02)
            b.box(uid(), s * 7.35 - 0.18, s * 7.35 + 0.18, zp, zp + 0.3, 0.0, TRAFFIC_LIGHT, 1.0, (0.3, 0.3, 0.3),
                  {0: lit, 1: housing, 2: housing, 3: housing})

    def _tree(self, b: _Builder, uid_trunk: int, uid_crown: int, rng, x: float, z: float) -> None:
        trunk_h = rng.uniform(2.2, 3.0)
        b.box(uid_trunk, x - 0.15, x + 0.15, z - 0.15, z + 0.15, 0.0, VEGETATION, trunk_h, (1, 1, 1),
              {0: self._tiled("bark", "flat"), 1: self._tiled("bark", "flat"), 2: self._tiled("bark", "flat")})
        r = rng.uniform(1.2, 1.7)
        a = np.linspace(0, 1, 9)
        dome = np.sqrt(np.clip(1 - (2 * a - 1) ** 2, 0, 1))
        bottom = trunk_h - 0.5 + 0.4 * (1 - dome) + 0.1 * rng.standard_normal(9)
        top = trunk_h + rng.uniform(2.0, 4.0) * (0.45 + 0.55 * dome) + 0.15 * rng.standard_normal(9)
        top = np.maximum(top, bottom + 0.3)
        prof = self._profile((a, top), (a, bottom))
        look = self._tiled("leaves", prof, rng.uniform(0, 5))
        tint = np.array([0.9, 1.0, 0.85]) * rng.uniform(0.75, 1.15, 3)
        b.box(uid_crown, x - r, x + r, z - r, z + r, 0.0, VEGETATION, 1.0, tint, {0: look, 1: look, 2: look, 3: look})

    def _moving_slot(self, b: _Builder, gid: int, j: int) -> None:
        kind, x, speed, slot, prob = self._groups[gid]
        rng = np.random.default_rng([self.config.seed, 23, gid, j + 2**18])
        if rng.random() >= prob:
            return
        base_uid = (2**23 + (j + 2**18) * 16 + gid) * 16
        forward = speed >= 0 if kind != "ped" else rng.random() < 0.5 if speed == 0 else speed > 0
        if kind in ("vehicle", "ego"):
            vtype = rng.choice(["car", "truck", "bus", "moto"], p=[0.75, 0.08, 0.07, 0.10])
            length = {"car": rng.uniform(3.9, 4.8), "truck": rng.uniform(7, 9), "bus": rng.uniform(10, 12),
                      "moto": 2.1}[vtype]
            zeta = j * slot + rng.uniform(0, slot - length)
            if kind == "ego" and zeta < 14.0:
                return  # never in front of the camera closer than 14 m (it is faster than the camera)
            xc = x + rng.uniform(-0.2, 0.2)
            if vtype == "moto":
                self._two_wheeler(b, base_uid, rng, xc, zeta, speed, forward, "moto")
                return
            width = {"car": rng.uniform(1.7, 1.9), "truck": 2.3, "bus": 2.5}[vtype]
            cls = {"car": CAR, "truck": TRUCK, "bus": BUS}[vtype]
            height = {"car": 1.6, "bus": 3.2, "truck": 3.6}[vtype]
            hs = rng.uniform(0.95, 1.08) if vtype == "car" else 1.0
            palette = [(1, 1, 1), (0.25, 0.25, 0.27), (0.75, 0.76, 0.78), (0.85, 0.2, 0.18), (0.2, 0.3, 0.7),
                       (0.5, 0.5, 0.52), (0.9, 0.85, 0.6), (0.3, 0.45, 0.35)]
            tint = np.array(palette[rng.integers(len(palette))]) * rng.uniform(0.9, 1.05)
            flip = "" if forward else "_flip"
            side = self._decal(f"{vtype}_side{flip}", length, height * hs,
                               f"{vtype}_side{flip}")
            if vtype == "car":
                rear = self._decal("car_rear", width, height * hs, "car_end")
                front = self._decal("car_front", width, height * hs, "car_end")
            else:
                rear = front = self._decal(f"{vtype}_end", width, height, f"{vtype}_end")
            looks = {0: rear if forward else front, 3: front if forward else rear, 1: side, 2: side}
            b.box(base_uid, xc - width / 2, xc + width / 2, zeta, zeta + length, speed, cls, hs, tint, looks,
                  shadow=True)
        elif kind == "cyclist":
            zeta = j * slot + rng.uniform(0, slot - 2)
            self._two_wheeler(b, base_uid, rng, x + rng.uniform(-0.15, 0.15), zeta, speed, forward, "bike")
        else:  # pedestrians
            zeta = j * slot + rng.uniform(0, slot - 0.5)
            xc = x * rng.uniform(8.9, 10.6)
            hs = rng.uniform(0.9, 1.05)
            tint = rng.uniform(0.25, 1.0, 3)
            fr = self._decal("person_front", 0.5, 1.8 * hs, "person_front")
            sd = self._decal("person_side", 0.3, 1.8 * hs, "person_side")
            b.box(base_uid, xc - 0.25, xc + 0.25, zeta, zeta + 0.3, speed, PERSON, hs, tint,
                  {0: fr, 3: fr, 1: sd, 2: sd}, shadow=True)

    def _two_wheeler(self, b: _Builder, base_uid: int, rng, xc: float, zeta: float, speed: float, forward: bool,
                     kind: str) -> None:
        length, width = (2.1, 0.7) if kind == "moto" else (1.75, 0.5)
        cls = MOTORCYCLE if kind == "moto" else BICYCLE
        tint = rng.uniform(0.2, 1.0, 3)
        flip = "" if forward else "_flip"
        side = self._decal(f"{kind}_side{flip}", length, 1.2 if kind == "moto" else 1.1, f"{kind}_side{flip}")
        end = self._decal("two_wheel_end", width, 1.2, "two_wheel_end")
        b.box(base_uid, xc - width / 2, xc + width / 2, zeta, zeta + length, speed, cls, 1.0, tint,
              {0: end, 3: end, 1: side, 2: side}, shadow=True)
        # The rider sits over the middle of the vehicle, slightly narrower, so the vehicle hides its lower part.
        rz0 = zeta + (0.55 if forward else 0.6) * length - 0.3
        hs = rng.uniform(0.95, 1.05)
        shirt = rng.uniform(0.25, 1.0, 3)
        fr = self._decal("person_front", 0.44, 1.8 * hs, "rider_front")
        sd = self._decal("person_side", 0.6, 1.8 * hs, "rider_side")
        b.box(base_uid + 1, xc - 0.22, xc + 0.22, rz0, rz0 + 0.6, speed, RIDER, hs, shirt, {0: fr, 3: fr, 1: sd, 2: sd})

    def _content(self, time: float, cz: float) -> tuple[np.ndarray, np.ndarray]:
        """Face table and shadow casters (positions at time 0) for everything near [cz - 40, cz + view]."""
        lo, hi = cz - 40.0, cz + self.config.view_distance + 20.0
        tables, casters = [], []
        for c in range(math.floor(lo / (CELL * CHUNK)), math.floor(hi / (CELL * CHUNK)) + 1):
            t_, c_ = self._chunk(("static", c))
            tables.append(t_)
            casters.append(c_)
        for gid, (_, _, speed, slot, prob) in enumerate(self._groups):
            if prob <= 0:
                continue
            z_lo, z_hi = lo - speed * time - 12.0, hi - speed * time
            for c in range(math.floor(z_lo / (slot * CHUNK)), math.floor(z_hi / (slot * CHUNK)) + 1):
                t_, c_ = self._chunk(("moving", gid, c))
                tables.append(t_)
                casters.append(c_)
        return np.concatenate(tables), np.concatenate(casters)

    # ---------------------------------------------------------------- internals: the rasteriser

    def _knots(self) -> tuple[np.ndarray, ...]:
        """All outline profiles as one piecewise-linear function each for top and bottom: profile k lives on
        [2k, 2k + 1], so one np.interp evaluates every face's outline at once."""
        n = len(self._profiles)
        if self._knot_cache is None or self._knot_cache[0] != n:
            kt = np.concatenate([2 * k + p[0] for k, p in enumerate(self._profiles)])
            vt = np.concatenate([p[1] for p in self._profiles])
            kb = np.concatenate([2 * k + p[2] for k, p in enumerate(self._profiles)])
            vb = np.concatenate([p[3] for p in self._profiles])
            self._knot_cache = (n, kt, vt, kb, vb)
        return self._knot_cache[1:]

    def _rasterize(self, t: int, refs: tuple[int, ...], colour: bool) -> dict:
        """Ray-cast frame t: surface ids always; image and labels if colour; per ref the backward flow
        [H, W, 2] and occlusion [H, W].

        Faces are z-buffered first, writing a per-pixel slot (0 sky, 1 ground, 2 + i face i of this frame) and,
        for colour, their texel index. Everything else is then computed in bands of rows small enough to stay
        in cache: ids, labels, texels, tint, shading, ground markings and shadows, haze, the sky, lighting, and
        flows gathered from per-(slot, column) tables (the ground's per pixel) with their occlusion.
        """
        H, W = self.height, self.width
        f, cx, cy = self._f, self._cx, self._cy
        fps = self.config.fps
        time = t / fps
        camx, camz, yaw = self._camera(time)
        cos, sin = math.cos(yaw), math.sin(yaw)
        rx = self._xn * cos + sin  # horizontal world direction of each column's ray (z_cam = 1)
        rz = -self._xn * sin + cos
        ref_cams = [(r / fps - time, *self._camera(r / fps)) for r in refs]
        ids_refs = [self._surface_ids(r) for r in refs]
        g0 = self._g0

        # Work buffers are reused across frames (the scene is not thread-safe anyway): fresh multi-megabyte
        # arrays cost page faults on every frame.
        slot = self._scratch("slot", (H, W), np.int32)
        slot[:g0] = 0
        slot[g0:] = 1
        zbuf = self._scratch("zbuf", (H, W), np.float32)
        zbuf[:g0] = np.inf
        zbuf[g0:] = self._g_s
        table, casters = self._content(time, camz)
        faces = self._draw_faces(table, time, camx, camz, cos, sin, rx, rz, ref_cams, slot, zbuf, colour)
        nf = faces["n"]
        sid_tab = np.concatenate([np.array([0, 1], np.int32), faces["sid"]])
        ids = np.empty((H, W), np.int32)
        u32 = self._u32

        # Per-ref tables of the flow of every (slot, column): x flow and the vertical scale (ratio - 1).
        ref_tabs = []
        for k, (_dt, _rcx, _rcz, ryaw) in enumerate(ref_cams):
            fxt = self._scratch(f"fxt{k}", (nf + 2, W), np.float32)
            rt = self._scratch(f"rt{k}", (nf + 2, W), np.float32)
            c2, s2 = math.cos(ryaw), math.sin(ryaw)
            xc = rx * c2 - rz * s2  # the sky: directions, moved by the yaw difference only
            zc = rx * s2 + rz * c2
            ok = zc > 1e-6
            with np.errstate(divide="ignore", invalid="ignore"):
                fxt[0] = np.where(ok, cx + f * xc / zc - self._u, _BEHIND)
                rt[0] = np.where(ok, 1.0 / zc - 1.0, 0.0)
            fxt[1] = 0.0  # the ground's flow is computed per pixel; faces' rows are read only where drawn
            rt[1] = 0.0
            bad = not ok.all()
            if nf:
                fxt.reshape(-1)[faces["flat"]] = faces["flow"][k][0]
                rt.reshape(-1)[faces["flat"]] = faces["flow"][k][1]
                bad = bad or bool(faces["flow"][k][2])
            ref_tabs.append((fxt.reshape(-1), rt.reshape(-1), bad))
        flows = [np.empty((H, W, 2), np.float32) for _ in refs]
        occs = [np.empty((H, W), bool) for _ in refs]
        col_index = np.arange(W, dtype=np.intp)[None]

        if colour:
            labels = np.empty((H, W), np.uint8)
            image = np.empty((H, W, 3), np.uint8)
            cls_tab = np.concatenate([np.array([SKY, ROAD], np.uint8), faces["cls"]])
            a_tab = np.concatenate([np.ones(2, np.float32), faces["shade"]])
            b_tabs = [np.concatenate([np.zeros(2, np.float32), faces["tintfac"][c]]) for c in range(3)]
            gain = self._gain(time)
            shadow = (self._shadows(casters, time, camx, camz, cos, sin)
                      if self.config.shadows and len(casters) and g0 < H else None)
            sky_rgb = (self._sky_horizon.astype(np.float32), self._sky_zenith.astype(np.float32))
            sky_cols = self._sky_columns(yaw)
            # Texture addressing per (slot, column) (see _draw_faces): the sky and ground rows are zero (the
            # ground's comes per pixel; the sky's texels are not used); a face's row is read where it was drawn.
            tex_tabs = []
            for name, dtype in (("ay", np.float32), ("by", np.float32), ("ytop", np.float32), ("tinfo", np.int32),
                                ("xinfo", np.int32)):
                tab = self._scratch(name, (nf + 2, W), dtype)
                tab[:2] = 0
                if nf:
                    tab.reshape(-1)[faces["flat"]] = faces[name]
                tex_tabs.append(tab.reshape(-1))

        rx32, rz32 = rx.astype(np.float32)[None], rz.astype(np.float32)[None]
        step = self._band
        bands = [(a, min(a + step, g0)) for a in range(0, g0, step)]
        bands += [(a, min(a + step, H)) for a in range(g0, H, step)]
        ground_refs = [self._ground_ref(rx, rz, camx, camz, rcx, rcz, ryaw) for _dt, rcx, rcz, ryaw in ref_cams]
        for ra, rb in bands:
            sl = slot[ra:rb].astype(np.intp)
            ids_band = sid_tab.take(sl)
            ids[ra:rb] = ids_band
            on_ground = ra >= g0
            if on_ground:
                is_g = sl == 1
            v = self._v32[ra:rb]
            flat = sl * W
            flat += col_index
            for k in range(len(refs)):
                fxt, rt, tab_bad = ref_tabs[k]
                fx = fxt.take(flat)
                fy = rt.take(flat)
                fy *= v - np.float32(cy)
                maybe_bad = tab_bad
                if on_ground:
                    gfx, gfy, g_bad = self._ground_flow(ra - g0, rb - g0, ground_refs[k])
                    np.copyto(fx, gfx, where=is_g)
                    np.copyto(fy, gfy, where=is_g)
                    maybe_bad = maybe_bad or g_bad
                # Occlusion: out of frame (points behind the reference camera carry a far-away sentinel), or
                # another surface in front there.
                up = fx + u32
                vp = fy + v
                inside = up >= -0.5
                inside &= up < W - 0.5
                inside &= vp >= -0.5
                inside &= vp < H - 0.5
                up += np.float32(0.5)
                vp += np.float32(0.5)
                iv = vp.astype(np.intp)
                iv *= W
                iv += up.astype(np.intp)
                inside &= ids_refs[k].reshape(-1).take(iv, mode="clip") == ids_band
                np.logical_not(inside, out=occs[k][ra:rb])
                if maybe_bad:
                    bad = np.abs(fx) >= _BEHIND / 2
                    np.copyto(fx, np.float32(0.0), where=bad)
                    np.copyto(fy, np.float32(0.0), where=bad)
                flows[k][ra:rb, :, 0] = fx
                flows[k][ra:rb, :, 1] = fy
            if not colour:
                continue
            lab = cls_tab.take(sl)
            tix, stride, wx, wy = _face_texels(v, flat, *tex_tabs)
            if on_ground:
                glab, gidx, gstride, gwx, gwy, white, yellow = self._ground_look(ra - g0, rb - g0, rx32, rz32,
                                                                                 camx, camz)
                np.copyto(lab, glab, where=is_g)
                tix = np.where(is_g, gidx, tix)
                stride = np.where(is_g, gstride, stride)
                wx = np.where(is_g, gwx, wx)
                wy = np.where(is_g, gwy, wy)
                white *= is_g
                yellow *= is_g
                unpaint = np.float32(1.0) - white
                unpaint -= yellow
                if shadow is not None:
                    unpaint *= np.where(is_g, shadow[ra - g0:rb - g0], np.float32(1.0))
                white *= _WHITE
            else:
                sky_px = np.flatnonzero(sl == 0)
                sky = self._sky_pixels(ra, sky_px, sky_cols, *sky_rgb)
            labels[ra:rb] = lab
            px = _bilinear(self._atlas.data, tix, stride, wx, wy)
            alpha = (px >> np.uint32(24)).astype(np.float32)
            fac0 = a_tab.take(sl)
            keep = np.exp(zbuf[ra:rb] * np.float32(-1.0 / HAZE_DISTANCE))
            hazed = np.float32(1.0) - keep
            for c in range(3):
                fac = b_tabs[c].take(sl)
                fac *= alpha
                fac += fac0
                col = (px >> np.uint32(8 * c)).astype(np.uint8).astype(np.float32)
                col *= fac
                if on_ground:
                    col *= unpaint
                    col += white
                    col += yellow * _YELLOW[c]
                col *= keep
                col += hazed * self._haze[c]
                if not on_ground:
                    col.reshape(-1)[sky_px] = sky[c]
                col *= gain[c]
                np.minimum(col, np.float32(255.0), out=col)  # every term is >= 0
                image[ra:rb, :, c] = col

        out = {"ids": ids, "flows": list(zip(flows, occs, strict=True))}
        if colour:
            out["image"], out["labels"] = image, labels
        self._ids[t] = ids.copy()  # the caller may modify the returned map; the occlusion test needs the truth
        self._ids.move_to_end(t)
        while len(self._ids) > 6:
            self._ids.popitem(last=False)
        return out

    def _ground_ref(self, rx, rz, camx, camz, rcx, rcz, ryaw) -> tuple:
        """Per-frame constants of the ground's flow to one reference camera."""
        c2, s2 = math.cos(ryaw), math.sin(ryaw)
        dx, dz = camx - rcx, camz - rcz
        g1 = (rx * c2 - rz * s2).astype(np.float32)[None]
        g2 = (rx * s2 + rz * c2).astype(np.float32)[None]
        return g1, g2, np.float32(dx * c2 - dz * s2), np.float32(dx * s2 + dz * c2), float(g2.min())

    def _ground_flow(self, ga, gb, ref) -> tuple[np.ndarray, np.ndarray, bool]:
        """Backward flow of ground rows ga..gb (from g0) to a reference camera: (fx, fy, maybe_behind); a point
        behind that camera gets the _BEHIND sentinel."""
        f, cx, cy, hc = self._f, self._cx, self._cy, self._hc
        g1, g2, k1, k2, g2min = ref
        s = self._g_s[ga:gb]
        maybe_behind = min(float(s[0, 0]) * g2min, float(s[-1, 0]) * g2min) + float(k2) <= NEAR
        zc = s * g2
        zc += k2
        if maybe_behind:
            bad = zc <= NEAR
            np.copyto(zc, np.float32(1.0), where=bad)
        inv = np.float32(1.0) / zc
        fx = s * g1
        fx += k1
        fx *= inv
        fx *= np.float32(f)
        fx += np.float32(cx) - self._u32
        fy = inv * np.float32(f * hc)
        fy += np.float32(cy) - self._v32[self._g0 + ga:self._g0 + gb]
        if maybe_behind:
            np.copyto(fx, np.float32(_BEHIND), where=bad)
            np.copyto(fy, np.float32(_BEHIND), where=bad)
        return fx, fy, maybe_behind

    def _ground_look(self, ga, gb, rx32, rz32, camx, camz):
        """Labels, texel indices and lane-marking coverage (white, yellow) of ground rows ga..gb (from g0)."""
        r = slice(ga, gb)
        s = self._g_s[r]
        inv, mask, stride = self._g_inv[r], self._g_mask[r], self._g_stride[r]
        period = self._g_period
        x = s * rx32
        x += np.float32(camx)
        ax = np.abs(x, out=x)
        road = ax < ROAD_HALF
        walk = ax < SIDEWALK_EDGE
        labels = np.where(road, np.uint8(ROAD), np.where(walk, np.uint8(SIDEWALK), np.uint8(TERRAIN)))
        sinv = s * inv
        kx = np.float32(camx + 64 * period) * inv - np.float32(0.5)  # positive texel coordinates (tiles repeat)
        kz = np.float32(camz % period + 64 * period) * inv - np.float32(0.5)
        xf = sinv * rx32
        xf += kx
        ix = xf.astype(np.int32)
        xf -= ix
        xf *= np.float32(16)
        xf += np.float32(0.5)
        wx = xf.astype(np.int32)
        ix &= mask
        zf = sinv * rz32
        zf += kz
        iz = zf.astype(np.int32)
        zf -= iz
        zf *= np.float32(16)
        zf += np.float32(0.5)
        wz = zf.astype(np.int32)
        iz &= mask
        iz *= stride
        iz += ix
        iz += np.where(road, self._g_off[0][r], np.where(walk, self._g_off[1][r], self._g_off[2][r]))
        # Lane markings, anti-aliased by the pixel footprint: a double centre line (yellow), dashed lane lines
        # and solid edge lines (white).
        fpx = self._g_fpx[r]

        def line(centre, half):
            cov = np.abs(ax - np.float32(centre))
            cov -= np.float32(half)
            cov *= -fpx
            cov += np.float32(0.5)
            return np.clip(cov, 0, 1, out=cov)

        yellow = line(0.12, 0.05)
        white = line(3.5, 0.07)
        zm = s * rz32
        zm += np.float32(camz % 9.0)
        zm -= np.floor(zm * np.float32(1 / 9.0)) * np.float32(9.0)
        dash = np.minimum(zm, np.float32(3.0) - zm)
        dash *= self._g_fpz[r]
        dash += np.float32(0.5)
        white *= np.clip(dash, 0, 1, out=dash)
        np.maximum(white, line(6.85, 0.1), out=white)
        return labels, iz, np.broadcast_to(stride, iz.shape), wx, wz, white, yellow

    def _sky_columns(self, yaw: float) -> tuple[np.ndarray, np.ndarray]:
        """Cloud texel column (with the tile offset) and bilinear x fraction of each image column."""
        at = self._atlas
        tile = at.index["clouds"]
        tw = int(at.shape[tile][1])
        xf = (yaw + np.arctan(self._xn)) / (2 * math.pi) * tw - 0.5
        ix = np.floor(xf)
        wx = np.floor((xf - ix) * 16 + 0.5).astype(np.int32)[None]
        return ((ix.astype(np.int64) % tw) + int(at.off[tile, 0])).astype(np.int32)[None], wx

    def _sky_pixels(self, ra, pixels, sky_cols, horizon, zenith) -> np.ndarray:
        """Sky colour [3, n] of the given pixels (flat indices into rows ra..): a gradient and clouds fixed in world
        directions (azimuth, height on the unit cylinder)."""
        at = self._atlas
        tile = at.index["clouds"]
        th = int(at.shape[tile][0])
        stride = int(at.stride[tile, 0])
        row, column = np.divmod(pixels, self.width)
        h = (np.float32(self._cy - ra) - row.astype(np.float32)) * self._sky_cosa[0].take(column)
        yf = h * np.float32(th / 0.64)
        yf -= np.float32(0.5)
        np.clip(yf, 0, th - 1.01, out=yf)
        iy = yf.astype(np.int32)
        yf -= iy
        yf *= np.float32(16)
        yf += np.float32(0.5)
        iy *= stride
        iy += sky_cols[0][0].take(column)
        wx = sky_cols[1][0].take(column)
        cloud = (_bilinear(at.data, iy, np.int32(stride), wx, yf.astype(np.int32)) & np.uint32(255))
        cloud = cloud.astype(np.float32)
        cloud *= np.float32(1.0 / 255.0)
        grad = np.clip(h * np.float32(2.2), 0, 1)
        out = np.empty((3, len(pixels)), np.float32)
        for c in range(3):
            o = out[c]
            np.multiply(grad, zenith[c] - horizon[c], out=o)
            o += horizon[c]
            o += (np.float32(238.0) - o) * cloud
        return out

    def _shadows(self, casters, time, camx, camz, cos, sin) -> np.ndarray | None:
        """Soft contact shadows under vehicles and people: a multiplier for the ground rows (or None)."""
        f, cx, cy, hc, g0 = self._f, self._cx, self._cy, self._hc, self._g0
        H, W = self.height, self.width
        soft = 0.25
        out = None
        for x0, x1, z0, z1, vz in casters.tolist():
            z0 += vz * time - soft
            z1 += vz * time + soft
            x0 -= soft
            x1 += soft
            corners = [(x0, z0), (x1, z0), (x0, z1), (x1, z1)]
            zc = [(x - camx) * sin + (z - camz) * cos for x, z in corners]
            if max(zc) < NEAR or min(zc) > 80.0:
                continue
            xc = [(x - camx) * cos - (z - camz) * sin for x, z in corners]
            zmin = max(min(zc), NEAR)
            r1 = min(H, int(math.ceil(cy + f * hc / zmin)) + 1)
            r0 = max(g0, int(math.floor(cy + f * hc / max(zc))))
            if min(zc) > NEAR:
                us = [cx + f * a / b for a, b in zip(xc, zc, strict=True)]
                c0, c1 = max(0, int(math.floor(min(us)))), min(W, int(math.ceil(max(us))) + 1)
            else:
                c0, c1 = 0, W
            if r0 >= r1 or c0 >= c1:
                continue
            s = self._sg[r0 - g0:r1 - g0].astype(np.float32)[:, None]
            xn = self._xn[c0:c1]
            x = s * (xn * cos + sin).astype(np.float32)[None] + np.float32(camx)
            z = s * (-xn * sin + cos).astype(np.float32)[None] + np.float32(camz)
            cov = np.clip(np.minimum(x - np.float32(x0), np.float32(x1) - x) * np.float32(1 / soft), 0, 1)
            cov *= np.clip(np.minimum(z - np.float32(z0), np.float32(z1) - z) * np.float32(1 / soft), 0, 1)
            cov *= np.float32(-0.45)
            cov += np.float32(1.0)
            if out is None:
                out = np.ones((H - g0, W), np.float32)
            out[r0 - g0:r1 - g0, c0:c1] *= cov
        return out

    def _draw_faces(self, table, time, camx, camz, cos, sin, rx, rz, ref_cams, slot, zbuf, colour) -> dict:
        """Cull, then ray-cast every face column by column (vectorised over all faces' columns), then z-buffer
        each face over its rows (one short loop). Returns per-face tables for the shading and flow passes."""
        H, W = self.height, self.width
        f, cx, cy, hc = self._f, self._cx, self._cy, self._hc
        empty = {"n": 0, "sid": np.zeros(0, np.int32), "cls": np.zeros(0, np.uint8),
                 "shade": np.zeros(0, np.float32), "tintfac": np.zeros((3, 0), np.float32)}
        if not len(table):
            return empty
        # 1. Per face: back faces, behind the camera, beyond the class's detail distance, outside the columns.
        ox = table[:, OX] + table[:, VX] * time
        oz = table[:, OZ] + table[:, VZ] * time
        front = (camx - ox) * table[:, NX] + (camz - oz) * table[:, NZ] > 1e-9
        ex, ez, length = table[:, EX], table[:, EZ], table[:, LEN]
        x0, z0 = ox - camx, oz - camz
        x1, z1 = x0 + ex * length, z0 + ez * length
        xc0, zc0 = x0 * cos - z0 * sin, x0 * sin + z0 * cos
        xc1, zc1 = x1 * cos - z1 * sin, x1 * sin + z1 * cos
        limit = self._lod.take(table[:, CLS].astype(np.int64))
        keep = front & (np.maximum(zc0, zc1) > NEAR) & (np.minimum(zc0, zc1) < limit)
        with np.errstate(divide="ignore", invalid="ignore"):
            tcl = (NEAR - zc0) / (zc1 - zc0)
            xa = np.where(zc0 < NEAR, xc0 + tcl * (xc1 - xc0), xc0)
            za = np.where(zc0 < NEAR, NEAR, zc0)
            xb = np.where(zc1 < NEAR, xc0 + tcl * (xc1 - xc0), xc1)
            zb = np.where(zc1 < NEAR, NEAR, zc1)
            ua, ub = cx + f * xa / za, cx + f * xb / zb
        umin = np.floor(np.minimum(ua, ub)) - 1
        umax = np.ceil(np.maximum(ua, ub)) + 1
        keep &= (umax >= 0) & (umin <= W - 1)
        sel = np.flatnonzero(keep)
        if not len(sel):
            return empty
        T = table[sel]
        nfc = len(sel)
        c0 = np.clip(umin[sel], 0, W - 1).astype(np.int64)
        width = np.clip(umax[sel], 0, W - 1).astype(np.int64) + 1 - c0
        starts = np.cumsum(width) - width
        n = int(width.sum())
        fidx = np.repeat(np.arange(nfc), width)
        col = np.arange(n) - starts[fidx] + c0[fidx]

        # 2. Per column of every face: depth s along the camera axis and position a along the face.
        crx, crz = rx[col], rz[col]
        fex, fez, flen = T[:, EX][fidx], T[:, EZ][fidx], T[:, LEN][fidx]
        dx, dz = (ox[sel] - camx)[fidx], (oz[sel] - camz)[fidx]
        den = crx * fez - crz * fex
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (dx * fez - dz * fex) / den
            a = (dx * crz - dz * crx) / den
        valid = (s > NEAR) & (a >= 0) & (a < flen)
        s = np.where(valid, s, 1.0)
        an = np.clip(a / flen, 0.0, 1.0)
        kt, vt_, kb, vb_ = self._knots()
        q = 2.0 * T[:, PROF][fidx] + an
        hs = T[:, HS][fidx]
        top = np.interp(q, kt, vt_) * hs
        bot = np.interp(q, kb, vb_) * hs
        vt = np.where(valid, cy + f * (hc - top) / s, np.inf)
        vb = np.where(valid, cy + f * (hc - bot) / s, -np.inf)
        ordinal = np.arange(n)
        first = np.minimum.reduceat(np.where(valid, ordinal, n), starts)
        last = np.maximum.reduceat(np.where(valid, ordinal, -1), starts) + 1
        r0 = np.maximum(np.ceil(np.minimum.reduceat(vt, starts)), 0)
        r1 = np.minimum(np.ceil(np.maximum.reduceat(vb, starts)), H)
        live = (first < last) & (r0 < r1)

        # 3. Texture addressing per column: mip level from the pixel footprint on the face (texels per pixel
        # along the face and up); the texel column and its bilinear fraction; the texel row is ay + by * v
        # (clamped to ytop on decals); the shading pass reads these per (slot, column).
        if colour:
            at = self._atlas
            tile = T[:, TILE].astype(np.int64)[fidx]
            sx, sy = T[:, SX][fidx], T[:, SY][fidx]
            with np.errstate(divide="ignore", invalid="ignore"):
                dcross = (-dx * sin - dz * cos) / f  # cross(D, dr/du)
                rcross = (cos * fez + sin * fex) / f  # cross(dr/du, e)
                dadu = (dcross - a * rcross) / den
            foot = np.maximum(np.abs(np.where(valid, dadu, 0.0)) / sx, s / (f * sy))
            level = np.floor(np.log2(np.maximum(foot, 1e-9)) + 0.7)
            level = np.clip(level, 0, at.levels[tile] - 1).astype(np.int64)
            scale = np.exp2(level)
            tw, th = at.tw[tile, level], at.th[tile, level]
            decal = at.decal[tile]
            xf = np.where(valid, a + T[:, AOFF][fidx], 0.0) / (sx * scale) - 0.5
            xf = np.where(decal, np.clip(xf, 0, tw - 1), xf)
            ix = np.floor(xf)
            wx = np.minimum(np.floor((xf - ix) * 16 + 0.5), 16).astype(np.int32)
            base = (at.off[tile, level] + (ix.astype(np.int64) & (tw - 1))).astype(np.int32)
            stride = at.stride[tile, level].astype(np.int32)
            ytop = np.where(decal, th - 1, 3e38).astype(np.float32)
            lg = np.log2(th).astype(np.int64)
            ay = (((hc + T[:, YOFF][fidx]) + s * cy / f) / (sy * scale) - 0.5).astype(np.float32)
            by = (-s / (f * sy * scale)).astype(np.float32)
        vt32, vb32, s32 = vt.astype(np.float32), vb.astype(np.float32), s.astype(np.float32)

        # 4. Per face: z-buffer its rows x columns; write the slot.
        # Large faces one by one over their bounding box; small ones (far away) all at once, pixel by pixel.
        v32 = self._v32
        drawn = np.zeros(nfc, bool)
        fi = np.flatnonzero(live)
        fa, fb = first[fi], last[fi]
        ra_, rb_ = r0[fi].astype(np.int64), r1[fi].astype(np.int64)
        small = (rb_ - ra_) * (fb - fa) <= _SMALL_FACE
        # Wide faces go in pieces of _PIECE columns, each with its own row range (perspective makes a wide
        # face's bounding box much larger than the face).
        pieces = []
        for i, i0, i1 in zip(fi[~small].tolist(), fa[~small].tolist(), fb[~small].tolist(), strict=True):
            pieces += [(i, j, min(j + _PIECE, i1)) for j in range(i0, i1, _PIECE)]
        if pieces:
            pi, p0, p1 = (np.array(x, np.int64) for x in zip(*pieces, strict=True))
            bounds = np.stack([p0, p1], 1).reshape(-1)  # reduce over [p0, p1) only
            low = np.minimum.reduceat(np.append(vt32, np.float32(np.inf)), bounds)[::2]
            high = np.maximum.reduceat(np.append(vb32, np.float32(-np.inf)), bounds)[::2]
            pra = np.clip(np.ceil(low), 0, H).astype(np.int64)
            prb = np.clip(np.ceil(high), 0, H).astype(np.int64)
            ok = pra < prb
            rows = zip(pi[ok].tolist(), p0[ok].tolist(), p1[ok].tolist(), pra[ok].tolist(), prb[ok].tolist(),
                       strict=True)
        else:
            rows = iter(())
        for i, i0, i1, ra, rb in rows:
            ca, cb = int(col[i0]), int(col[i1 - 1]) + 1
            v = v32[ra:rb]
            zview = zbuf[ra:rb, ca:cb]
            m = v >= vt32[i0:i1]
            m &= v < vb32[i0:i1]
            depth = s32[i0:i1]
            m &= depth < zview
            if not m.any():
                continue
            drawn[i] = True
            np.copyto(zview, depth, where=m)
            np.copyto(slot[ra:rb, ca:cb], 2 + i, where=m)
        if small.any():
            # Every candidate pixel (row, per-column index k) of every small face's bounding box.
            fs, fa, ra_ = fi[small], fa[small], ra_[small]
            wd = fb[small] - fa
            counts = (rb_[small] - ra_) * wd
            owner = np.repeat(np.arange(len(fs)), counts)
            local = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
            row = ra_[owner] + local // wd[owner]
            k = fa[owner] + local % wd[owner]
            vrow = row.astype(np.float32)
            keep = (vrow >= vt32[k]) & (vrow < vb32[k])
            row, k, vrow = row[keep], k[keep], vrow[keep]
            pix = row * W + col[k]
            depth = s32[k]
            keep = depth < zbuf.reshape(-1)[pix]
            pix, k, vrow, depth, owner = pix[keep], k[keep], vrow[keep], depth[keep], fidx[k[keep]]
            order = np.lexsort((depth, pix))  # nearest first within each pixel
            pix, k, vrow, depth, owner = pix[order], k[order], vrow[order], depth[order], owner[order]
            win = np.ones(len(pix), bool)
            win[1:] = pix[1:] != pix[:-1]
            pix, k, vrow, depth, owner = pix[win], k[win], vrow[win], depth[win], owner[win]
            drawn[owner] = True
            zbuf.reshape(-1)[pix] = depth
            slot.reshape(-1)[pix] = 2 + owner

        # 5. Tables for the whole-image passes: per face, and per (face, column) for the flows.
        out = {
            "n": nfc,
            "sid": T[:, SID].astype(np.int32),
            "cls": T[:, CLS].astype(np.uint8),
            "shade": T[:, SHADE].astype(np.float32),
            "tintfac": ((T[:, [TR, TG, TB]] - 1.0) * (T[:, SHADE:SHADE + 1] / 255.0)).T.astype(np.float32),
        }
        used = valid & drawn[fidx]
        out["flat"] = ((2 + fidx[used]) * W + col[used]).astype(np.int64)
        if colour:
            out["ay"], out["by"], out["ytop"] = ay[used], by[used], ytop[used]
            out["tinfo"] = (base[used] | (lg[used] << _LG_SHIFT)).astype(np.int32)  # texel column, log2 rows
            out["xinfo"] = (stride[used] * 32 + wx[used]).astype(np.int32)  # row stride and x fraction
        if ref_cams:
            flows = []
            su, crxu, crzu, fu = s[used], crx[used], crz[used], fidx[used]
            vx, vz = T[:, VX][fu], T[:, VZ][fu]
            for dt, rcx, rcz, ryaw in ref_cams:
                c2, s2 = math.cos(ryaw), math.sin(ryaw)
                # The face point at the reference time (faces move with their boxes), relative to that camera.
                px = (camx - rcx) + su * crxu + vx * dt
                pz = (camz - rcz) + su * crzu + vz * dt
                xc = px * c2 - pz * s2
                zc = px * s2 + pz * c2
                ok = zc > NEAR
                with np.errstate(divide="ignore", invalid="ignore"):
                    fxc = np.where(ok, cx + f * xc / zc - col[used], _BEHIND).astype(np.float32)
                    ratio = np.where(ok, su / zc - 1.0, 0.0).astype(np.float32)
                flows.append((fxc, ratio, not ok.all()))
            out["flow"] = flows
        return out


# --------------------------------------------------------------------------------------------------------------
# Clips: render, encode with PyAV, write the ground truth beside the video.

def _encoder_options(codec: str, gop: int, bframes: int) -> dict[str, str]:
    if codec == "h264":
        return {"preset": "veryfast",
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:open-gop=0:"
                               "log-level=error"}
    if codec == "hevc":
        return {"preset": "veryfast",
                "x265-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:open-gop=0:"
                               "log-level=error"}
    return {"sc_threshold": "1000000000"}  # mpeg4: no scene-cut I-frames


def write_clip(path, config: SceneConfig, num_frames: int, *, codec: str = "h264", bitrate: int = 5_000_000,
               gop: int = 12, bframes: int = 0, ground_truth: bool = True, compress: bool = False) -> ClipInfo:
    """Render `num_frames` frames of StreetScene(config), encode them to `path` and write the ground truth.

    codec: "h264" (libx264), "hevc" (libx265) or "mpeg4" (MPEG-4 Part 2); the container follows the file
    extension (.mp4, .mkv, .avi ...). Every `gop` frames is an I-frame (closed GOPs, no scene-cut I-frames) and
    `bframes` is the most consecutive B-frames (0 = none). yuv420p needs an even width and height.

    Ground truth goes to the folder <stem>_gt/ beside the video:
        labels/%06d.png   uint8 trainIds (255 = ignore)
        flow/%06d.npz     flow_prev [H,W,2] float32, occ_prev [H,W] bool (frame 0: zeros / all True),
                          flow_key, occ_key: the same to the frame's keyframe key_index = t // gop * gop
                          (identity at the keyframe itself), key_index int
        meta.json         the scene config, clip settings, class names and the flow conventions
    compress: deflate the .npz files (about 3x slower to write, and float flow shrinks little; the default
    writes them uncompressed: 9 bytes per pixel and reference).
    """
    import av  # PyAV is only needed to encode

    if not isinstance(config, SceneConfig):
        raise ConfigError(f"write_clip needs a SceneConfig, got {type(config).__name__}")
    if codec not in CODECS:
        raise ConfigError(f"unknown codec {codec!r}; choose one of {sorted(CODECS)}")
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ConfigError(f"num_frames must be an int >= 1, got {num_frames!r}")
    if not isinstance(gop, int) or gop < 1:
        raise ConfigError(f"gop must be an int >= 1, got {gop!r}")
    if not isinstance(bframes, int) or bframes < 0 or bframes > 16:
        raise ConfigError(f"bframes must be an int in [0, 16], got {bframes!r}")
    if bitrate <= 0:
        raise ConfigError(f"bitrate must be > 0, got {bitrate!r}")
    if config.height % 2 or config.width % 2:
        raise ConfigError(f"yuv420p video needs an even size; got {config.height}x{config.width}")
    try:
        av.codec.Codec(CODECS[codec], "w")
    except Exception as err:
        raise ConfigError(f"this FFmpeg build (PyAV {av.__version__}) has no {CODECS[codec]} encoder for "
                          f"codec {codec!r}") from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    gt_dir = path.parent / f"{path.stem}_gt" if ground_truth else None
    if gt_dir is not None:
        (gt_dir / "labels").mkdir(parents=True, exist_ok=True)
        (gt_dir / "flow").mkdir(parents=True, exist_ok=True)
    scene = StreetScene(config)
    rate = Fraction(config.fps).limit_denominator(1001)
    from PIL import Image

    try:
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream(CODECS[codec], rate=rate,
                                          options=_encoder_options(codec, gop, bframes))
            stream.width, stream.height = config.width, config.height
            stream.pix_fmt = "yuv420p"
            stream.bit_rate = int(bitrate)
            stream.codec_context.gop_size = gop
            stream.codec_context.max_b_frames = bframes
            for t in range(num_frames):
                key = t // gop * gop
                frame, extra = scene._render(t, (key,) if ground_truth else ())
                video_frame = av.VideoFrame.from_ndarray(frame.image, format="rgb24")
                video_frame.pts = t
                video_frame.time_base = 1 / rate
                if t == key:  # force the GOP start (MPEG-4 Part 2 otherwise counts GOPs in coding order)
                    video_frame.pict_type = av.video.frame.PictureType.I
                for packet in stream.encode(video_frame):
                    container.mux(packet)
                if gt_dir is not None:
                    flow_key, occ_key = extra[0]
                    Image.fromarray(frame.labels).save(gt_dir / "labels" / f"{t:06d}.png")
                    save = np.savez_compressed if compress else np.savez
                    save(gt_dir / "flow" / f"{t:06d}.npz", flow_prev=frame.flow_prev, occ_prev=frame.occlusion_prev,
                         flow_key=flow_key, occ_key=occ_key, key_index=np.int64(key))
            for packet in stream.encode(None):
                container.mux(packet)
    except av.FFmpegError as err:
        raise InputError(f"encoding {path} with {CODECS[codec]} failed: {err}") from err
    info = ClipInfo(path=path, gt_dir=gt_dir, num_frames=num_frames, fps=float(config.fps),
                    size=(config.height, config.width), gop=gop, bframes=bframes, codec=codec, bitrate=int(bitrate))
    if gt_dir is not None:
        meta = {
            "format": "vidseg-synthetic-gt",
            "version": 1,
            "video": path.name,
            "num_frames": num_frames,
            "fps": float(config.fps),
            "size": [config.height, config.width],
            "gop": gop,
            "bframes": bframes,
            "codec": codec,
            "bitrate": int(bitrate),
            "config": asdict(config),
            "classes": list(CLASS_NAMES),
            "ignore_index": IGNORE_INDEX,
            "labels": "labels/%06d.png (uint8 Cityscapes trainIds)",
            "flow": "flow/%06d.npz: flow_prev, occ_prev (to frame t-1), flow_key, occ_key (to key_index = "
                    "t // gop * gop), key_index",
            "flow_convention": "backward, pixels, (x, y): pixel p of frame t was at p + flow(p) in the reference "
                               "frame; pixel centres at integer coordinates",
            "occlusion": "True where p is not visible in the reference frame (disoccluded, out of frame, behind "
                         "the camera); frame 0 has occ_prev all True and flow_prev zeros",
        }
        (gt_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return info


def load_ground_truth(path_or_dir, index: int) -> dict:
    """Read what `write_clip` wrote for frame `index`, given the video path or its <stem>_gt folder.

    Returns {"index", "labels" uint8 [H,W], "flow_prev" float32 [H,W,2], "occ_prev" bool [H,W], "flow_key",
    "occ_key", "key_index" int, "meta" dict}. Raises InputError when the ground truth or the frame is missing.
    """
    p = Path(path_or_dir)
    gt_dir = p if (p.is_dir() and (p / "meta.json").is_file()) else p.parent / f"{p.stem}_gt"
    meta_path = gt_dir / "meta.json"
    if not meta_path.is_file():
        raise InputError(f"no synthetic ground truth for {p}: expected {meta_path} (write the clip with "
                         f"write_clip(..., ground_truth=True))")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read {meta_path}: {err}") from err
    n = int(meta.get("num_frames", 0))
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < n:
        raise InputError(f"frame {index!r} is not in {gt_dir} (it has frames 0..{n - 1})")
    index = int(index)
    label_path = gt_dir / "labels" / f"{index:06d}.png"
    flow_path = gt_dir / "flow" / f"{index:06d}.npz"
    for needed in (label_path, flow_path):
        if not needed.is_file():
            raise InputError(f"ground truth file {needed} is missing; rewrite the clip with write_clip")
    from PIL import Image

    try:
        with Image.open(label_path) as img:
            labels = np.array(img, dtype=np.uint8)
        with np.load(flow_path) as data:
            out = {k: data[k] for k in ("flow_prev", "occ_prev", "flow_key", "occ_key", "key_index")}
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"cannot read the ground truth of frame {index} in {gt_dir}: {err}") from err
    return {
        "index": index,
        "labels": labels,
        "flow_prev": out["flow_prev"],
        "occ_prev": out["occ_prev"],
        "flow_key": out["flow_key"],
        "occ_key": out["occ_key"],
        "key_index": int(out["key_index"]),
        "meta": meta,
    }

"""What a synthetic scene is configured by, and what rendering and writing it give back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidseg.errors import ConfigError

__all__ = ["SceneConfig", "SyntheticFrame", "ClipInfo", "SETTINGS", "TERRAINS"]

SETTINGS = ("city", "suburb", "rural")
TERRAINS = ("grass", "dry", "meadow")


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

    Landscape (the defaults give the city street):
    setting: "city" (building blocks along sidewalks), "suburb" (low houses set back behind yards, more trees,
        some open lots) or "rural" (an open road: no sidewalks, fields, tree lines, bushes, fences, utility
        poles, the odd farm building far back).
    terrain: the texture of terrain (yards, fields, verges, grassy hills): "grass", "dry" (dry grass and
        straw) or "meadow" (green and dry patches).
    hills: height of the distant hills on the horizon, as the tangent of their elevation (0 = none; 0.08 is
        about 5 degrees). They lie at infinity, like the sky: forested (vegetation) over grass terrain, bare
        (terrain) over dry or meadow terrain.
    clouds: cloud cover (0 clear, 1 scattered clouds, up to 3 overcast).

    Camera (change pixels, never labels or flow):
    exposure: global exposure gain (1 = as lit; bright skies clip at 255 above ~1.1).
    white_balance: per-channel (R, G, B) gains of the camera.
    noise: sensor noise, standard deviation in grey levels at mid-grey (signal dependent, as shot noise).
    motion_blur: the shutter's open time as a fraction of the frame interval (0 = none): each pixel is averaged
        along its own motion during that time.
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
    setting: str = "city"
    terrain: str = "grass"
    hills: float = 0.0
    clouds: float = 1.0
    exposure: float = 1.0
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise: float = 0.0
    motion_blur: float = 0.0

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
            (self.setting in SETTINGS, f"setting must be one of {SETTINGS}"),
            (self.terrain in TERRAINS, f"terrain must be one of {TERRAINS}"),
            (0 <= self.hills <= 0.3, "hills must be in [0, 0.3] (tangent of their elevation)"),
            (0 <= self.clouds <= 3, "clouds must be in [0, 3]"),
            (0.1 <= self.exposure <= 4, "exposure must be in [0.1, 4]"),
            (len(self.white_balance) == 3 and all(0.5 <= g <= 2 for g in self.white_balance),
             "white_balance must be three gains in [0.5, 2]"),
            (0 <= self.noise <= 50, "noise must be in [0, 50] grey levels"),
            (0 <= self.motion_blur <= 1, "motion_blur must be in [0, 1] (fraction of the frame interval)"),
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
    surfaces: int32 [H, W] stable surface ids (0 sky, 1 ground, -1 the distant hills, others one per box face),
        the same across frames.
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

"""What a synthetic scene is configured by, and what rendering and writing it give back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidseg.errors import ConfigError

__all__ = ["SceneConfig", "SyntheticFrame", "ClipInfo"]


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

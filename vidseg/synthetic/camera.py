"""The camera: a pinhole at a fixed height with no pitch or roll, driving forward in its lane, swaying sideways
and panning (yaw) left and right.

With no pitch or roll the horizontal part of every ray depends only on the image column, which is what lets
the renderer ray-cast column by column: `rays(yaw)` gives each column's horizontal direction in the world.
"""

from __future__ import annotations

import math

import numpy as np

from vidseg.synthetic.config import SceneConfig
from vidseg.synthetic.street import EGO_X

__all__ = ["Camera", "NEAR", "BEHIND"]

NEAR = 0.05  # near plane (m)
BEHIND = 1e7  # flow sentinel (pixels) for points behind the reference camera: out of frame, then set to 0
SWAY_PERIOD = 11.0  # s


class Camera:
    """Intrinsics (focal f, principal point cx, cy in pixels; height hc in m), per-column and per-row constants,
    and the pose over time. Draws its pan and sway phases from `rng` (the scene's stream, first)."""

    def __init__(self, config: SceneConfig, rng: np.random.Generator) -> None:
        c = config
        self.config = config
        self.height, self.width = c.height, c.width
        self.f = c.focal * c.width
        self.cx = c.width / 2.0 - 0.5
        self.cy = c.horizon * c.height - 0.5
        self.hc = c.camera_height
        self._pan_phase, self._sway_phase = rng.uniform(0, 2 * math.pi, 2)
        self.u = np.arange(c.width, dtype=np.float64)  # column coordinates
        self.xn = (self.u - self.cx) / self.f  # columns on the normalised image plane
        self.u32 = self.u.astype(np.float32)[None, :]
        self.v32 = np.arange(c.height, dtype=np.float32)[:, None]

    def pose(self, time: float) -> tuple[float, float, float]:
        """Position x, z (m) and yaw (radians) at `time` seconds."""
        c = self.config
        x = EGO_X + c.sway * math.sin(2 * math.pi * time / SWAY_PERIOD + self._sway_phase)
        yaw = math.radians(c.pan_amplitude) * math.sin(2 * math.pi * time / c.pan_period + self._pan_phase)
        return x, c.speed * time, yaw

    def rays(self, yaw: float) -> tuple[np.ndarray, np.ndarray]:
        """Horizontal world direction (x, z) of each column's ray at this yaw (z_cam = 1), float64 [W] each."""
        cos, sin = math.cos(yaw), math.sin(yaw)
        return self.xn * cos + sin, -self.xn * sin + cos

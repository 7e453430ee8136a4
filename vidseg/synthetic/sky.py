"""The sky and the light: a colour gradient with clouds fixed in world directions (so their flow comes from the
camera's yaw alone), the haze colour distant surfaces fade to, and the global lighting drift over time."""

from __future__ import annotations

import math

import numpy as np

from vidseg.synthetic.atlas import Atlas, bilinear
from vidseg.synthetic.camera import Camera

__all__ = ["Sky"]


class Sky:
    """Sky colours and light of one scene. Draws the light's phases and the sky colours from `rng` (the scene's
    stream, after the camera's draws)."""

    def __init__(self, camera: Camera, atlas: Atlas, lighting: float, rng: np.random.Generator) -> None:
        self._camera = camera
        self._atlas = atlas
        self._lighting = lighting
        self._light_phase = rng.uniform(0, 2 * math.pi, 4)
        zenith = np.array([68, 118, 196]) * rng.uniform(0.9, 1.1, 3)
        horizon = np.array([188, 204, 226]) * rng.uniform(0.95, 1.05, 3)
        self.haze = (horizon * 0.97).astype(np.float32)
        self.colours = (horizon.astype(np.float32), zenith.astype(np.float32))  # (horizon, zenith) RGB
        xn = camera.xn
        self._cosa = (1.0 / (camera.f * np.sqrt(1.0 + xn**2))).astype(np.float32)[None]

    def gain(self, time: float) -> np.ndarray:
        """Global light gain per colour channel at `time` seconds (float32 [3]); constant when lighting is 0."""
        amp = self._lighting
        p = self._light_phase
        g = 1.0 + 0.14 * amp * math.sin(2 * math.pi * time / 9.0 + p[0])
        tint = [1.0 + 0.05 * amp * math.sin(2 * math.pi * time / 13.0 + p[1 + i]) for i in range(3)]
        return np.array([g * x for x in tint], np.float32)

    def columns(self, yaw: float) -> tuple[np.ndarray, np.ndarray]:
        """Cloud texel column (with the tile offset) and bilinear x fraction of each image column."""
        at = self._atlas
        tile = at.index["clouds"]
        tw = int(at.shape[tile][1])
        xf = (yaw + np.arctan(self._camera.xn)) / (2 * math.pi) * tw - 0.5
        ix = np.floor(xf)
        wx = np.floor((xf - ix) * 16 + 0.5).astype(np.int32)[None]
        return ((ix.astype(np.int64) % tw) + int(at.off[tile, 0])).astype(np.int32)[None], wx

    def pixels(self, ra: int, pixels: np.ndarray, sky_cols: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Sky colour [3, n] of the given pixels (flat indices into rows ra..; sky_cols from `columns`): a gradient
        and clouds fixed in world directions (azimuth, height on the unit cylinder)."""
        horizon, zenith = self.colours
        at = self._atlas
        tile = at.index["clouds"]
        th = int(at.shape[tile][0])
        stride = int(at.stride[tile, 0])
        row, column = np.divmod(pixels, self._camera.width)
        h = (np.float32(self._camera.cy - ra) - row.astype(np.float32)) * self._cosa[0].take(column)
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
        cloud = (bilinear(at.data, iy, np.int32(stride), wx, yf.astype(np.int32)) & np.uint32(255))
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

"""The sky and the light: a colour gradient with clouds fixed in world directions (so their flow comes from the
camera's yaw alone), the distant hills on the horizon (at infinity too: the same flow as the sky behind them, but
their own surface id and label), the haze colour distant surfaces fade to, and the global lighting drift over
time."""

from __future__ import annotations

import math

import numpy as np

from vidseg.synthetic.atlas import Atlas, bilinear
from vidseg.synthetic.camera import Camera
from vidseg.synthetic.street import TERRAIN, VEGETATION

__all__ = ["Sky", "HILLS_ID"]

HILLS_ID = -1  # surface id of the distant hills (0 is the sky, 1 the ground, >= 2 box faces)
_HARMONICS = 12  # the hills' ridge: a sum of this many harmonics of the azimuth


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
        config = camera.config
        overcast = float(np.clip((config.clouds - 1.0) / 2.0, 0.0, 1.0))
        grey = np.array([196.0, 198.0, 204.0])
        if overcast:  # an overcast sky loses its blue
            zenith = zenith + (grey - zenith) * 0.75 * overcast
            horizon = horizon + (grey - horizon) * 0.6 * overcast
        self._cover = min(float(config.clouds), 1.0)
        self._overcast = overcast
        self.haze = (horizon * 0.97).astype(np.float32)
        self.colours = (horizon.astype(np.float32), zenith.astype(np.float32))  # (horizon, zenith) RGB
        xn = camera.xn
        self._cosa = (1.0 / (camera.f * np.sqrt(1.0 + xn**2))).astype(np.float32)[None]
        self._hills = _Hills(config, atlas) if config.hills > 0 else None

    @property
    def hill_class(self) -> int | None:
        """The hills' label (trainId), None when the scene has none."""
        return None if self._hills is None else self._hills.cls

    def ridges(self, yaw: float) -> np.ndarray | None:
        """The lowest image row (float, per column) still above the hills' ridge at this yaw: a sky-slot pixel
        of row v is a hill pixel when v > ridges[col]. None without hills."""
        if self._hills is None:
            return None
        top = self._hills.top(yaw + np.arctan(self._camera.xn))
        return (self._camera.cy - top / self._cosa[0]).astype(np.float32)[None]

    def gain(self, time: float) -> np.ndarray:
        """Global light gain per colour channel at `time` seconds (float32 [3]); constant when lighting is 0."""
        amp = self._lighting
        p = self._light_phase
        g = 1.0 + 0.14 * amp * math.sin(2 * math.pi * time / 9.0 + p[0])
        tint = [1.0 + 0.05 * amp * math.sin(2 * math.pi * time / 13.0 + p[1 + i]) for i in range(3)]
        return np.array([g * x for x in tint], np.float32)

    def columns(self, yaw: float) -> tuple:
        """Cloud texel column (with the tile offset) and bilinear x fraction of each image column; with hills,
        also their texel columns."""
        cols, wx = _tile_columns(self._atlas, "clouds", yaw + np.arctan(self._camera.xn))
        if self._hills is None:
            return cols, wx
        return cols, wx, self._hills.columns(yaw + np.arctan(self._camera.xn))

    def pixels(self, ra: int, pixels: np.ndarray, sky_cols: tuple[np.ndarray, np.ndarray],
               hills: np.ndarray | None = None) -> np.ndarray:
        """Sky colour [3, n] of the given pixels (flat indices into rows ra..; sky_cols from `columns`): a gradient
        and clouds fixed in world directions (azimuth, height on the unit cylinder); where `hills` (bool [n]) is
        set, the hills' colour instead."""
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
        cloud *= np.float32(self._cover / 255.0)
        if self._overcast:
            cloud += (np.float32(1.0) - cloud) * np.float32(0.6 * self._overcast)
        grad = np.clip(h * np.float32(2.2), 0, 1)
        out = np.empty((3, len(pixels)), np.float32)
        for c in range(3):
            o = out[c]
            np.multiply(grad, zenith[c] - horizon[c], out=o)
            o += horizon[c]
            o += (np.float32(238.0) - o) * cloud
        if hills is not None and hills.any():
            sel = np.flatnonzero(hills)
            out[:, sel] = self._hills.colour(h[sel], column.take(sel), sky_cols[2], self.haze)
        return out



def _tile_columns(atlas: Atlas, name: str, azimuth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Texel column (with the tile's offset) and bilinear x fraction (1/16) of an azimuth-addressed tile."""
    tile = atlas.index[name]
    tw = int(atlas.shape[tile][1])
    xf = azimuth / (2 * math.pi) * tw - 0.5
    ix = np.floor(xf)
    wx = np.floor((xf - ix) * 16 + 0.5).astype(np.int32)[None]
    return ((ix.astype(np.int64) % tw) + int(atlas.off[tile, 0])).astype(np.int32)[None], wx


class _Hills:
    """A ridge of hills all around the horizon, at infinity: its top is a smooth function of the azimuth (a sum of
    harmonics with random amplitudes and phases from the scene's own stream), its height `config.hills` (tangent
    of the elevation) at most. A nearer, lower ridge is less hazed than the far one. Forested hills (vegetation)
    over grass terrain, bare ones (terrain) over dry or meadow terrain."""

    def __init__(self, config, atlas: Atlas) -> None:
        rng = np.random.default_rng([config.seed, 31])
        k = np.arange(1, _HARMONICS + 1)
        self._amp = rng.standard_normal((2, _HARMONICS)) / k**1.3
        self._phase = rng.uniform(0, 2 * math.pi, (2, _HARMONICS))
        self._k = k
        self._height = float(config.hills)
        forest = config.terrain == "grass"
        self.cls = VEGETATION if forest else TERRAIN
        self._tile = "hills_forest" if forest else "hills_bare"
        self._atlas = atlas

    def _ridge(self, azimuth: np.ndarray, layer: int) -> np.ndarray:
        wave = (self._amp[layer, :, None] * np.sin(self._k[:, None] * azimuth[None] + self._phase[layer, :, None]))
        wave = wave.sum(0)
        return 0.5 + 0.5 * np.tanh(1.6 * wave)  # 0 .. 1

    def _near(self, azimuth: np.ndarray) -> np.ndarray:
        return self._height * 0.75 * self._ridge(azimuth, 1)

    def top(self, azimuth: np.ndarray) -> np.ndarray:
        """The hills' top per column (elevation tangent): the higher of the far and the near ridge."""
        return np.maximum(self._height * (0.35 + 0.65 * self._ridge(azimuth, 0)), self._near(azimuth))

    def columns(self, azimuth: np.ndarray) -> tuple:
        """Texel columns and x fractions of the hills' tile, and the near ridge's top, per image column."""
        return (*_tile_columns(self._atlas, self._tile, azimuth), self._near(azimuth).astype(np.float32)[None])

    def colour(self, h: np.ndarray, column: np.ndarray, cols: tuple, haze: np.ndarray) -> np.ndarray:
        """Colour [3, n] of hill pixels at elevation h (tangent) in image columns `column`: the tile, sampled in
        elevation x azimuth, hazed: the near ridge keeps 80 % of its colour, the far one 60 %."""
        at = self._atlas
        tile = at.index[self._tile]
        th = int(at.shape[tile][0])
        stride = int(at.stride[tile, 0])
        tcols, wx, near = cols
        yf = h * np.float32(th / 0.32) - np.float32(0.5)
        np.clip(yf, 0, th - 1.01, out=yf)
        iy = yf.astype(np.int32)
        wy = ((yf - iy) * np.float32(16) + np.float32(0.5)).astype(np.int32)
        px = bilinear(at.data, iy * stride + tcols[0].take(column), np.int32(stride), wx[0].take(column), wy)
        keep = np.where(h < near[0].take(column), np.float32(0.8), np.float32(0.6))
        out = np.empty((3, len(h)), np.float32)
        for c in range(3):
            col = ((px >> np.uint32(8 * c)) & np.uint32(255)).astype(np.float32)
            out[c] = col * keep + haze[c] * (np.float32(1.0) - keep)
        return out

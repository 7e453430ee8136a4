"""The ground plane Y = 0: road with lane markings, sidewalks (none on rural roads), terrain (grass, dry grass or
a meadow, `SceneConfig.terrain`), and the soft contact shadows on it.

The ground's depth depends only on the image row, so its texture level, footprint and depth are per-row
constants; its flow to another camera and its look (labels, texels, markings) are computed per pixel, in bands
of rows, by the renderer.
"""

from __future__ import annotations

import math

import numpy as np

from vidseg.synthetic.atlas import Atlas
from vidseg.synthetic.camera import BEHIND, NEAR, Camera
from vidseg.synthetic.street import ROAD, ROAD_HALF, SIDEWALK, SIDEWALK_EDGE, TERRAIN

__all__ = ["Ground", "LANE_WHITE", "LANE_YELLOW"]

LANE_WHITE = np.float32(230.0)  # lane marking colours
LANE_YELLOW = (np.float32(225.0), np.float32(185.0), np.float32(60.0))
_TERRAIN_TILES = {"grass": "grass", "dry": "dry_grass", "meadow": "meadow"}  # SceneConfig.terrain -> tile


def _texel(sinv: np.ndarray, ray: np.ndarray, offset: np.float32, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Texel index (wrapped by mask) and bilinear fraction (1/16) along one ground axis: coordinate sinv * ray +
    offset, in texels of the row's level."""
    f = sinv * ray
    f += offset
    i = f.astype(np.int32)
    f -= i
    f *= np.float32(16)
    f += np.float32(0.5)
    w = f.astype(np.int32)
    i &= mask
    return i, w


class Ground:
    """Per-row constants of the ground seen by `camera` (rows g0.. below the horizon), and its per-pixel passes.
    Methods take row ranges ga..gb counted from g0."""

    def __init__(self, camera: Camera, atlas: Atlas) -> None:
        self._cam = camera
        self._atlas = atlas
        self._f, self._cx, self._cy, self._hc = camera.f, camera.cx, camera.cy, camera.hc
        self._u32, self._v32 = camera.u32, camera.v32
        self.height, self.width = camera.height, camera.width
        # Open roads have no sidewalks: terrain (the verge) starts at the road's edge.
        self._walk_edge = np.float32(ROAD_HALF if camera.config.setting == "rural" else SIDEWALK_EDGE)
        self._terrain = _TERRAIN_TILES[camera.config.terrain]
        self.g0 = min(camera.height, max(0, int(math.floor(self._cy)) + 1))  # first ground row (v > cy)
        vg = np.arange(self.g0, camera.height, dtype=np.float64)
        self.depth = self._f * self._hc / (vg - self._cy)  # ground depth per row
        self.depth32 = self.depth.astype(np.float32)[:, None]  # [rows, 1], the z-buffer's ground depth
        self._rows()

    def _rows(self) -> None:
        """Texture level, addressing and pixel footprint per row."""
        at = self._atlas
        s = self.depth
        tex_ids = [at.index["asphalt"], at.index["paving"], at.index[self._terrain]]
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

    def ref(self, rx, rz, camx, camz, rcx, rcz, ryaw) -> tuple:
        """Per-frame constants of the ground's flow to one reference camera."""
        c2, s2 = math.cos(ryaw), math.sin(ryaw)
        dx, dz = camx - rcx, camz - rcz
        g1 = (rx * c2 - rz * s2).astype(np.float32)[None]
        g2 = (rx * s2 + rz * c2).astype(np.float32)[None]
        return g1, g2, np.float32(dx * c2 - dz * s2), np.float32(dx * s2 + dz * c2), float(g2.min())

    def flow(self, ga, gb, ref) -> tuple[np.ndarray, np.ndarray, bool]:
        """Backward flow of ground rows ga..gb (from g0) to a reference camera: (fx, fy, maybe_behind); a point
        behind that camera gets the BEHIND sentinel."""
        f, cx, cy, hc = self._f, self._cx, self._cy, self._hc
        g1, g2, k1, k2, g2min = ref
        s = self.depth32[ga:gb]
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
        fy += np.float32(cy) - self._v32[self.g0 + ga:self.g0 + gb]
        if maybe_behind:
            np.copyto(fx, np.float32(BEHIND), where=bad)
            np.copyto(fy, np.float32(BEHIND), where=bad)
        return fx, fy, maybe_behind

    def look(self, ga, gb, rx32, rz32, camx, camz):
        """Labels, texel indices and lane-marking coverage (white, yellow) of ground rows ga..gb (from g0)."""
        r = slice(ga, gb)
        s = self.depth32[r]
        inv, mask, stride = self._g_inv[r], self._g_mask[r], self._g_stride[r]
        period = self._g_period
        x = s * rx32
        x += np.float32(camx)
        ax = np.abs(x, out=x)
        road = ax < ROAD_HALF
        walk = ax < self._walk_edge
        labels = np.where(road, np.uint8(ROAD), np.where(walk, np.uint8(SIDEWALK), np.uint8(TERRAIN)))
        sinv = s * inv
        kx = np.float32(camx + 64 * period) * inv - np.float32(0.5)  # positive texel coordinates (tiles repeat)
        kz = np.float32(camz % period + 64 * period) * inv - np.float32(0.5)
        ix, wx = _texel(sinv, rx32, kx, mask)
        iz, wz = _texel(sinv, rz32, kz, mask)
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

    def shadows(self, casters, time, camx, camz, cos, sin) -> np.ndarray | None:
        """Soft contact shadows under vehicles and people: a multiplier for the ground rows (or None)."""
        f, cx, cy, hc, g0 = self._f, self._cx, self._cy, self._hc, self.g0
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
            s = self.depth[r0 - g0:r1 - g0].astype(np.float32)[:, None]
            xn = self._cam.xn[c0:c1]
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


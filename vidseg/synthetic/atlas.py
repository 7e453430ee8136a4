"""The texture atlas: every tile and its mip levels packed into one uint32 (RGBA) array, and the bilinear fetch
the renderer samples it with (vectorised over pixels, integer arithmetic in 1/16 texel steps)."""

from __future__ import annotations

import functools

import numpy as np

from vidseg.synthetic.textures import make_tiles

__all__ = ["Atlas", "atlas_for_seed", "face_texels", "bilinear", "LG_SHIFT"]


class Atlas:
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
def atlas_for_seed(seed: int) -> Atlas:
    """The texture atlas of a seed (pure function of the seed, read-only, so scenes of one seed share it)."""
    atlas = Atlas(make_tiles(seed))
    atlas.data.setflags(write=False)
    return atlas


LG_SHIFT = 26  # tinfo = texel index of (row 0, column) | log2(rows) << LG_SHIFT


def face_texels(v, flat, ay, by, ytop, tinfo, xinfo):
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
    iy &= (1 << (ti >> LG_SHIFT)) - 1
    iy *= stride
    ti &= (1 << LG_SHIFT) - 1
    iy += ti
    return iy, stride, xi & 31, yf.astype(np.int32)


def bilinear(data: np.ndarray, i00: np.ndarray, stride: np.ndarray, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
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


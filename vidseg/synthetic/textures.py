"""Texture tiles of the synthetic street: asphalt, paving, grass, facades, walls, fences, leaves, bark, metal,
clouds, and decals (vehicle sides and ends, people, traffic signs, traffic lights); and of open roads: dry grass,
meadow, distant hills.

Tiles are RGBA (alpha = how much the surface's tint applies; 0 keeps the texel's own colour), y-up (row 0 at the
bottom of a face / at Z = 0 on the ground) and power-of-two sized, so that `atlas.Atlas` can mip-map them. All
randomness comes from the seed, so a seed's tiles are always the same.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["make_tiles"]


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


def make_tiles(seed: int) -> dict[str, tuple[np.ndarray, float]]:
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
    _add_landscape_tiles(tiles, np.random.default_rng([seed, 8]))
    return tiles


def _add_landscape_tiles(tiles: dict[str, tuple[np.ndarray, float]], rng: np.random.Generator) -> None:
    """Tiles of open roads, from their own random stream so the street's tiles stay as they were: dry grass
    and a meadow of green and dry patches (ground tiles like "grass": 256 x 256 texels of 3 cm), and the two
    looks of distant hills (elevation x azimuth, like the clouds: 64 rows over 0 .. 0.32 of the unit cylinder,
    1024 columns around the horizon)."""
    n = 256
    streak = _noise(rng, (n, n), (6.0, 0.7))  # straw lies along the road: streaks along Z (rows)
    fine, patch = _noise(rng, (n, n), 0.8), _noise(rng, (n, n), 14)
    v = 0.72 + 0.09 * streak + 0.05 * fine + 0.07 * patch
    dry = np.stack([190 * v, 162 * v, 104 * v], -1)
    dry[patch < -1.3] *= 0.7  # bare soil
    green = _noise(rng, (n, n), 3.0) > 1.4  # a few green tufts
    dry[green] = dry[green] * np.array([0.62, 0.85, 0.55])
    tiles["dry_grass"] = (_rgba(dry, 0), 0.03)
    grass = tiles["grass"][0][..., :3].astype(np.float64)
    mix = np.clip(0.5 + 0.9 * _noise(rng, (n, n), 22), 0, 1)[..., None]  # ~1 m patches, soft edges
    tiles["meadow"] = (_rgba(mix * dry + (1 - mix) * grass, 0), 0.03)

    h, w = 64, 1024
    canopy = _noise(rng, (h, w), (1.2, 2.5)) + 0.5 * _noise(rng, (h, w), (4, 12))
    v = np.clip(0.75 + 0.18 * canopy, 0.3, 1.2)
    tiles["hills_forest"] = (_rgba(np.stack([52 * v, 78 * v, 50 * v], -1), 0), 2 * math.pi / w)
    slope = _noise(rng, (h, w), (6, 30))
    bush = _noise(rng, (h, w), (0.8, 1.5)) > 1.6
    v = np.clip(0.85 + 0.12 * slope + 0.05 * _noise(rng, (h, w), 1.0), 0.5, 1.2)
    bare = np.stack([172 * v, 148 * v, 100 * v], -1)
    bare[bush] = (70, 78, 52)
    tiles["hills_bare"] = (_rgba(bare, 0), 2 * math.pi / w)

"""What stands beside suburban and rural roads (`SceneConfig.setting`); the city street's cells are in street.py.

Each function fills one 15 m cell on one side of the road with boxes, as `StreetLayout` does for the city, from
the cell's own random stream (so any stretch of road comes out the same), and at most 16 boxes per cell side.

- suburb: low houses set back behind front yards (hedges, fences, low walls), yard and sidewalk trees, lamp
  poles and signs, and open lots with trees farther back.
- rural: no sidewalk; the verge and fields are terrain. Bushes on the verge, a fence along the field, rows of
  trees across the fields, the edge of a wood farther back (one long vegetation face with a ragged top), utility
  poles with a crossarm, the odd sign, and now and then a farm building far from the road.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vidseg.synthetic.street import (
    BUILDING,
    CELL,
    FENCE,
    POLE,
    SIDEWALK_EDGE,
    TRAFFIC_SIGN,
    VEGETATION,
    WALL,
    Builder,
    Look,
)

__all__ = ["suburb_cell", "rural_cell"]

_SIGNS = {"prohibitory": "sign_disc", "mandatory": "sign_disc", "warning": "sign_tri", "information": "sign_rect"}


def _xs(side: float, a: float, b: float) -> tuple[float, float]:
    """X range of something from |X| = a to b on this side of the road."""
    return min(side * a, side * b), max(side * a, side * b)


def _sign(layout, b: Builder, uid: Callable[[], int], rng, side: float, z0: float, z1: float, x: float) -> None:
    """A traffic sign on its post at |X| = x."""
    zp = rng.uniform(z0 + 0.5, z1 - 0.5)
    kind = str(rng.choice(list(_SIGNS)))
    metal = layout.tiled("metal", "flat")
    px0, px1 = _xs(side, x - 0.04, x + 0.04)
    b.box(uid(), px0, px1, zp + 0.06, zp + 0.14, 0.0, POLE, 2.6, (0.8, 0.8, 0.8), {0: metal, 1: metal, 2: metal})
    face = layout.decal("sign_" + kind, 0.7, 0.7, _SIGNS[kind], yoff=-2.0)
    back = Look(layout.outlines.ids[_SIGNS[kind]], layout.atlas.index["metal"], 0.02, 0.02)
    b.box(uid(), side * x - 0.35, side * x + 0.35, zp, zp + 0.04, 0.0, TRAFFIC_SIGN, 1.0, (0.7, 0.7, 0.7),
          {0: face, 3: back, 1: back, 2: back})


def _bush(layout, b: Builder, uid: int, rng, x: float, z: float) -> None:
    """A low rounded bush (vegetation) centred at (x, z)."""
    r = rng.uniform(0.5, 1.4)
    a = np.linspace(0, 1, 9)
    dome = np.sqrt(np.clip(1 - (2 * a - 1) ** 2, 0, 1))
    top = rng.uniform(0.6, 1.6) * (0.35 + 0.65 * dome) + 0.08 * rng.standard_normal(9)
    prof = layout.outlines.add((a, np.maximum(top, 0.2)), (a, np.zeros(9)))
    look = layout.tiled("leaves", prof, rng.uniform(0, 5))
    tint = np.array([0.85, 0.95, 0.7]) * rng.uniform(0.7, 1.1, 3)
    b.box(uid, x - r, x + r, z - r * 0.8, z + r * 0.8, 0.0, VEGETATION, 1.0, tint, {0: look, 1: look, 2: look, 3: look})


def suburb_cell(layout, b: Builder, rng, uid: Callable[[], int], k: int, side: float) -> None:
    """Houses behind yards, or an open lot (see the module docstring)."""
    z0, z1 = k * CELL, (k + 1) * CELL
    front = SIDEWALK_EDGE + rng.uniform(4.0, 12.0)
    road_face = 2 if side > 0 else 1
    if rng.random() < 0.7:  # a house, shorter than the cell: gaps between houses show what is behind
        length = rng.uniform(8.0, 13.0)
        za = rng.uniform(z0, z1 - length)
        palette = [(1.0, 0.95, 0.85), (0.95, 0.85, 0.75), (0.9, 0.9, 0.92), (0.85, 0.7, 0.6), (0.95, 0.92, 0.8)]
        tint = np.array(palette[rng.integers(len(palette))]) * rng.uniform(0.85, 1.1, 3)
        facade = layout.tiled(f"facade{rng.integers(4)}", "flat", aoff=rng.uniform(0, 12.8))
        x0, x1 = _xs(side, front, front + rng.uniform(8.0, 12.0))
        b.box(uid(), x0, x1, za, za + length, 0.0, BUILDING, rng.uniform(3.5, 8.0), tint,
              {road_face: facade, 0: facade, 3: facade})
        kind = rng.choice(["hedge", "fence", "wall", "none"], p=[0.4, 0.25, 0.15, 0.2])
        if kind != "none":
            cls, tile, low, high = {"wall": (WALL, "wall", 0.5, 1.2), "fence": (FENCE, "fence", 0.8, 1.5),
                                    "hedge": (VEGETATION, "leaves", 0.7, 1.6)}[kind]
            t_ = (np.array([0.8, 1.0, 0.8]) if kind == "hedge" else np.ones(3)) * rng.uniform(0.8, 1.1, 3)
            look = layout.tiled(tile, "flat", rng.uniform(0, 5))
            wx0, wx1 = _xs(side, SIDEWALK_EDGE + 0.1, SIDEWALK_EDGE + 0.4)
            gate = rng.uniform(z0 + 3, z1 - 5)
            for za_, zb_ in ((z0 + 0.3, gate), (gate + 2.5, z1 - 0.3)):
                b.box(uid(), wx0, wx1, za_, zb_, 0.0, cls, rng.uniform(low, high), t_,
                      {road_face: look, 0: look, 3: look})
        for _ in range(rng.integers(0, 3)):
            layout.tree(b, uid(), uid(), rng, side * rng.uniform(SIDEWALK_EDGE + 1.5, front - 1.0),
                        rng.uniform(z0 + 2, z1 - 2))
    else:  # an open lot: trees and bushes farther back
        for _ in range(rng.integers(1, 4)):
            layout.tree(b, uid(), uid(), rng, side * rng.uniform(SIDEWALK_EDGE + 3, 40.0), rng.uniform(z0, z1))
        if rng.random() < 0.5:
            _bush(layout, b, uid(), rng, side * rng.uniform(SIDEWALK_EDGE + 1, 20.0), rng.uniform(z0, z1))
    if rng.random() < 0.5:
        layout.tree(b, uid(), uid(), rng, side * 8.2, rng.uniform(z0 + 1, z1 - 1))
    if rng.random() < 0.35:
        zp = rng.uniform(z0, z1 - 0.2)
        metal = layout.tiled("metal", "flat")
        px0, px1 = _xs(side, 7.26, 7.44)
        b.box(uid(), px0, px1, zp, zp + 0.18, 0.0, POLE, rng.uniform(6.0, 8.0),
              np.array([0.8, 0.82, 0.85]) * rng.uniform(0.6, 1.1), {0: metal, 1: metal, 2: metal})
    if rng.random() < 0.2:
        _sign(layout, b, uid, rng, side, z0, z1, 7.35)


def rural_cell(layout, b: Builder, rng, uid: Callable[[], int], k: int, side: float) -> None:
    """An open road's verge and fields (see the module docstring)."""
    z0, z1 = k * CELL, (k + 1) * CELL
    road_face = 2 if side > 0 else 1
    for _ in range(rng.integers(0, 3)):  # bushes on the verge
        _bush(layout, b, uid(), rng, side * rng.uniform(8.0, 15.0), rng.uniform(z0, z1))
    if rng.random() < layout.rural["fence"]:  # a fence along the field
        x = rng.uniform(9.0, 12.0)
        look = layout.tiled("fence", "flat", rng.uniform(0, 5))
        fx0, fx1 = _xs(side, x, x + 0.12)
        b.box(uid(), fx0, fx1, z0, z1, 0.0, FENCE, rng.uniform(0.9, 1.4), np.array([0.9, 0.8, 0.65]) *
              rng.uniform(0.7, 1.1), {road_face: look, 0: look, 3: look})
    elif rng.random() < 0.15:  # or a low stone wall
        look = layout.tiled("wall", "flat", rng.uniform(0, 5))
        wx0, wx1 = _xs(side, 9.5, 9.9)
        b.box(uid(), wx0, wx1, z0, z1, 0.0, WALL, rng.uniform(0.5, 1.0), np.array([0.85, 0.82, 0.75]) *
              rng.uniform(0.8, 1.1, 3), {road_face: look, 0: look, 3: look})
    if rng.random() < layout.rural["trees"]:  # a row of trees across the field
        x = rng.uniform(12.0, 35.0)
        for _ in range(rng.integers(1, 4)):
            layout.tree(b, uid(), uid(), rng, side * (x + rng.uniform(-1.5, 1.5)), rng.uniform(z0, z1))
    if rng.random() < layout.rural["wood"]:  # the edge of a wood: one long face with a ragged top
        x = rng.uniform(25.0, 70.0)
        a = np.linspace(0, 1, 25)
        top = rng.uniform(8.0, 15.0) + np.cumsum(rng.normal(0, 0.9, 25))
        prof = layout.outlines.add((a, np.maximum(top, 4.0)), (a, np.zeros(25)))
        look = layout.tiled("leaves", prof, rng.uniform(0, 5))
        tint = np.array([0.75, 0.9, 0.7]) * rng.uniform(0.6, 1.0, 3)
        wx0, wx1 = _xs(side, x, x + 20.0)
        b.box(uid(), wx0, wx1, z0, z1, 0.0, VEGETATION, 1.0, tint, {road_face: look, 0: look, 3: look})
    elif rng.random() < 0.08:  # a farm building far back
        facade = layout.tiled(f"facade{rng.integers(4)}", "flat", aoff=rng.uniform(0, 12.8))
        x = rng.uniform(30.0, 80.0)
        bx0, bx1 = _xs(side, x, x + rng.uniform(8, 15))
        za = rng.uniform(z0, z1 - 8.0)
        b.box(uid(), bx0, bx1, za, za + 8.0, 0.0, BUILDING, rng.uniform(4.0, 8.0),
              np.array([0.95, 0.85, 0.75]) * rng.uniform(0.7, 1.1, 3), {road_face: facade, 0: facade, 3: facade})
    if k % 3 == 0:  # utility poles with a crossarm, every 45 m
        zp = z0 + 2.0
        wood = layout.tiled("bark", "flat")
        height = 9.0
        px0, px1 = _xs(side, 8.8, 9.1)
        brown = np.array([0.75, 0.65, 0.55])
        b.box(uid(), px0, px1, zp, zp + 0.3, 0.0, POLE, height, brown, {0: wood, 1: wood, 2: wood, 3: wood})
        arm = layout.tiled("bark", layout.rural["arm"])
        ax0, ax1 = _xs(side, 8.0, 9.9)
        b.box(uid(), ax0, ax1, zp + 0.1, zp + 0.2, 0.0, POLE, height, brown, {0: arm, 3: arm, 1: arm, 2: arm})
    if rng.random() < 0.15:
        _sign(layout, b, uid, rng, side, z0, z1, 7.6)

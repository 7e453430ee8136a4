"""The street: what is where and how it moves.

The world (metres): X right, Y up, Z forward along a straight four-lane road centred on X = 0. Content is
axis-aligned boxes whose vertical faces are the surfaces: static ones generated per 15 m cell and side of the road
(building blocks, yard walls, fences and hedges, trees, lamp poles, signs, traffic lights) and moving ones per
slot of a moving group (vehicles in four lanes, cyclists, pedestrians), each box from its own random stream, so
any stretch of road can be generated on its own and always comes out the same.

A face row (one per visible box face; columns OX .. SHADE) holds its origin at time 0, unit direction e along
it, length, outward normal n, velocity, class (Cityscapes trainId), stable surface id, outline, texture mapping
(tile, metres per texel along the face and up, offsets), tint and shading.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from vidseg.synthetic.atlas import Atlas
from vidseg.synthetic.config import SceneConfig
from vidseg.synthetic.outlines import Outlines

__all__ = ["StreetLayout", "Builder", "Look"]

# Cityscapes trainIds (vidseg.classes.CITYSCAPES), the classes the street is labelled with.
(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION, TERRAIN, SKY, PERSON,
 RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE) = range(19)

ROAD_HALF = 7.0  # four 3.5 m lanes: two oncoming (X < 0), two in the camera's direction (X > 0)
SIDEWALK_EDGE = 11.0  # sidewalks from |X| = 7 to 11; terrain (front yards) beyond, up to the buildings
EGO_X = 1.75  # the camera's lane
CELL = 15.0  # static content is generated per 15 m cell and side of the road
CHUNK = 16  # cells (static) or slots (moving groups) generated and cached together
_SUN = (0.6, -0.8)  # horizontal direction the light comes from, for per-face shading

# Face table columns (one row per box face; float64).
(OX, OZ, EX, EZ, LEN, NX, NZ, VX, VZ, CLS, SID, PROF, HS, TILE, SX, SY, AOFF, YOFF, TR, TG, TB, SHADE) = range(22)
_NCOL = 22

_BOX_GEOMETRY = {  # face -> (origin, direction, length, normal) given x0, x1, z0, z1
    0: lambda x0, x1, z0, z1: (x0, z0, 1.0, 0.0, x1 - x0, 0.0, -1.0),  # -Z face
    1: lambda x0, x1, z0, z1: (x1, z0, 0.0, 1.0, z1 - z0, 1.0, 0.0),  # +X face
    2: lambda x0, x1, z0, z1: (x0, z0, 0.0, 1.0, z1 - z0, -1.0, 0.0),  # -X face
    3: lambda x0, x1, z0, z1: (x0, z1, 1.0, 0.0, x1 - x0, 0.0, 1.0),  # +Z face
}


@dataclass(frozen=True)
class Look:
    """How a face looks: outline profile, tile, metres per texel (sx along the face, sy up), offsets."""

    prof: int
    tile: int
    sx: float
    sy: float
    aoff: float = 0.0
    yoff: float = 0.0


class Builder:
    """Accumulates face rows for one chunk of content."""

    def __init__(self):
        self.rows: list[tuple] = []
        self.casters: list[tuple] = []  # shadow casters: x0, x1, z0, z1, vz

    def box(self, uid: int, x0, x1, z0, z1, vz, cls, hs, tint, looks: dict[int, Look], shadow=False):
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


class StreetLayout:
    """The content of one scene (config and seed): `content(time, cz)` gives the face table around the camera.

    Draws its moving groups from `rng` (the scene's stream, after the camera's and the sky's draws); caches
    content per chunk of road (not thread-safe). `outlines` grows as tree crowns are generated; `lod` is the
    distance (m) up to which each class is drawn (small things appear nearer).
    """

    def __init__(self, config: SceneConfig, atlas: Atlas, rng: np.random.Generator) -> None:
        self.config = config
        self._atlas = self.atlas = atlas
        self.outlines = Outlines()
        self._prof = self.outlines.ids
        if config.setting == "rural":  # per-scene densities of the open road's content, from its own stream
            dens = np.random.default_rng([config.seed, 37]).uniform((0.2, 0.2, 0.1), (0.8, 0.7, 0.6))
            arm = self.outlines.add((np.array([0.0, 1.0]), np.full(2, 0.96)), (np.array([0.0, 1.0]), np.full(2, 0.93)))
            self.rural = {"fence": dens[0], "trees": dens[1], "wood": dens[2], "arm": arm}
        self._groups = self._make_groups(rng)
        self._chunks: OrderedDict = OrderedDict()
        lod = np.ones(19)
        lod[[PERSON, RIDER, BICYCLE, MOTORCYCLE]] = 0.4
        lod[[POLE, TRAFFIC_SIGN, TRAFFIC_LIGHT]] = 0.5
        lod[[VEGETATION, WALL, FENCE]] = 0.65
        lod[[CAR, TRUCK, BUS]] = 0.8
        self.lod = lod * config.view_distance

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

    def decal(self, name: str, length: float, height: float, prof: str | int, yoff: float = 0.0) -> Look:
        tile = self._atlas.index[name]
        th, tw = self._atlas.shape[tile]
        prof_id = self._prof[prof] if isinstance(prof, str) else prof
        return Look(prof_id, tile, length / tw, height / th, 0.0, yoff)

    def tiled(self, name: str, prof: str | int, aoff: float = 0.0) -> Look:
        tile = self._atlas.index[name]
        texel = float(self._atlas.texel[tile])
        prof_id = self._prof[prof] if isinstance(prof, str) else prof
        return Look(prof_id, tile, texel, texel, aoff, 0.0)

    def _chunk(self, key: tuple) -> tuple[np.ndarray, np.ndarray]:
        got = self._chunks.get(key)
        if got is not None:
            self._chunks.move_to_end(key)
            return got
        builder = Builder()
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

    def _static_cell(self, b: Builder, k: int, side: int) -> None:
        """Buildings, yards, walls/fences/hedges, trees, lamps, signs and traffic lights of one cell side (the
        city's; suburbs and open roads: `roadside`)."""
        rng = np.random.default_rng([self.config.seed, 11, k + 2**21, side + 1])
        base_uid = ((k + 2**21) * 2 + (side > 0)) * 16
        n = 0

        def uid():  # at most 16 boxes per cell side: 16 ids are reserved
            nonlocal n
            n += 1
            if n > 16:
                raise AssertionError(f"cell {k} side {side} has more than 16 boxes")
            return base_uid + n - 1

        if self.config.setting != "city":
            from vidseg.synthetic import roadside

            fill = roadside.rural_cell if self.config.setting == "rural" else roadside.suburb_cell
            fill(self, b, rng, uid, k, float(side))
            return

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
        facade = self.tiled(f"facade{rng.integers(4)}", "flat", aoff=rng.uniform(0, 12.8))
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
                look = self.tiled(tile, "flat", rng.uniform(0, 5))
                gate = rng.uniform(z0 + 3, z1 - 5)
                wx0, wx1 = xs(SIDEWALK_EDGE + 0.1, SIDEWALK_EDGE + 0.35)
                for za, zb in ((z0 + 0.3, gate), (gate + 1.6, z1 - 0.3)):
                    b.box(uid(), wx0, wx1, za, zb, 0.0, cls, h, t_, {road_face: look, 0: look, 3: look})
            for _ in range(rng.integers(0, 3)):
                self.tree(b, uid(), uid(), rng, s * rng.uniform(SIDEWALK_EDGE + 1.5, front - 1.0),
                           rng.uniform(z0 + 2, z1 - 2))
        # Sidewalk trees, lamp poles, signs, traffic lights.
        if rng.random() < 0.45:
            self.tree(b, uid(), uid(), rng, s * 8.2, rng.uniform(z0 + 1, z1 - 1))
        metal = self.tiled("metal", "flat")
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
            face = self.decal("sign_" + kind, 0.7, 0.7, prof, yoff=-2.0)
            back = Look(self._prof[prof], self._atlas.index["metal"], 0.02, 0.02)
            b.box(uid(), sx0, sx1, zp, zp + 0.04, 0.0, TRAFFIC_SIGN, 1.0, (0.7, 0.7, 0.7),
                  {0: face, 3: back, 1: back, 2: back})
        if k % 7 == 3:
            zp = z0 + 1.0
            px0, px1 = xs(7.27, 7.43)
            dark = (0.45, 0.45, 0.45)
            b.box(uid(), px0, px1, zp + 0.1, zp + 0.26, 0.0, POLE, 4.4, dark, {0: metal, 1: metal, 2: metal})
            lit = self.decal(f"tlight{rng.integers(3)}", 0.36, 1.0, "tlight", yoff=-3.2)
            housing = Look(self._prof["tlight"], self._atlas.index["metal"], 0.02, 0.02)
            b.box(uid(), s * 7.35 - 0.18, s * 7.35 + 0.18, zp, zp + 0.3, 0.0, TRAFFIC_LIGHT, 1.0, (0.3, 0.3, 0.3),
                  {0: lit, 1: housing, 2: housing, 3: housing})

    def tree(self, b: Builder, uid_trunk: int, uid_crown: int, rng, x: float, z: float) -> None:
        trunk_h = rng.uniform(2.2, 3.0)
        b.box(uid_trunk, x - 0.15, x + 0.15, z - 0.15, z + 0.15, 0.0, VEGETATION, trunk_h, (1, 1, 1),
              {0: self.tiled("bark", "flat"), 1: self.tiled("bark", "flat"), 2: self.tiled("bark", "flat")})
        r = rng.uniform(1.2, 1.7)
        a = np.linspace(0, 1, 9)
        dome = np.sqrt(np.clip(1 - (2 * a - 1) ** 2, 0, 1))
        bottom = trunk_h - 0.5 + 0.4 * (1 - dome) + 0.1 * rng.standard_normal(9)
        top = trunk_h + rng.uniform(2.0, 4.0) * (0.45 + 0.55 * dome) + 0.15 * rng.standard_normal(9)
        top = np.maximum(top, bottom + 0.3)
        prof = self.outlines.add((a, top), (a, bottom))
        look = self.tiled("leaves", prof, rng.uniform(0, 5))
        tint = np.array([0.9, 1.0, 0.85]) * rng.uniform(0.75, 1.15, 3)
        b.box(uid_crown, x - r, x + r, z - r, z + r, 0.0, VEGETATION, 1.0, tint, {0: look, 1: look, 2: look, 3: look})

    def _moving_slot(self, b: Builder, gid: int, j: int) -> None:
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
            side = self.decal(f"{vtype}_side{flip}", length, height * hs,
                               f"{vtype}_side{flip}")
            if vtype == "car":
                rear = self.decal("car_rear", width, height * hs, "car_end")
                front = self.decal("car_front", width, height * hs, "car_end")
            else:
                rear = front = self.decal(f"{vtype}_end", width, height, f"{vtype}_end")
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
            fr = self.decal("person_front", 0.5, 1.8 * hs, "person_front")
            sd = self.decal("person_side", 0.3, 1.8 * hs, "person_side")
            b.box(base_uid, xc - 0.25, xc + 0.25, zeta, zeta + 0.3, speed, PERSON, hs, tint,
                  {0: fr, 3: fr, 1: sd, 2: sd}, shadow=True)

    def _two_wheeler(self, b: Builder, base_uid: int, rng, xc: float, zeta: float, speed: float, forward: bool,
                     kind: str) -> None:
        length, width = (2.1, 0.7) if kind == "moto" else (1.75, 0.5)
        cls = MOTORCYCLE if kind == "moto" else BICYCLE
        tint = rng.uniform(0.2, 1.0, 3)
        flip = "" if forward else "_flip"
        side = self.decal(f"{kind}_side{flip}", length, 1.2 if kind == "moto" else 1.1, f"{kind}_side{flip}")
        end = self.decal("two_wheel_end", width, 1.2, "two_wheel_end")
        b.box(base_uid, xc - width / 2, xc + width / 2, zeta, zeta + length, speed, cls, 1.0, tint,
              {0: end, 3: end, 1: side, 2: side}, shadow=True)
        # The rider sits over the middle of the vehicle, slightly narrower, so the vehicle hides its lower part.
        rz0 = zeta + (0.55 if forward else 0.6) * length - 0.3
        hs = rng.uniform(0.95, 1.05)
        shirt = rng.uniform(0.25, 1.0, 3)
        fr = self.decal("person_front", 0.44, 1.8 * hs, "rider_front")
        sd = self.decal("person_side", 0.6, 1.8 * hs, "rider_side")
        b.box(base_uid + 1, xc - 0.22, xc + 0.22, rz0, rz0 + 0.6, speed, RIDER, hs, shirt, {0: fr, 3: fr, 1: sd, 2: sd})

    def content(self, time: float, cz: float) -> tuple[np.ndarray, np.ndarray]:
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


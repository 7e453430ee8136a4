"""Ray-casting the box faces into the z-buffer.

Every face is vertical, so (the camera having no pitch or roll) its depth is a function of the image column and
its coverage of a column is one interval of rows, [top, bottom] from its outline. Faces are culled, ray-cast
column by column (vectorised over all faces' columns), then z-buffered over their rows; the result is per-face
and per-(face, column) tables that the renderer's whole-image passes read: class, surface id, shading, texture
addressing, and the flow of every drawn face column to each reference camera.
"""

from __future__ import annotations

import math

import numpy as np

from vidseg.synthetic.atlas import LG_SHIFT, Atlas
from vidseg.synthetic.camera import BEHIND, NEAR, Camera
from vidseg.synthetic.street import (
    AOFF,
    CLS,
    EX,
    EZ,
    HS,
    LEN,
    NX,
    NZ,
    OX,
    OZ,
    PROF,
    SHADE,
    SID,
    SX,
    SY,
    TB,
    TG,
    TILE,
    TR,
    VX,
    VZ,
    YOFF,
)

__all__ = ["draw_faces"]

_PIECE = 96  # wide faces are z-buffered in pieces of this many columns
_SMALL_FACE = 1024  # faces whose bounding box has at most this many pixels are z-buffered together


def draw_faces(camera: Camera, atlas: Atlas, knots: tuple[np.ndarray, ...], lod: np.ndarray, table: np.ndarray,
               time: float, pose: tuple[float, float, float, float], rays: tuple[np.ndarray, np.ndarray],
               ref_cams: list[tuple[float, float, float, float]], slot: np.ndarray, zbuf: np.ndarray,
               colour: bool) -> dict:
    """Cull, then ray-cast every face column by column (vectorised over all faces' columns), then z-buffer
    each face over its rows (one short loop), writing `slot` (2 + face) and `zbuf` where it is in front.

    knots: the outlines (`Outlines.knots()`); lod: draw distance per class; table: face rows (street.py) at time
    0; pose: the camera's (x, z, cos yaw, sin yaw) at `time`; rays: per-column ray directions (x, z); ref_cams:
    per reference frame (dt, x, z, yaw). Returns per-face tables for the shading and flow passes.
    """
    camx, camz, cos, sin = pose
    rx, rz = rays
    H, W = camera.height, camera.width
    f, cx, cy, hc = camera.f, camera.cx, camera.cy, camera.hc
    empty = {"n": 0, "sid": np.zeros(0, np.int32), "cls": np.zeros(0, np.uint8),
             "shade": np.zeros(0, np.float32), "tintfac": np.zeros((3, 0), np.float32)}
    if not len(table):
        return empty
    # 1. Per face: back faces, behind the camera, beyond the class's detail distance, outside the columns.
    ox = table[:, OX] + table[:, VX] * time
    oz = table[:, OZ] + table[:, VZ] * time
    front = (camx - ox) * table[:, NX] + (camz - oz) * table[:, NZ] > 1e-9
    ex, ez, length = table[:, EX], table[:, EZ], table[:, LEN]
    x0, z0 = ox - camx, oz - camz
    x1, z1 = x0 + ex * length, z0 + ez * length
    xc0, zc0 = x0 * cos - z0 * sin, x0 * sin + z0 * cos
    xc1, zc1 = x1 * cos - z1 * sin, x1 * sin + z1 * cos
    limit = lod.take(table[:, CLS].astype(np.int64))
    keep = front & (np.maximum(zc0, zc1) > NEAR) & (np.minimum(zc0, zc1) < limit)
    with np.errstate(divide="ignore", invalid="ignore"):
        tcl = (NEAR - zc0) / (zc1 - zc0)
        xa = np.where(zc0 < NEAR, xc0 + tcl * (xc1 - xc0), xc0)
        za = np.where(zc0 < NEAR, NEAR, zc0)
        xb = np.where(zc1 < NEAR, xc0 + tcl * (xc1 - xc0), xc1)
        zb = np.where(zc1 < NEAR, NEAR, zc1)
        ua, ub = cx + f * xa / za, cx + f * xb / zb
    umin = np.floor(np.minimum(ua, ub)) - 1
    umax = np.ceil(np.maximum(ua, ub)) + 1
    keep &= (umax >= 0) & (umin <= W - 1)
    sel = np.flatnonzero(keep)
    if not len(sel):
        return empty
    T = table[sel]
    nfc = len(sel)
    c0 = np.clip(umin[sel], 0, W - 1).astype(np.int64)
    width = np.clip(umax[sel], 0, W - 1).astype(np.int64) + 1 - c0
    starts = np.cumsum(width) - width
    n = int(width.sum())
    fidx = np.repeat(np.arange(nfc), width)
    col = np.arange(n) - starts[fidx] + c0[fidx]

    # 2. Per column of every face: depth s along the camera axis and position a along the face.
    crx, crz = rx[col], rz[col]
    fex, fez, flen = T[:, EX][fidx], T[:, EZ][fidx], T[:, LEN][fidx]
    dx, dz = (ox[sel] - camx)[fidx], (oz[sel] - camz)[fidx]
    den = crx * fez - crz * fex
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (dx * fez - dz * fex) / den
        a = (dx * crz - dz * crx) / den
    valid = (s > NEAR) & (a >= 0) & (a < flen)
    s = np.where(valid, s, 1.0)
    an = np.clip(a / flen, 0.0, 1.0)
    kt, vt_, kb, vb_ = knots
    q = 2.0 * T[:, PROF][fidx] + an
    hs = T[:, HS][fidx]
    top = np.interp(q, kt, vt_) * hs
    bot = np.interp(q, kb, vb_) * hs
    vt = np.where(valid, cy + f * (hc - top) / s, np.inf)
    vb = np.where(valid, cy + f * (hc - bot) / s, -np.inf)
    ordinal = np.arange(n)
    first = np.minimum.reduceat(np.where(valid, ordinal, n), starts)
    last = np.maximum.reduceat(np.where(valid, ordinal, -1), starts) + 1
    r0 = np.maximum(np.ceil(np.minimum.reduceat(vt, starts)), 0)
    r1 = np.minimum(np.ceil(np.maximum.reduceat(vb, starts)), H)
    live = (first < last) & (r0 < r1)

    # 3. Texture addressing per column: mip level from the pixel footprint on the face (texels per pixel
    # along the face and up); the texel column and its bilinear fraction; the texel row is ay + by * v
    # (clamped to ytop on decals); the shading pass reads these per (slot, column).
    if colour:
        at = atlas
        tile = T[:, TILE].astype(np.int64)[fidx]
        sx, sy = T[:, SX][fidx], T[:, SY][fidx]
        with np.errstate(divide="ignore", invalid="ignore"):
            dcross = (-dx * sin - dz * cos) / f  # cross(D, dr/du)
            rcross = (cos * fez + sin * fex) / f  # cross(dr/du, e)
            dadu = (dcross - a * rcross) / den
        foot = np.maximum(np.abs(np.where(valid, dadu, 0.0)) / sx, s / (f * sy))
        level = np.floor(np.log2(np.maximum(foot, 1e-9)) + 0.7)
        level = np.clip(level, 0, at.levels[tile] - 1).astype(np.int64)
        scale = np.exp2(level)
        tw, th = at.tw[tile, level], at.th[tile, level]
        decal = at.decal[tile]
        xf = np.where(valid, a + T[:, AOFF][fidx], 0.0) / (sx * scale) - 0.5
        xf = np.where(decal, np.clip(xf, 0, tw - 1), xf)
        ix = np.floor(xf)
        wx = np.minimum(np.floor((xf - ix) * 16 + 0.5), 16).astype(np.int32)
        base = (at.off[tile, level] + (ix.astype(np.int64) & (tw - 1))).astype(np.int32)
        stride = at.stride[tile, level].astype(np.int32)
        ytop = np.where(decal, th - 1, 3e38).astype(np.float32)
        lg = np.log2(th).astype(np.int64)
        ay = (((hc + T[:, YOFF][fidx]) + s * cy / f) / (sy * scale) - 0.5).astype(np.float32)
        by = (-s / (f * sy * scale)).astype(np.float32)
    vt32, vb32, s32 = vt.astype(np.float32), vb.astype(np.float32), s.astype(np.float32)

    # 4. Per face: z-buffer its rows x columns; write the slot.
    # Large faces one by one over their bounding box; small ones (far away) all at once, pixel by pixel.
    v32 = camera.v32
    drawn = np.zeros(nfc, bool)
    fi = np.flatnonzero(live)
    fa, fb = first[fi], last[fi]
    ra_, rb_ = r0[fi].astype(np.int64), r1[fi].astype(np.int64)
    small = (rb_ - ra_) * (fb - fa) <= _SMALL_FACE
    # Wide faces go in pieces of _PIECE columns, each with its own row range (perspective makes a wide
    # face's bounding box much larger than the face).
    pieces = []
    for i, i0, i1 in zip(fi[~small].tolist(), fa[~small].tolist(), fb[~small].tolist(), strict=True):
        pieces += [(i, j, min(j + _PIECE, i1)) for j in range(i0, i1, _PIECE)]
    if pieces:
        pi, p0, p1 = (np.array(x, np.int64) for x in zip(*pieces, strict=True))
        bounds = np.stack([p0, p1], 1).reshape(-1)  # reduce over [p0, p1) only
        low = np.minimum.reduceat(np.append(vt32, np.float32(np.inf)), bounds)[::2]
        high = np.maximum.reduceat(np.append(vb32, np.float32(-np.inf)), bounds)[::2]
        pra = np.clip(np.ceil(low), 0, H).astype(np.int64)
        prb = np.clip(np.ceil(high), 0, H).astype(np.int64)
        ok = pra < prb
        rows = zip(pi[ok].tolist(), p0[ok].tolist(), p1[ok].tolist(), pra[ok].tolist(), prb[ok].tolist(),
                   strict=True)
    else:
        rows = iter(())
    for i, i0, i1, ra, rb in rows:
        ca, cb = int(col[i0]), int(col[i1 - 1]) + 1
        v = v32[ra:rb]
        zview = zbuf[ra:rb, ca:cb]
        m = v >= vt32[i0:i1]
        m &= v < vb32[i0:i1]
        depth = s32[i0:i1]
        m &= depth < zview
        if not m.any():
            continue
        drawn[i] = True
        np.copyto(zview, depth, where=m)
        np.copyto(slot[ra:rb, ca:cb], 2 + i, where=m)
    if small.any():
        # Every candidate pixel (row, per-column index k) of every small face's bounding box.
        fs, fa, ra_ = fi[small], fa[small], ra_[small]
        wd = fb[small] - fa
        counts = (rb_[small] - ra_) * wd
        owner = np.repeat(np.arange(len(fs)), counts)
        local = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        row = ra_[owner] + local // wd[owner]
        k = fa[owner] + local % wd[owner]
        vrow = row.astype(np.float32)
        keep = (vrow >= vt32[k]) & (vrow < vb32[k])
        row, k, vrow = row[keep], k[keep], vrow[keep]
        pix = row * W + col[k]
        depth = s32[k]
        keep = depth < zbuf.reshape(-1)[pix]
        pix, k, vrow, depth, owner = pix[keep], k[keep], vrow[keep], depth[keep], fidx[k[keep]]
        order = np.lexsort((depth, pix))  # nearest first within each pixel
        pix, k, vrow, depth, owner = pix[order], k[order], vrow[order], depth[order], owner[order]
        win = np.ones(len(pix), bool)
        win[1:] = pix[1:] != pix[:-1]
        pix, k, vrow, depth, owner = pix[win], k[win], vrow[win], depth[win], owner[win]
        drawn[owner] = True
        zbuf.reshape(-1)[pix] = depth
        slot.reshape(-1)[pix] = 2 + owner

    # 5. Tables for the whole-image passes: per face, and per (face, column) for the flows.
    out = {
        "n": nfc,
        "sid": T[:, SID].astype(np.int32),
        "cls": T[:, CLS].astype(np.uint8),
        "shade": T[:, SHADE].astype(np.float32),
        "tintfac": ((T[:, [TR, TG, TB]] - 1.0) * (T[:, SHADE:SHADE + 1] / 255.0)).T.astype(np.float32),
    }
    used = valid & drawn[fidx]
    out["flat"] = ((2 + fidx[used]) * W + col[used]).astype(np.int64)
    if colour:
        out["ay"], out["by"], out["ytop"] = ay[used], by[used], ytop[used]
        out["tinfo"] = (base[used] | (lg[used] << LG_SHIFT)).astype(np.int32)  # texel column, log2 rows
        out["xinfo"] = (stride[used] * 32 + wx[used]).astype(np.int32)  # row stride and x fraction
    if ref_cams:
        flows = []
        su, crxu, crzu, fu = s[used], crx[used], crz[used], fidx[used]
        vx, vz = T[:, VX][fu], T[:, VZ][fu]
        for dt, rcx, rcz, ryaw in ref_cams:
            c2, s2 = math.cos(ryaw), math.sin(ryaw)
            # The face point at the reference time (faces move with their boxes), relative to that camera.
            px = (camx - rcx) + su * crxu + vx * dt
            pz = (camz - rcz) + su * crzu + vz * dt
            xc = px * c2 - pz * s2
            zc = px * s2 + pz * c2
            ok = zc > NEAR
            with np.errstate(divide="ignore", invalid="ignore"):
                fxc = np.where(ok, cx + f * xc / zc - col[used], BEHIND).astype(np.float32)
                ratio = np.where(ok, su / zc - 1.0, 0.0).astype(np.float32)
            flows.append((fxc, ratio, not ok.all()))
        out["flow"] = flows
    return out

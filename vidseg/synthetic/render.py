"""The frame pass: z-buffer the faces over the ground and the sky, then compute everything per pixel in bands of
rows small enough to stay in cache: surface ids, labels, texture colour, tint, shading, lane markings and
shadows, haze, the sky and the hills, lighting and exposure, and the backward flow to each reference frame with
its occlusion; then the camera's motion blur and noise (`sensor.Sensor`), which change pixels only.

Flow is gathered from per-(slot, column) tables (the ground's is per pixel); a pixel is occluded in a reference
frame when its reprojection falls outside the image area [-0.5, W-0.5) x [-0.5, H-0.5), lies behind that
camera, or the surface at the nearest pixel centre there is another one.
"""

from __future__ import annotations

import math

import numpy as np

from vidseg.synthetic.atlas import Atlas, bilinear, face_texels
from vidseg.synthetic.camera import BEHIND, Camera
from vidseg.synthetic.config import SceneConfig
from vidseg.synthetic.faces import draw_faces
from vidseg.synthetic.ground import LANE_WHITE, LANE_YELLOW, Ground
from vidseg.synthetic.sensor import Sensor
from vidseg.synthetic.sky import HILLS_ID, Sky
from vidseg.synthetic.street import ROAD, SKY, StreetLayout

__all__ = ["Renderer"]

HAZE_DISTANCE = 160.0  # m: colour keeps exp(-depth / HAZE_DISTANCE) of itself


class Renderer:
    """Rasterises frames of one scene from its parts. Keeps work buffers between frames (not thread-safe)."""

    def __init__(self, config: SceneConfig, camera: Camera, sky: Sky, ground: Ground, layout: StreetLayout,
                 atlas: Atlas) -> None:
        self.config = config
        self._camera, self._sky, self._ground, self._layout, self._atlas = camera, sky, ground, layout, atlas
        self._band = max(2, 32768 // config.width)  # rows per band of the per-pixel passes (stays in cache)
        self._buffers: dict[str, np.ndarray] = {}
        self._sensor = Sensor(config)

    def _scratch(self, name: str, shape: tuple[int, int], dtype) -> np.ndarray:
        """A reusable work buffer (contents undefined) of at least `shape`; rows beyond need are kept."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] < shape[0] or buf.shape[1:] != shape[1:] or buf.dtype != dtype:
            buf = np.empty((max(shape[0], 2 * (buf.shape[0] if buf is not None else 0)),) + shape[1:], dtype)
            self._buffers[name] = buf
        return buf[: shape[0]]

    def rasterize(self, t: int, refs: tuple[int, ...], ids_refs: list[np.ndarray], colour: bool) -> dict:
        """Ray-cast frame t: {"ids": surface ids [H, W] int32, "flows": per ref (flow [H, W, 2], occlusion
        [H, W])}, plus "image" and "labels" if colour. ids_refs: the surface ids of each reference frame.

        Faces are z-buffered first, writing a per-pixel slot (0 sky, 1 ground, 2 + i face i of this frame) and,
        for colour, their texel index; the band pass reads everything else from per-slot tables.
        """
        cam, ground, sky = self._camera, self._ground, self._sky
        H, W = cam.height, cam.width
        f, cx, cy = cam.f, cam.cx, cam.cy
        fps = self.config.fps
        time = t / fps
        camx, camz, yaw = cam.pose(time)
        cos, sin = math.cos(yaw), math.sin(yaw)
        rx, rz = cam.rays(yaw)
        ref_cams = [(r / fps - time, *cam.pose(r / fps)) for r in refs]
        g0 = ground.g0

        # Work buffers are reused across frames (the scene is not thread-safe anyway): fresh multi-megabyte
        # arrays cost page faults on every frame.
        slot = self._scratch("slot", (H, W), np.int32)
        slot[:g0] = 0
        slot[g0:] = 1
        zbuf = self._scratch("zbuf", (H, W), np.float32)
        zbuf[:g0] = np.inf
        zbuf[g0:] = ground.depth32
        table, casters = self._layout.content(time, camz)
        faces = draw_faces(cam, self._atlas, self._layout.outlines.knots(), self._layout.lod, table, time,
                           (camx, camz, cos, sin), (rx, rz), ref_cams, slot, zbuf, colour)
        nf = faces["n"]
        sid_tab = np.concatenate([np.array([0, 1], np.int32), faces["sid"]])
        ids = np.empty((H, W), np.int32)
        u32 = cam.u32

        # Per-ref tables of the flow of every (slot, column): x flow and the vertical scale (ratio - 1).
        ref_tabs = []
        for k, (_dt, _rcx, _rcz, ryaw) in enumerate(ref_cams):
            fxt = self._scratch(f"fxt{k}", (nf + 2, W), np.float32)
            rt = self._scratch(f"rt{k}", (nf + 2, W), np.float32)
            c2, s2 = math.cos(ryaw), math.sin(ryaw)
            xc = rx * c2 - rz * s2  # the sky: directions, moved by the yaw difference only
            zc = rx * s2 + rz * c2
            ok = zc > 1e-6
            with np.errstate(divide="ignore", invalid="ignore"):
                fxt[0] = np.where(ok, cx + f * xc / zc - cam.u, BEHIND)
                rt[0] = np.where(ok, 1.0 / zc - 1.0, 0.0)
            fxt[1] = 0.0  # the ground's flow is computed per pixel; faces' rows are read only where drawn
            rt[1] = 0.0
            bad = not ok.all()
            if nf:
                fxt.reshape(-1)[faces["flat"]] = faces["flow"][k][0]
                rt.reshape(-1)[faces["flat"]] = faces["flow"][k][1]
                bad = bad or bool(faces["flow"][k][2])
            ref_tabs.append((fxt.reshape(-1), rt.reshape(-1), bad))
        flows = [np.empty((H, W, 2), np.float32) for _ in refs]
        occs = [np.empty((H, W), bool) for _ in refs]
        col_index = np.arange(W, dtype=np.intp)[None]

        if colour:
            labels = np.empty((H, W), np.uint8)
            image = np.empty((H, W, 3), np.uint8)
            cls_tab = np.concatenate([np.array([SKY, ROAD], np.uint8), faces["cls"]])
            a_tab = np.concatenate([np.ones(2, np.float32), faces["shade"]])
            b_tabs = [np.concatenate([np.zeros(2, np.float32), faces["tintfac"][c]]) for c in range(3)]
            gain = sky.gain(time) * self._sensor.gain
            shadow = (ground.shadows(casters, time, camx, camz, cos, sin)
                      if self.config.shadows and len(casters) and g0 < H else None)
            sky_cols = sky.columns(yaw)
            # Texture addressing per (slot, column) (see faces.draw_faces): the sky and ground rows are zero (the
            # ground's comes per pixel; the sky's texels are not used); a face's row is read where it was drawn.
            tex_tabs = []
            for name, dtype in (("ay", np.float32), ("by", np.float32), ("ytop", np.float32), ("tinfo", np.int32),
                                ("xinfo", np.int32)):
                tab = self._scratch(name, (nf + 2, W), dtype)
                tab[:2] = 0
                if nf:
                    tab.reshape(-1)[faces["flat"]] = faces[name]
                tex_tabs.append(tab.reshape(-1))

        ridge = sky.ridges(yaw)  # hills: a sky-slot pixel below this row (per column) is a hill pixel
        rx32, rz32 = rx.astype(np.float32)[None], rz.astype(np.float32)[None]
        step = self._band
        bands = [(a, min(a + step, g0)) for a in range(0, g0, step)]
        bands += [(a, min(a + step, H)) for a in range(g0, H, step)]
        ground_refs = [ground.ref(rx, rz, camx, camz, rcx, rcz, ryaw) for _dt, rcx, rcz, ryaw in ref_cams]
        for ra, rb in bands:
            sl = slot[ra:rb].astype(np.intp)
            ids_band = sid_tab.take(sl)
            on_ground = ra >= g0
            v = cam.v32[ra:rb]
            hill = None
            if ridge is not None and not on_ground:
                hill = v > ridge
                hill &= sl == 0
                np.copyto(ids_band, np.int32(HILLS_ID), where=hill)
            ids[ra:rb] = ids_band
            if on_ground:
                is_g = sl == 1
            flat = sl * W
            flat += col_index
            for k in range(len(refs)):
                fxt, rt, tab_bad = ref_tabs[k]
                fx = fxt.take(flat)
                fy = rt.take(flat)
                fy *= v - np.float32(cy)
                maybe_bad = tab_bad
                if on_ground:
                    gfx, gfy, g_bad = ground.flow(ra - g0, rb - g0, ground_refs[k])
                    np.copyto(fx, gfx, where=is_g)
                    np.copyto(fy, gfy, where=is_g)
                    maybe_bad = maybe_bad or g_bad
                # Occlusion: out of frame (points behind the reference camera carry a far-away sentinel), or
                # another surface in front there.
                up = fx + u32
                vp = fy + v
                inside = up >= -0.5
                inside &= up < W - 0.5
                inside &= vp >= -0.5
                inside &= vp < H - 0.5
                up += np.float32(0.5)
                vp += np.float32(0.5)
                iv = vp.astype(np.intp)
                iv *= W
                iv += up.astype(np.intp)
                inside &= ids_refs[k].reshape(-1).take(iv, mode="clip") == ids_band
                np.logical_not(inside, out=occs[k][ra:rb])
                if maybe_bad:
                    bad = np.abs(fx) >= BEHIND / 2
                    np.copyto(fx, np.float32(0.0), where=bad)
                    np.copyto(fy, np.float32(0.0), where=bad)
                flows[k][ra:rb, :, 0] = fx
                flows[k][ra:rb, :, 1] = fy
            if not colour:
                continue
            lab = cls_tab.take(sl)
            tix, stride, wx, wy = face_texels(v, flat, *tex_tabs)
            if on_ground:
                glab, gidx, gstride, gwx, gwy, white, yellow = ground.look(ra - g0, rb - g0, rx32, rz32,
                                                                                 camx, camz)
                np.copyto(lab, glab, where=is_g)
                tix = np.where(is_g, gidx, tix)
                stride = np.where(is_g, gstride, stride)
                wx = np.where(is_g, gwx, wx)
                wy = np.where(is_g, gwy, wy)
                white *= is_g
                yellow *= is_g
                unpaint = np.float32(1.0) - white
                unpaint -= yellow
                if shadow is not None:
                    unpaint *= np.where(is_g, shadow[ra - g0:rb - g0], np.float32(1.0))
                white *= LANE_WHITE
            else:
                sky_px = np.flatnonzero(sl == 0)
                sky_rgb = sky.pixels(ra, sky_px, sky_cols, None if hill is None else hill.reshape(-1)[sky_px])
                if hill is not None:
                    np.copyto(lab, np.uint8(sky.hill_class), where=hill)
            labels[ra:rb] = lab
            px = bilinear(self._atlas.data, tix, stride, wx, wy)
            alpha = (px >> np.uint32(24)).astype(np.float32)
            fac0 = a_tab.take(sl)
            keep = np.exp(zbuf[ra:rb] * np.float32(-1.0 / HAZE_DISTANCE))
            hazed = np.float32(1.0) - keep
            for c in range(3):
                fac = b_tabs[c].take(sl)
                fac *= alpha
                fac += fac0
                col = (px >> np.uint32(8 * c)).astype(np.uint8).astype(np.float32)
                col *= fac
                if on_ground:
                    col *= unpaint
                    col += white
                    col += yellow * LANE_YELLOW[c]
                col *= keep
                col += hazed * sky.haze[c]
                if not on_ground:
                    col.reshape(-1)[sky_px] = sky_rgb[c]
                col *= gain[c]
                np.minimum(col, np.float32(255.0), out=col)  # every term is >= 0
                image[ra:rb, :, c] = col

        out = {"ids": ids, "flows": list(zip(flows, occs, strict=True))}
        if colour:
            previous = refs.index(t - 1) if t - 1 in refs else None
            image = self._sensor.expose(image, t, None if previous is None else flows[previous])
            out["image"], out["labels"] = image, labels
        return out

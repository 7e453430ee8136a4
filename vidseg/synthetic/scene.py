"""`StreetScene`: a deterministic street seen by a moving camera, rendered frame by frame with its exact flow.

It puts the parts together (the order of their random draws is part of the scene: camera, sky and light,
moving groups) and keeps the surface ids of recent frames, which the occlusion test of a later frame reads.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from vidseg.errors import ConfigError, InputError
from vidseg.synthetic.atlas import atlas_for_seed
from vidseg.synthetic.camera import Camera
from vidseg.synthetic.config import SceneConfig, SyntheticFrame
from vidseg.synthetic.ground import Ground
from vidseg.synthetic.render import Renderer
from vidseg.synthetic.sky import Sky
from vidseg.synthetic.street import StreetLayout

__all__ = ["StreetScene"]

_KEEP_IDS = 6  # frames whose surface ids are kept for the occlusion test of later frames


class StreetScene:
    """A deterministic procedural street scene; `render(t)` draws frame t, `flow(t, t_ref)` its exact flow.

    Frames are random-access (any t >= 0, any order); rendering consecutive frames reuses the previous frame's
    surface ids for the occlusion test. One instance is not thread-safe (it caches content per chunk of road).
    """

    def __init__(self, config: SceneConfig | None = None):
        if config is None:
            config = SceneConfig()
        if not isinstance(config, SceneConfig):
            raise ConfigError(f"StreetScene needs a SceneConfig, got {type(config).__name__}")
        self.config = config
        self.height, self.width = config.height, config.width
        rng = np.random.default_rng([config.seed, 1])
        atlas = atlas_for_seed(config.seed)
        self._camera = Camera(config, rng)
        sky = Sky(self._camera, atlas, config.lighting, rng)
        layout = StreetLayout(config, atlas, rng)
        self._renderer = Renderer(config, self._camera, sky, Ground(self._camera, atlas), layout, atlas)
        self._ids: OrderedDict[int, np.ndarray] = OrderedDict()

    def render(self, t: int) -> SyntheticFrame:
        """Frame t: image, labels, surfaces, and the flow and occlusion to frame t-1 (see SyntheticFrame)."""
        frame, _ = self.render_with_flows(t, ())
        return frame

    def flow(self, t: int, t_ref: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact backward flow of frame t to frame t_ref, float32 [H, W, 2] (x, y) pixels, and occlusion bool
        [H, W] (True where the pixel of frame t is not visible in frame t_ref: disoccluded, out of frame or
        behind the camera; the flow there is the reprojection where one exists, else 0)."""
        t, t_ref = self._check_index(t), self._check_index(t_ref)
        if t == t_ref:
            return self._identity()
        return self._rasterize(t, (t_ref,), colour=False)["flows"][0]

    def camera(self, t: int) -> dict[str, float]:
        """The camera of frame t: position x, z (m), height (m), yaw (radians), focal and principal point (px)."""
        cam = self._camera
        x, z, yaw = cam.pose(self._check_index(t) / self.config.fps)
        return {"x": x, "z": z, "height": cam.hc, "yaw": yaw, "focal": cam.f, "cx": cam.cx, "cy": cam.cy}

    def render_with_flows(self, t: int, extra_refs: tuple[int, ...]) -> tuple[SyntheticFrame, list]:
        """Frame t with its flow to t-1, plus the flows to extra_refs (each (flow, occlusion), as `flow` gives
        them) from the same pass: cheaper than `render` and `flow` apart."""
        t = self._check_index(t)
        refs = ([t - 1] if t > 0 else []) + [self._check_index(r) for r in extra_refs if r != t]
        out = self._rasterize(t, tuple(refs), colour=True)
        results = list(out["flows"])
        if t > 0:
            flow_prev, occ_prev = results.pop(0)
        else:
            flow_prev = np.zeros((self.height, self.width, 2), np.float32)
            occ_prev = np.ones((self.height, self.width), bool)
        extra = [self._identity() if r == t else results.pop(0) for r in extra_refs]
        frame = SyntheticFrame(t, out["image"], out["labels"], flow_prev, occ_prev, out["ids"])
        return frame, extra

    # ---------------------------------------------------------------- internals

    def _identity(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((self.height, self.width, 2), np.float32), np.zeros((self.height, self.width), bool)

    def _check_index(self, t) -> int:
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)) or t < 0:
            raise InputError(f"frame index must be an int >= 0, got {t!r}")
        return int(t)

    def _rasterize(self, t: int, refs: tuple[int, ...], colour: bool) -> dict:
        """The renderer's pass for frame t, given the reference frames' surface ids; remembers frame t's ids."""
        ids_refs = [self._surface_ids(r) for r in refs]
        out = self._renderer.rasterize(t, refs, ids_refs, colour)
        self._ids[t] = out["ids"].copy()  # the caller may modify the returned map; the occlusion test needs the truth
        self._ids.move_to_end(t)
        while len(self._ids) > _KEEP_IDS:
            self._ids.popitem(last=False)
        return out

    def _surface_ids(self, t: int) -> np.ndarray:
        ids = self._ids.get(t)
        if ids is None:
            ids = self._rasterize(t, (), colour=False)["ids"]
        else:
            self._ids.move_to_end(t)
        return ids

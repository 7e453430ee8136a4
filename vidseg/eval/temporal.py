"""Temporal consistency: how much of a frame's labels agree with the previous frame's warped by optical flow.

ETC's TC (and its occlusion-masked variant) as an mIoU between the warped previous prediction and the current
one (`absent="zero"`), on the confusion matrices of `vidseg.eval.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vidseg.classes import IGNORE_INDEX
from vidseg.errors import InputError, ShapeError
from vidseg.eval.metrics import ConfusionMatrix, as_tensor, json_float

__all__ = ["TemporalConsistency", "resample2d"]

ArrayLike = Any

def _flow_hw2(flow: ArrayLike, size: tuple[int, int], device: torch.device) -> Tensor:
    """Flow as float32 [H, W, 2] (dx, dy) on device, from [H,W,2] or [2,H,W], torch or numpy."""
    if isinstance(flow, np.ndarray):
        flow = torch.from_numpy(np.ascontiguousarray(flow) if flow.flags.writeable else flow.copy())
    if not isinstance(flow, Tensor):
        raise ShapeError(f"flow must be a torch.Tensor or numpy array, got {type(flow).__name__}")
    flow = flow.to(device=device, dtype=torch.float32)
    h, w = size
    if tuple(flow.shape) == (h, w, 2):
        return flow
    if tuple(flow.shape) == (2, h, w):
        return flow.permute(1, 2, 0)
    raise ShapeError(f"flow must be [{h},{w},2] or [2,{h},{w}] for {h}x{w} label maps, got {tuple(flow.shape)}")


def resample2d(labels: Tensor, flow: Tensor, mode: str = "etc") -> Tensor:
    """Backward-warp a label map [H, W] by flow [H, W, 2] (pixels): out(p) = labels(p + flow(p)).

    mode "etc": NVIDIA flownet2-pytorch `Resample2d` (kernel_size 1) on the ids as float32, as ETC's
    tool/eval_tc.py does: bilinear weights from the unclamped fractional parts, the four neighbour indices
    clamped to the border, the four terms added in float32 in the kernel's order, then truncated to uint8.
    Two quirks follow and are part of ETC's numbers: a boundary pixel between ids 2 and 13 can become 7, and
    at a fractional sample point inside a region of one id c the float32 sum can land just below c and be
    truncated to c - 1 (about 1.5 % of such pixels for uniformly random sub-pixel flow). mode "nearest": the
    id at the rounded sample point, clamped to the border (a cleaner variant; not ETC's number).
    Returns int64 [H, W].
    """
    h, w = labels.shape
    ys = torch.arange(h, device=labels.device, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, device=labels.device, dtype=torch.float32).view(1, w)
    xf = xs + flow[..., 0]
    yf = ys + flow[..., 1]
    if mode == "nearest":
        xi = torch.floor(xf + 0.5).long().clamp(0, w - 1)
        yi = torch.floor(yf + 0.5).long().clamp(0, h - 1)
        return labels.long()[yi, xi]
    if mode != "etc":
        raise InputError(f"unknown label warp mode {mode!r}; choose 'etc' or 'nearest'")
    x0 = torch.floor(xf)
    y0 = torch.floor(yf)
    alpha = (xf - x0).double()
    beta = (yf - y0).double()
    xl = x0.long().clamp(0, w - 1)
    xr = (x0.long() + 1).clamp(0, w - 1)
    yt = y0.long().clamp(0, h - 1)
    yb = (y0.long() + 1).clamp(0, h - 1)
    src = labels.float()
    val = ((1.0 - alpha) * (1.0 - beta) * src[yt, xl].double()).float()
    val = val + (alpha * (1.0 - beta) * src[yt, xr].double()).float()
    val = val + ((1.0 - alpha) * beta * src[yb, xl].double()).float()
    val = val + (alpha * beta * src[yb, xr].double()).float()
    return val.to(torch.uint8).long()


FlowFn = Callable[[ArrayLike, ArrayLike], ArrayLike]


class TemporalConsistency:
    """Temporal consistency (TC) of consecutive predictions, as ETC measures it (etc.md §4).

    For a pair (t, t+1) with flow F from frame t to frame t+1 on frame t's grid (pixels, (dx, dy): pixel p of
    frame t is at p + F(p) in frame t+1), the prediction of t+1 is backward-warped into frame t,
    W(p) = P_{t+1}(p + F(p)) (`resample2d`, mode "etc" by default), and compared with P_t: per class,
    intersection and union of {P_t == c} and {W == c} are summed over all pairs; TC = mean over all classes of
    I / U with an absent class counted 0. No ground truth is involved; every pixel counts. Predictions are
    class ids in [0, num_classes) (ETC's are; an id outside that range would be mixed by the bilinear warp).

    `occlusion_masked=True` is the variant that leaves out the pixels of frame t that an occlusion mask marks
    as not visible in t+1 (ETC has this line commented out); its name is "tc_noc" instead of "tc".

    `direction="backward"` takes, for each pair, the flow of frame t+1 into frame t on t+1's grid (and an
    occlusion mask on t+1's grid), as codec motion and vidseg's synthetic clips give it; the pair is then
    scored mirrored in time (P_t warped into t+1 and compared with P_{t+1}), which is ETC's procedure on the
    reversed clip. Its name gets a "_bwd" suffix, so the two are never mixed up in a results table.

    Flow comes with each pair (`flow=`) or from `flow_fn(image_t, image_t1)` (any estimator, e.g. a wrapped
    FlowNet2 or RAFT; it returns the flow in the direction above). `flow_source` names it in the output.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        occlusion_masked: bool = False,
        direction: str = "forward",
        label_warp: str = "etc",
        flow_fn: FlowFn | None = None,
        flow_source: str = "given",
        ignore_index: int = IGNORE_INDEX,
        device: torch.device | str | None = None,
    ):
        if direction not in ("forward", "backward"):
            raise InputError(f"direction must be 'forward' (ETC) or 'backward', got {direction!r}")
        if label_warp not in ("etc", "nearest"):
            raise InputError(f"label_warp must be 'etc' or 'nearest', got {label_warp!r}")
        self.num_classes = num_classes
        self.occlusion_masked = occlusion_masked
        self.direction = direction
        self.label_warp = label_warp
        self.flow_fn = flow_fn
        self.flow_source = flow_source
        self.ignore_index = ignore_index
        self.pairs = 0
        self.cm = ConfusionMatrix(num_classes, ignore_index, device)

    @property
    def name(self) -> str:
        name = "tc_noc" if self.occlusion_masked else "tc"
        if self.direction == "backward":
            name += "_bwd"
        if self.label_warp != "etc":
            name += f"_{self.label_warp}"
        return name

    def update(
        self,
        pred_t: ArrayLike,
        pred_t1: ArrayLike,
        *,
        flow: ArrayLike | None = None,
        occlusion: ArrayLike | None = None,
        image_t: ArrayLike | None = None,
        image_t1: ArrayLike | None = None,
    ) -> TemporalConsistency:
        """Score one pair of consecutive label maps [H, W] (see the class doc for the flow's direction)."""
        device = self.cm.device_for(pred_t)
        a = as_tensor(pred_t, device, "prediction t")
        b = as_tensor(pred_t1, device, "prediction t+1")
        if a.shape != b.shape or a.dim() != 2:
            raise ShapeError(f"temporal consistency needs two [H,W] label maps, got {tuple(a.shape)}, {tuple(b.shape)}")
        if flow is None:
            if self.flow_fn is None or image_t is None or image_t1 is None:
                raise InputError("temporal consistency needs a flow per pair, or a flow_fn and both images")
            flow = self.flow_fn(image_t, image_t1)
        f = _flow_hw2(flow, tuple(a.shape), device)
        ref, other = (a, b) if self.direction == "forward" else (b, a)
        warped = resample2d(other, f, self.label_warp)
        if self.occlusion_masked:
            if occlusion is None:
                raise InputError(f"{self.name}: the occlusion-masked variant needs an occlusion mask per pair")
            occ = torch.as_tensor(occlusion).to(device=device, dtype=torch.bool)
            if occ.shape != a.shape:
                raise ShapeError(f"occlusion mask {tuple(occ.shape)} must match the label maps {tuple(a.shape)}")
            warped = torch.where(occ, self.ignore_index, warped)
        self.cm.update(ref, warped)
        self.pairs += 1
        return self

    def update_clip(
        self,
        preds: Sequence[ArrayLike],
        *,
        flows: Sequence[ArrayLike] | None = None,
        occlusions: Sequence[ArrayLike] | None = None,
        images: Sequence[ArrayLike] | None = None,
    ) -> TemporalConsistency:
        """Score every consecutive pair of a clip; flows[t] / occlusions[t] belong to pair (t, t+1)."""
        n = len(preds)
        for what, seq in (("flows", flows), ("occlusions", occlusions)):
            if seq is not None and len(seq) != n - 1:
                raise InputError(f"{n} predictions make {n - 1} pairs, but {len(seq)} {what} were given")
        if images is not None and len(images) != n:
            raise InputError(f"{n} predictions but {len(images)} images")
        for t in range(n - 1):
            self.update(
                preds[t],
                preds[t + 1],
                flow=None if flows is None else flows[t],
                occlusion=None if occlusions is None else occlusions[t],
                image_t=None if images is None else images[t],
                image_t1=None if images is None else images[t + 1],
            )
        return self

    def value(self) -> float:
        """TC in [0, 1]: mean over all classes of summed intersection / summed union, absent class = 0."""
        return self.cm.miou("zero")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": json_float(self.value()),
            "pairs": self.pairs,
            "direction": self.direction,
            "label_warp": self.label_warp,
            "occlusion_masked": self.occlusion_masked,
            "flow_source": self.flow_source,
        }

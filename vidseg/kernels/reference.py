"""The semantic truth of vidseg's two hot ops, in plain PyTorch.

Every other implementation (Triton kernels, `vidseg::` custom ops, the ONNX lowering) is tested against these.

warp(x, motion, convention)
    Backward bilinear warp: out[p] = x[p + m(p)], zero outside the map. Motion is in pixels of x's grid, per
    pixel ([N,2,H,W]) or per block ([N,2,Hb,Wb], each vector covering a ceil(H/Hb) x ceil(W/Wb) block, as codec
    motion comes). Conventions:
      "exact":  the sample point is exactly p + m(p) (pixel centres at integer coordinates); zero motion is the
                identity.
      "gsvnet": GSVNet's grid (linspace(-1,1) base + 2m/(n-1), align_corners=True): the same mapping as "exact".
      "arseg":  AR-Seg's grid, normalised by (W-1, H-1) but sampled with align_corners=False; zero motion is NOT
                the identity (sample point p*W/(W-1) - 0.5, border faded by zero padding). AR-Seg's released
                checkpoints were trained with it, so reproducing them needs it.
    Traffic (stock PyTorch, per-pixel motion, fp32): reads x (C*H*W*4 B) + motion (8 B/px); materialises a
    grid (8 B/px) and writes out (C*H*W*4 B).

local_attention(q, k, v, window)
    CReFF's aggregation (AR-Seg, attention.py + zzd1992's Image-Local-Attention): for every pixel, raw dot
    products (no 1/sqrt(C), temperature 1) of q with k at the window x window neighbours, offset index
    dy*window + dx; neighbours outside the map score 0 (they still receive softmax weight) and contribute value
    0; softmax over the window^2 offsets; weighted sum of v.
    Traffic (this composition): window^2 shifted reads of k and v (2*49*C*H*W*4 B) and a 49-channel score map
    written and read (3*49*H*W*4 B); the fused kernel reads q, k, v once.

creff(q, k, v, residual, window) = residual + local_attention(q, k, v, window)   (AR-Seg's fusion, F~ = f + O)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from vidseg.errors import ShapeError

__all__ = ["WARP_CONVENTIONS", "warp", "expand_block_motion", "local_attention", "creff", "creff_channels_last"]

WARP_CONVENTIONS = ("exact", "arseg", "gsvnet")


def expand_block_motion(motion: Tensor, size: tuple[int, int]) -> Tensor:
    """Per-block motion [N,2,Hb,Wb] -> per-pixel [N,2,H,W] (each block's vector repeated over its pixels)."""
    height, width = size
    hb, wb = motion.shape[-2:]
    if (hb, wb) == (height, width):
        return motion
    bh, bw = math.ceil(height / hb), math.ceil(width / wb)
    if (hb - 1) * bh >= height or (wb - 1) * bw >= width:
        raise ShapeError(
            f"motion grid {hb}x{wb} does not tile a {height}x{width} map in whole blocks; give per-pixel motion "
            f"or a block grid of ceil(H/b) x ceil(W/b)"
        )
    return motion.repeat_interleave(bh, dim=-2)[..., :height, :].repeat_interleave(bw, dim=-1)[..., :width]


def _check_warp_args(x: Tensor, motion: Tensor, convention: str) -> None:
    if convention not in WARP_CONVENTIONS:
        raise ShapeError(f"unknown warp convention {convention!r}; choose one of {WARP_CONVENTIONS}")
    if x.dim() != 4 or motion.dim() != 4 or motion.shape[1] != 2 or motion.shape[0] != x.shape[0]:
        raise ShapeError(f"warp needs x [N,C,H,W] and motion [N,2,h,w]; got {tuple(x.shape)} and {tuple(motion.shape)}")


def warp(x: Tensor, motion: Tensor, convention: str = "exact") -> Tensor:
    """Backward bilinear warp of x [N,C,H,W] by motion [N,2,H,W] or per-block [N,2,Hb,Wb] (see module doc)."""
    _check_warp_args(x, motion, convention)
    n, _, height, width = x.shape
    m = expand_block_motion(motion.float(), (height, width))
    ys = torch.arange(height, device=x.device, dtype=torch.float32).view(1, height, 1)
    xs = torch.arange(width, device=x.device, dtype=torch.float32).view(1, 1, width)
    px = xs + m[:, 0]
    py = ys + m[:, 1]
    if convention == "exact":
        # Pixel-centre normalisation with align_corners=False: the same mapping as (W-1) + align_corners=True,
        # but defined for W == 1 too.
        gx = (2.0 * px + 1.0) / width - 1.0
        gy = (2.0 * py + 1.0) / height - 1.0
        align = False
    else:
        gx = 2.0 * px / max(width - 1, 1) - 1.0
        gy = 2.0 * py / max(height - 1, 1) - 1.0
        align = convention == "gsvnet"
    grid = torch.stack((gx, gy), dim=-1)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=align)
    return out.to(x.dtype)


def _check_attention_args(q: Tensor, k: Tensor, v: Tensor, window: int) -> None:
    if window < 1 or window % 2 == 0:
        raise ShapeError(f"local attention window must be odd and >= 1, got {window}")
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ShapeError(
            f"local attention needs q, k, v of one shape [N,C,H,W]; got {tuple(q.shape)}, {tuple(k.shape)}, "
            f"{tuple(v.shape)}"
        )


def _check_creff_args(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int) -> None:
    """What every creff implementation requires: `_check_attention_args`, and a residual of q's shape."""
    _check_attention_args(q, k, v, window)
    if residual.shape != q.shape:
        raise ShapeError(f"creff residual {tuple(residual.shape)} must match q {tuple(q.shape)}")


def local_attention(q: Tensor, k: Tensor, v: Tensor, window: int = 7) -> Tensor:
    """CReFF aggregation: softmax over the window x window neighbourhood of q.k, weighted sum of v."""
    _check_attention_args(q, k, v, window)
    dtype = q.dtype
    q, k, v = q.float(), k.float(), v.float()
    height, width = q.shape[-2:]
    r = window // 2
    kp = F.pad(k, (r, r, r, r))
    vp = F.pad(v, (r, r, r, r))
    offsets = [(dy, dx) for dy in range(window) for dx in range(window)]
    scores = torch.stack(
        [(q * kp[:, :, dy : dy + height, dx : dx + width]).sum(1) for dy, dx in offsets], dim=1
    )  # [N, window^2, H, W]
    attn = scores.softmax(dim=1)
    out = torch.zeros_like(q)
    for i, (dy, dx) in enumerate(offsets):
        out = out + attn[:, i : i + 1] * vp[:, :, dy : dy + height, dx : dx + width]
    return out.to(dtype)


def creff(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int = 7) -> Tensor:
    """AR-Seg's fusion: residual + local_attention(q, k, v)."""
    _check_creff_args(q, k, v, residual, window)
    return (residual.float() + local_attention(q, k, v, window).float()).to(residual.dtype)


def creff_channels_last(q: Tensor, k: Tensor, v: Tensor, residual: Tensor, window: int = 7) -> Tensor:
    """`creff`, composed on [N,H,W,C] views so that every reduction runs over the contiguous channel axis.

    The same arithmetic in another order (float32, equal to `creff` to rounding). Why a second composition: a
    compiler that fuses it (Inductor) turns the window^2 channel sums into vectorised loops over contiguous
    channels, where the NCHW composition's sums stride by H*W. At C=256, 64x128 on one CPU core, compiled by
    Inductor: 31 ms against 61 (channels_last inputs) and 93 against 109 (NCHW inputs); with the three depthwise
    convolutions before it and the packages' options, 42-57 ms against 63
    (benchmarks/results/cpu-2c-2026-12-07-inductor-options.md). In ONNX Runtime (CPU, one thread) 287 ms
    against 745. Every exported artifact carries this one (`vidseg.export.program.REFERENCE_DECOMPOSITIONS`)."""
    _check_creff_args(q, k, v, residual, window)
    height, width = q.shape[-2:]
    r = window // 2
    qh = q.float().permute(0, 2, 3, 1)
    kp = F.pad(k.float(), (r, r, r, r)).permute(0, 2, 3, 1)
    vp = F.pad(v.float(), (r, r, r, r)).permute(0, 2, 3, 1)
    offsets = [(dy, dx) for dy in range(window) for dx in range(window)]
    scores = torch.stack([(qh * kp[:, dy : dy + height, dx : dx + width]).sum(-1) for dy, dx in offsets], dim=-1)
    attn = scores.softmax(dim=-1)  # [N, H, W, window^2]
    out = torch.zeros_like(qh)
    for i, (dy, dx) in enumerate(offsets):
        out = out + attn[..., i : i + 1] * vp[:, dy : dy + height, dx : dx + width]
    out = out.to(q.dtype).float().permute(0, 3, 1, 2)
    return (residual.float() + out).to(residual.dtype)


# GSVNet's guided spatially-varying combination (appended; see the function's docstring).
GSV_SHIFTS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
__all__ += ["guided_sv_conv", "GSV_SHIFTS"]


def guided_sv_conv(logits: Tensor, guide: Tensor, intra: Tensor, eps: float = 1e-9) -> Tensor:
    """GSVNet's guided spatially-varying convolution (model/gsv/network.py, reference/gsvnet.md §5).

    logits: [N,K,H,W] warped previous logits S^; guide: [N,11,H,W] non-negative per-pixel weights (the guiding
    network's ReLU output, *before* normalisation); intra: [N,K,H,W] intra-frame logits A.

        w_k(p) = guide_k(p) / (sum_{k=0..10} guide_k(p) + eps)
        out(c,p) = w_0 S^(c,p) + sum_{n=1..8} w_n S^(c, p + d_n) + w_9 * 0 + w_10 A(c,p)

    with d_n = (dy, dx) = GSV_SHIFTS[n-1], i.e. the 3x3 neighbours in row-major order without the centre (the
    seed's fixed "ideal-delay" conv3d kernels; a kernel with its 1 at (r, c) reads S^(i+r-1, j+c-1)), zero
    outside the map. Slot 9 is the seed's all-zero ninth delay kernel: it contributes nothing but its weight still
    counts in the normalisation, so the effective weights sum to 1 - w_9. One 11-tap kernel per pixel, shared by
    all K classes. Computed in float32, returned in logits' dtype.

    Traffic (this composition, fp32): reads S^ ~9x (shifted slices), guide and intra once, and materialises the
    normalised weights (11*H*W*4 B) plus one [N,K,H,W] accumulator per tap; a fused kernel reads S^ (with a
    1-pixel halo), guide and intra once and writes out once: (2K + 11) * H * W * 4 B.
    """
    if logits.dim() != 4 or guide.dim() != 4 or intra.shape != logits.shape:
        raise ShapeError(
            f"guided_sv_conv needs logits and intra [N,K,H,W] of one shape and guide [N,11,H,W]; got "
            f"{tuple(logits.shape)}, {tuple(guide.shape)}, {tuple(intra.shape)}"
        )
    n, _, height, width = logits.shape
    if tuple(guide.shape) != (n, 11, height, width):  # centre, 8 shifts, zero slot, intra
        raise ShapeError(f"guided_sv_conv guide must be [{n},11,{height},{width}], got {tuple(guide.shape)}")
    dtype = logits.dtype
    s, g, a = logits.float(), guide.float(), intra.float()
    w = g / (g.sum(dim=1, keepdim=True) + eps)
    sp = F.pad(s, (1, 1, 1, 1))
    out = w[:, 0:1] * s
    for i, (dy, dx) in enumerate(GSV_SHIFTS):
        out = out + w[:, i + 1 : i + 2] * sp[:, :, 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
    out = out + w[:, 10:11] * a
    return out.to(dtype)

"""logits -> uint8 labels: bilinear resize to the frame plus argmax over classes, separably and in row bands on
the CPU.

The plain composition (F.interpolate to the frame, then argmax over dim 1) spends most of its time in the argmax:
PyTorch reduces channels_last logits over their 19 contiguous classes one pixel at a time (~45 ns a pixel here),
and reduces NCHW logits over dim 1 slower still; only a max over an outer dimension is vectorised across pixels.
It also materialises full-size float32 logits, 38 MiB for 19 classes at 512x1024. So on the CPU this module
computes the same resize itself, class-major:

  1. Bilinear resizing is separable. Each axis is a matrix [out, in] with two non-zero taps per row (PyTorch's
     source coordinates and weights, `resize_matrix`); the seed's x8 upsample followed by its resize to the frame
     is the product of two such matrices (up to four taps), so both steps cost one pass.
  2. Columns first, on the small map: C = L Rx^T ([K, h, W]), as a gather of the transposed map's rows.
  3. Then a band of output rows at a time, small enough to stay in cache: V = Ry[band] C ([K, rows, W], one
     gather and multiply-add per tap), the max over classes (amax over the outer dimension), and the first class
     that reaches it (an equality mask ranked by class, reduced with amax again).

Every class goes through the same arithmetic, so exact ties stay ties and the first class wins them, as argmax
does. The labels equal the plain composition's except where two classes' interpolated logits differ by float32
rounding: PyTorch sums the four weighted corners in another order (and derives its weights in float32). On
random logits that is a few pixels per million, at gaps below 1e-6 of the logits' scale
(tests/models/test_labels.py). Logits with NaN or infinity take the plain composition (argmax's NaN rule), and
so do CUDA tensors (one fused pass on the GPU already).

Measured against the previous banded plain composition (PyTorch's channels_last resize in row bands, then argmax;
19 classes, the seed's x8 from stride-8 logits, one thread, 2-core AMD EPYC, best of 3 x 10 calls): 35.9 -> 17.8 ms
at 512x1024, 35.9 -> 17.9 ms at 540x960 (x8 to 544 rows, then resized to 540), 142 -> 77 ms at 1024x2048.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["logits_to_labels", "upsample_logits", "resize_matrix", "BAND_BYTES"]

# Bytes of float32 class-major logits per band: cache-sized, so the max and the mask read what the row
# interpolation just wrote from cache.
BAND_BYTES = 4 * 2**20


def upsample_logits(logits: Tensor, factor: int) -> Tensor:
    """The seed's in-network upsample of stride-`factor` logits: x`factor` bilinear, align_corners=False.

    Given as a size (the scale is then exactly 1/factor, as nn.Upsample(scale_factor=factor) samples), which
    PyTorch's CPU kernel runs 2x faster on channels_last logits. factor 1 returns the logits as they are.
    """
    if factor == 1:
        return logits
    size = (logits.shape[-2] * factor, logits.shape[-1] * factor)
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def resize_matrix(n_in: int, n_out: int, align_corners: bool) -> Tensor:
    """float64 [n_out, n_in]: F.interpolate's bilinear resize along one axis (PyTorch's source coordinates:
    dst * (n_in - 1) / (n_out - 1) with align_corners, else (dst + 1/2) * n_in / n_out - 1/2 clamped at 0; the
    last input row's second tap clamped onto itself)."""
    dst = torch.arange(n_out, dtype=torch.float64)
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1)) if n_out > 1 else torch.zeros_like(dst)
    else:
        src = ((dst + 0.5) * (n_in / n_out) - 0.5).clamp(min=0.0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    frac = src - i0
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m.index_put_((rows, i0), 1.0 - frac, accumulate=True)
    m.index_put_((rows, i1), frac, accumulate=True)
    return m


@functools.lru_cache(maxsize=64)
def _axis_taps(n_in: int, n_out: int, align_corners: bool, upsample: int) -> tuple[Tensor, Tensor]:
    """(index [T, n_out] int64, weight [T, n_out] float32): the non-zero taps of one axis's operator, the seed's
    x`upsample` (align_corners=False) first where upsample > 1, then the resize to n_out (none if it is the
    identity). Rows with fewer than T taps are padded with weight 0. Cached per frame size: only these small
    tap tables are kept, not the dense matrices they come from."""
    m = resize_matrix(n_in, n_out, align_corners)
    if upsample != 1:
        up = resize_matrix(n_in, n_in * upsample, False)
        m = up if n_in * upsample == n_out else resize_matrix(n_in * upsample, n_out, align_corners) @ up
    taps = int((m != 0).sum(1).max().clamp(min=1))
    weight, index = m.topk(taps, dim=1)  # non-zero weights first; padding takes weight 0
    return index.t().contiguous(), weight.t().float().contiguous()


def _apply_taps(src: Tensor, dim: int, index: Tensor, weight: Tensor, out: Tensor) -> Tensor:
    """out = sum_t src.index_select(dim, index[t]) * weight[t] (weight broadcast along dim)."""
    shape = [1] * src.dim()
    shape[dim] = -1
    torch.mul(src.index_select(dim, index[0]), weight[0].view(shape), out=out)
    for t in range(1, index.shape[0]):
        out.addcmul_(src.index_select(dim, index[t]), weight[t].view(shape))
    return out


def _plain(logits: Tensor, size: tuple[int, int], align_corners: bool, upsample: int) -> Tensor:
    logits = upsample_logits(logits.float(), upsample)
    if logits.shape[-2:] != torch.Size(size):
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=align_corners)
    return logits.argmax(1).to(torch.uint8)


def logits_to_labels(logits: Tensor, size: tuple[int, int], *, align_corners: bool = True,
                     upsample: int = 1) -> Tensor:
    """Resize logits [N,K,h,w] to size (H, W) bilinearly and take the argmax -> uint8 labels [N,H,W].

    The labels of `F.interpolate(upsample_logits(logits, upsample).float(), size, mode="bilinear",
    align_corners=...).argmax(1)` (no second resize when the size already matches), up to float32 rounding at
    near-ties; computed separably in row bands on the CPU (see the module docstring). upsample:
    `ModelSpec.logits_upsample`.
    """
    height, width = int(size[0]), int(size[1])
    n, k, h, w = logits.shape
    if (logits.device.type != "cpu" or n * k * h * w == 0 or height * width == 0 or k > 255
            or not bool(torch.isfinite(logits).all())):
        return _plain(logits, (height, width), align_corners, upsample)
    iy, wy = _axis_taps(h, height, align_corners, upsample)
    ix, wx = _axis_taps(w, width, align_corners, upsample)
    rows = max(1, min(height, BAND_BYTES // (4 * k * width)))
    labels = torch.empty((n, height, width), dtype=torch.uint8)
    rank = torch.arange(k, 0, -1, dtype=torch.float32).view(k, 1)  # class c ranks k - c: the first max ranks highest
    with torch.no_grad():
        band = torch.empty((k, rows, width))
        top = torch.empty(rows * width)
        mask = torch.empty((k, rows * width))
        for b in range(n):
            # Columns: gathering along the last dimension goes element by element (~9x slower), so the small map
            # is transposed, its rows gathered, and the result transposed back to class-major [K, h, W].
            image = logits[b].float().transpose(1, 2).contiguous()  # [K, w, h]
            cols = _apply_taps(image, 1, ix, wx, torch.empty((k, width, h))).transpose(1, 2).contiguous()
            for y0 in range(0, height, rows):
                r = min(rows, height - y0)
                v = _apply_taps(cols, 1, iy[:, y0 : y0 + r], wy[:, y0 : y0 + r], band[:, :r]).view(k, r * width)
                m, e = top[: r * width], mask[:, : r * width]
                torch.amax(v, 0, out=m)
                torch.eq(v, m, out=e)  # a float mask: PyTorch writes it ~3x faster than a bool one
                e.mul_(rank)
                torch.amax(e, 0, out=m)  # k - (the first class at the max)
                labels[b, y0 : y0 + r].view(-1).copy_(m.neg_().add_(k))
    return labels

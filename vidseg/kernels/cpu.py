"""CPU kernel for vidseg::creff: CReFF's local attention as small GEMMs over channels-last column strips.

Semantics: exactly `vidseg.kernels.reference.creff` (raw q.k scores, no 1/sqrt(C); zero-padded neighbours score
0 and keep their softmax weight; residual added; float32 arithmetic whatever the input dtypes, the attention
rounded to q's dtype before the residual is added, the sum rounded to residual's dtype). The result has the
residual's memory format (`vidseg.kernels.layout`), so a channels_last network gets channels_last back uncopied.

Method. Queries are taken tw pixels of one row at a time (a row tile). The window x window neighbourhoods of a row
tile at row y, columns x0 .. x0+tw-1, all lie in the block of rows y-r .. y+r, columns x0-r .. x0+tw-1+r
(r = window // 2, hw = tw + 2r columns), so per row tile

    scores = Q K^T + bias        Q: [tw, C] the row tile's queries, K: [window*hw, C] that block's keys
    attn   = softmax(scores)     bias: 0 where the key lies in the query's window, -inf elsewhere
    out    = attn V              V: [window*hw, C] the block's values

is the reference's softmax over the window^2 neighbours (the -inf entries take no weight; block pixels outside the
map are zeros, so they score 0 and add value 0, as the reference's zero padding does). The GEMMs do hw / window
times the useful multiply-adds (2x for tw = 8 at window 7; 8x8 square tiles did 4x).

Channels-last makes the blocks cheap to reach. For one column of row tiles (columns x0-r .. x0+tw-1+r, a *strip*
of hw pixels), the strip's rows, copied once into a zero-bordered buffer [rows + 2r, hw, C], hold every row
tile's block as `window` consecutive strip rows: one contiguous [window*hw, C] matrix, and the blocks of
consecutive row tiles are the same matrix shifted by one strip row. So one batched GEMM (batch = the strip's row
tiles, an overlapping strided view, nothing gathered per tile) computes a whole strip's scores and another its
output; the queries are a plain view of q's rows, and the results go to the output's rows with the residual added
in the same pass. The only copy of k and v is the strip buffers (hw / tw = 1.75x each at tw = 8).

Scratch buffers are kept per thread for the last shape seen: a fresh large allocation costs a page fault per
4 KiB here, which made every first touch of a temporary several times slower than a warm one, and a video runs
one shape frame after frame.

Measured (C=256, 64x128 = arseg-bise18-cityscapes' non-key fusion at 512x1024, window 7, fp32, 1 torch thread,
2-core AMD EPYC heavily shared with other jobs, torch 2.13; interleaved runs, ratios paired; absolute times were
inflated several-fold by the load; benchmarks/results/cpu_kernels_512x1024.md):
- the previous kernel (8x8 tiles gathered from channels-first bands with unfold/permute, NCHW output copied to
  channels_last by the op): 3.4x [3.1-3.8] slower than this one, the op's copy included. Its gathers were ~58 % of
  its time and its GEMMs did 4x the useful work.
- 8x8 tiles gathered from channels-last bands: GEMM-bound at 4x waste, 1.2-1.5x slower than these strips.
- 1 x tw row tiles with one batched GEMM per window row and no strip copy: GEMMs of 8 x 256 x 14 run at a few
  GFLOP/s, 2x slower than even the previous kernel. tw = 4 (1.43x waste, 4-row GEMMs) and tw = 16 (3.1x waste)
  were 1.4x and 1.1x slower than tw = 8.
- a per-offset shifted-window accumulation (window^2 products and sums over channels-last bands): exact work but
  ~8 in-cache passes per offset; slower than the GEMMs.
- the channels-last composition (window^2 shifted products, softmax, weighted sum) compiled by torch.compile
  (inductor, C++): 1.15-1.25x faster than this kernel in the same runs, but its first call compiled for 36-42 s
  (warm inductor cache) and it needs a C++ toolchain at run time, so it is not used here; the `compile` backend
  could hand inductor that composition instead of the opaque op, where both costs are paid at engine build.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import torch
from torch import Tensor

from vidseg.errors import ShapeError
from vidseg.kernels.layout import memory_format_of
from vidseg.kernels.reference import _check_creff_args

__all__ = ["creff", "TILE_WIDTH", "STRIP_BYTES"]

# Query pixels per row tile (see the module docstring for the measurements behind the choice).
TILE_WIDTH = 8
# Bytes of one strip buffer: as many map rows go through a strip at a time as fit, so a strip's keys and values
# stay in the core's cache while its two GEMMs read them.
STRIP_BYTES = 2 * 2**20

_scratch_local = threading.local()


def _row_bias(window: int, tw: int) -> Tensor:
    """[tw, window*hw]: 0 where key (dy, b) of the block lies in query j's window (j <= b < j + window)."""
    hw = tw + window - 1
    j = torch.arange(tw).view(tw, 1, 1)
    b = torch.arange(hw).view(1, 1, hw)
    inside = ((b >= j) & (b < j + window)).expand(tw, window, hw).reshape(tw, window * hw)
    return torch.zeros(tw, window * hw).masked_fill_(~inside, float("-inf"))


def _scratch(c: int, window: int, tw: int, rows: int) -> SimpleNamespace:
    """This thread's buffers for one shape: reused while the shape repeats, replaced when it changes. Buffers made
    under inference mode are inference tensors, which may not be written outside it: the mode is part of the key."""
    key = (c, window, tw, rows, torch.is_inference_mode_enabled())
    cached = getattr(_scratch_local, "buffers", None)
    if cached is not None and cached.key == key:
        return cached
    hw = tw + window - 1
    f32 = torch.float32
    s = SimpleNamespace(key=key)
    s.bias = _row_bias(window, tw)
    s.kstrip = torch.zeros(rows + window - 1, hw, c, dtype=f32)
    s.vstrip = torch.zeros_like(s.kstrip)
    s.qtile = torch.zeros(rows, tw, c, dtype=f32)  # queries of a strip that runs past the map's right edge
    s.scores = torch.empty(rows, tw, window * hw, dtype=f32)
    s.out = torch.empty(rows, tw, c, dtype=f32)
    _scratch_local.buffers = s
    return s


def _fill(dst: Tensor, src: Tensor, top: int, left: int) -> None:
    """dst[i, j] = src[top + i, left + j] ([H, W, C] views), zero where that lies outside src."""
    rows, cols = dst.shape[:2]
    h, w = src.shape[:2]
    y0, y1 = min(max(0, top), top + rows), max(min(h, top + rows), top)  # rows of dst inside src: y0-top .. y1-top
    x0, x1 = min(max(0, left), left + cols), max(min(w, left + cols), left)
    dst[: y0 - top].zero_()
    dst[y1 - top :].zero_()
    inside = dst[y0 - top : y1 - top]
    inside[:, : x0 - left].zero_()
    inside[:, x1 - left :].zero_()
    if y1 > y0 and x1 > x0:
        inside[:, x0 - left : x1 - left].copy_(src[y0:y1, x0:x1])


def _blocks(strip: Tensor, rows: int, window: int) -> Tensor:
    """[rows, window*hw, C]: row tile i's block = strip rows i .. i+window-1 (overlapping views, no copy)."""
    _, hw, c = strip.shape
    return strip.as_strided((rows, window * hw, c), (hw * c, c, 1), strip.storage_offset())


def creff(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    residual: Tensor,
    window: int = 7,
    tile_width: int = TILE_WIDTH,
    rows_per_step: int | None = None,
) -> Tensor:
    """residual + local_attention(q, k, v, window) on CPU tensors [N,C,H,W], in residual's memory format.

    Any float dtypes and layouts (computed in float32; channels_last inputs are read without a transpose); the
    output has residual's dtype. `tile_width` query pixels per row tile; `rows_per_step` map rows per strip
    (default: as many as fit in STRIP_BYTES).
    """
    _check_creff_args(q, k, v, residual, window)
    tw = tile_width
    if tw < 1 or (rows_per_step is not None and rows_per_step < 1):
        raise ShapeError(f"creff tile_width and rows_per_step must be >= 1, got {tile_width}, {rows_per_step}")
    n, c, h, w = q.shape
    r = window // 2
    hw = tw + 2 * r
    if rows_per_step is None:
        rows_per_step = max(8, STRIP_BYTES // (hw * c * 4) - 2 * r)
    rows = min(rows_per_step, h)
    s = _scratch(c, window, tw, rows)
    out = torch.empty((n, c, h, w), dtype=residual.dtype, memory_format=memory_format_of(residual))
    # [N, H, W, C] views: plain views of channels_last tensors, strided ones of NCHW tensors.
    qh, kh, vh, rh, oh = (t.permute(0, 2, 3, 1) for t in (q, k, v, residual, out))
    exact = q.dtype == torch.float32 and residual.dtype == torch.float32
    for b in range(n):
        for y0 in range(0, h, rows):
            m = min(rows, h - y0)  # row tiles of this step, per strip
            scores, attn = s.scores[:m], s.out[:m]
            for x0 in range(0, w, tw):
                cols = min(tw, w - x0)  # query columns inside the map
                kstrip, vstrip = s.kstrip[: m + 2 * r], s.vstrip[: m + 2 * r]
                _fill(kstrip, kh[b], y0 - r, x0 - r)
                _fill(vstrip, vh[b], y0 - r, x0 - r)
                if cols == tw and q.dtype == torch.float32:
                    queries = qh[b, y0 : y0 + m, x0 : x0 + tw]
                else:
                    queries = s.qtile[:m]
                    _fill(queries, qh[b], y0, x0)
                torch.baddbmm(s.bias, queries, _blocks(kstrip, m, window).transpose(1, 2), out=scores)
                torch._softmax(scores, -1, False, out=scores)  # [m, tw, window*hw]
                torch.bmm(scores, _blocks(vstrip, m, window), out=attn)
                dst, res = oh[b, y0 : y0 + m, x0 : x0 + cols], rh[b, y0 : y0 + m, x0 : x0 + cols]
                if exact:
                    torch.add(res, attn[:, :cols], out=dst)
                else:  # the reference rounds the attention to q's dtype, then adds in float32
                    dst.copy_(res.float() + attn[:, :cols].to(q.dtype).float())
    return out

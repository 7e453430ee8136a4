"""CPU kernel for vidseg::creff: CReFF's local attention as blocked dense attention on small GEMMs.

Semantics: exactly `vidseg.kernels.reference.creff` (raw q.k scores, no 1/sqrt(C); zero-padded neighbours score
0 and keep their softmax weight; residual added; float32 arithmetic whatever the input dtypes, the attention
rounded to q's dtype before the residual is added, the sum rounded to residual's dtype).

Method. The map is cut into tiles of TILE = th x tw pixels. A tile's window x window neighbourhoods all lie in its
halo of (th + 2r) x (tw + 2r) pixels (r = window // 2), so for one tile

    scores = Q^T K + bias        Q: [C, th*tw] the tile's queries, K: [C, S] its halo's keys, S = halo pixels
    attn   = softmax(scores)     bias: 0 where the halo pixel is in the query's window, -inf elsewhere
    out    = V attn^T            V: [C, S] the halo's values

is the reference's softmax over the window^2 neighbours (the -inf entries take no weight; halo pixels outside the
map are zeros, so they score 0 and add value 0, as the reference's zero padding does). The GEMMs do
S / window^2 times the useful multiply-adds (4x for 8x8 tiles at window 7) but run at GEMM speed from cache, and
nothing of size window^2 * C * H * W is ever materialised. Tiles are processed one band of tile rows at a time
through scratch buffers allocated once per call (fresh large allocations cost a page fault per 4 KiB here, which
made every temporary of the reference ~5x slower than a warm one).

Why this over the alternatives. Measured at C=256, 128x256, window 7, fp32 on a 2-core AMD EPYC (AVX-512) shared
with other jobs, torch 2.13, 1 torch thread, medians of 3 interleaved runs (A B C A B C ...):
- reference.creff: 49 shifted full-map products and sums plus 49 weighted adds, each with fresh C*H*W temporaries:
  ~10 GB of DRAM traffic (2*49*C*H*W*4 B of shifted reads plus the temporaries): 4.1 s (2.2-9 s as load varies).
- row tiles (4 rows), channels-last, online softmax per offset (linalg.vecdot + addcmul_ into buffers in cache):
  ~8 in-cache passes over the tile per offset, 49 * 32 * 8 op calls: 403 ms.
- torch's scaled_dot_product_attention (fused flash kernel) on the same 8x8 tiles, bias as attn_mask: needs
  channels-last tiles (one NCHW->NHWC transpose per input) and allocates per call: 464 ms.
- this (8x8 tiles, channels-first so nothing is transposed, gathers into reused buffers): 215 ms. The two GEMMs do
  6.6 GFLOP (~105 ms at ~60 GFLOP/s on one core), the halo gathers copy ~3x k and v through cache (~60 ms), the
  rest is the bands, the output scatter and the residual add. Tiles of 4x8, 4x16 and 8x16 measured within noise
  of 8x8 (204-253 ms); 16x16 and 2x32 were slower (~320-350 ms).
benchmarks/kernels.py --device cpu --cpu-fast times it against the reference at the seeds' shapes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidseg.errors import ShapeError
from vidseg.kernels.reference import _check_attention_args

__all__ = ["creff", "TILE", "STEP_BYTES"]

# Tile height and width in pixels (see the module docstring for the measurements behind the choice).
TILE = (8, 8)
# Bytes of gathered keys per step: as many tile rows go through the scratch buffers at a time as fit (at least
# one), so the buffers stay in L3 while each op is large enough to amortise its dispatch and thread start-up.
STEP_BYTES = 16 * 2**20


def _window_bias(window: int, th: int, tw: int) -> Tensor:
    """[th*tw, (th+2r)*(tw+2r)]: 0 where halo pixel (a, b) lies in query (i, j)'s window, -inf elsewhere."""
    hh, hw = th + window - 1, tw + window - 1
    i = torch.arange(th).view(th, 1, 1, 1)
    j = torch.arange(tw).view(1, tw, 1, 1)
    a = torch.arange(hh).view(1, 1, hh, 1)
    b = torch.arange(hw).view(1, 1, 1, hw)
    inside = (a >= i) & (a < i + window) & (b >= j) & (b < j + window)
    bias = torch.zeros(th * tw, hh * hw)
    return bias.masked_fill_(~inside.view(th * tw, hh * hw), float("-inf"))


def creff(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    residual: Tensor,
    window: int = 7,
    tile: tuple[int, int] = TILE,
    rows_per_step: int | None = None,
) -> Tensor:
    """residual + local_attention(q, k, v, window) on CPU tensors [N,C,H,W]; returns a contiguous NCHW tensor.

    Any float dtypes (computed in float32); the output has residual's dtype. `tile` = (th, tw) pixels per tile;
    `rows_per_step` tile rows go through the scratch buffers at a time (default: as many as fit in STEP_BYTES).
    """
    _check_attention_args(q, k, v, window)
    if residual.shape != q.shape:
        raise ShapeError(f"creff residual {tuple(residual.shape)} must match q {tuple(q.shape)}")
    th, tw = tile
    if th < 1 or tw < 1 or (rows_per_step is not None and rows_per_step < 1):
        raise ShapeError(f"creff tile must be two positive sizes and rows_per_step >= 1, got {tile}, {rows_per_step}")
    n, c, h, w = q.shape
    r = window // 2
    nty, ntx = -(-h // th), -(-w // tw)
    hh, hw = th + 2 * r, tw + 2 * r  # halo of one tile
    length, size = th * tw, hh * hw  # queries and keys per tile
    if rows_per_step is None:
        rows_per_step = max(1, STEP_BYTES // (ntx * c * size * 4))
    m = min(rows_per_step, nty)  # tile rows per step
    bh = m * th  # query rows per step
    wq = ntx * tw  # width of the tile grid (>= w)
    f32 = torch.float32
    bias = _window_bias(window, th, tw)
    # Scratch, reused for every step. Bands are zero-padded float32 copies of the map rows a step needs.
    kband = torch.zeros(c, bh + 2 * r, wq + 2 * r, dtype=f32)
    vband = torch.zeros_like(kband)
    qband = torch.zeros(c, bh, wq, dtype=f32)
    kt = torch.empty(m, ntx, c, size, dtype=f32)  # per tile: its halo's keys [C, S]
    vt = torch.empty_like(kt)
    qt = torch.empty(m, ntx, c, length, dtype=f32)  # per tile: its queries [C, L]
    scores = torch.empty(m * ntx, length, size, dtype=f32)
    ot = torch.empty(m, ntx, c, length, dtype=f32)
    oband = torch.empty(c, bh, wq, dtype=f32)
    out = torch.empty(n, c, h, w, dtype=residual.dtype)
    exact = q.dtype == f32 and residual.dtype == f32
    for b in range(n):
        for y0 in range(0, h, bh):
            rows = min(h, y0 + bh) - y0  # query rows of this step inside the map
            steps = -(-rows // th)  # tile rows of this step
            lo, hi = max(0, y0 - r), min(h, y0 + bh + r)  # map rows the halos need
            for band, src in ((kband, k), (vband, v)):
                if hi - lo < bh + 2 * r:  # part of the halos lies outside the map
                    band.zero_()
                band[:, lo - (y0 - r) : hi - (y0 - r), r : r + w].copy_(src[b, :, lo:hi])
            if rows < bh:
                qband.zero_()
            qband[:, :rows, :w].copy_(q[b, :, y0 : y0 + rows])
            # Gather each tile's halo and queries: [C, m, ntx, hh, hw] windows -> [m, ntx, C, hh*hw].
            kt.view(m, ntx, c, hh, hw).copy_(kband.unfold(1, hh, th).unfold(2, hw, tw).permute(1, 2, 0, 3, 4))
            vt.view(m, ntx, c, hh, hw).copy_(vband.unfold(1, hh, th).unfold(2, hw, tw).permute(1, 2, 0, 3, 4))
            qt.view(m, ntx, c, th, tw).copy_(qband.view(c, m, th, ntx, tw).permute(1, 3, 0, 2, 4))
            t = steps * ntx  # tiles this step
            sc = scores[:t]
            torch.baddbmm(bias, qt.view(-1, c, length)[:t].transpose(1, 2), kt.view(-1, c, size)[:t], out=sc)
            torch._softmax(sc, -1, False, out=sc)  # [tiles, L, S]
            torch.bmm(vt.view(-1, c, size)[:t], sc.transpose(1, 2), out=ot.view(-1, c, length)[:t])
            oband.view(c, m, th, ntx, tw).copy_(ot.view(m, ntx, c, th, tw).permute(2, 0, 3, 1, 4))
            attn = oband[:, :rows, :w]
            res = residual[b, :, y0 : y0 + rows]
            if exact:
                torch.add(res, attn, out=out[b, :, y0 : y0 + rows])
            else:  # the reference rounds the attention to q's dtype, then adds in float32
                out[b, :, y0 : y0 + rows] = res.float() + attn.to(q.dtype).float()
    return out

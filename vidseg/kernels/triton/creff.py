"""Fused CReFF aggregation: residual + local attention (semantics: `vidseg.kernels.reference.creff`).

One program per (tile of TILE_H x TILE_W pixels, image), one pixel per thread. The window's scores of every pixel
live in registers as a [WP, WP, TILE] block (WP = window rounded up to a power of two; rows and columns past the
window get score -inf, hence weight 0):
  pass 1: for each channel: scores += q[c, p] * k[c, p + (dy, dx)];
  softmax over the window in fp32, max-subtracted; neighbours outside the map keep score 0 and their softmax
          weight, but contribute no value, as the seed's CUDA op (zero padding);
  pass 2: for each channel: out[c, p] = residual[c, p] + sum_(dy,dx) a[p, dy, dx] * v[c, p + (dy, dx)].
Neighbour coordinates are clamped into the map, so the gathers carry no mask (validity is applied once, to the
scores and to the weights), and their addresses are a row part [WP, 1, TILE] plus a column part [1, WP, TILE]:
no per-neighbour index block stays live in the channel loops. The padding rows/columns (WP > WINDOW) are a
compile-time mask, so no load or product is spent on them: a 7x7 window compiles (sm_90, fp32) to 49 k loads
in pass 1, 49 v loads in pass 2, 127 registers, no spills.
A 2-D tile keeps the k/v halo small: an 8x16 tile with a 7x7 window touches 14x22 neighbours per channel, which
the gathers of one channel step find in L1/L2, so DRAM sees k and v about once.

Bytes that must move (N images, C channels, H x W, element size e): read q, k, v, residual once and write out
once = 5*N*C*H*W*e. Nothing else is written: no score map, no unfolded neighbourhoods.
The reference composition (reference.local_attention) instead makes window^2 shifted passes over k and v plus a
window^2-channel score map (about 2*49*C*H*W*4 + 3*49*H*W*4 bytes for a 7x7 window), and an unfold-based one
materialises two [N, C*49, H*W] tensors.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from vidseg.errors import ShapeError
from vidseg.kernels import reference
from vidseg.kernels.triton._common import (
    check_float,
    check_grid_dim,
    check_image,
    check_launch,
    check_same_device,
    device_guard,
    nchw_contiguous,
)

__all__ = ["creff", "creff_bytes", "MAX_WINDOW"]

# The scores of a tile are held in registers, window^2 per pixel (a thread's pixel); 15x15 = 225 is about the
# most that fits. Larger windows need another algorithm (scores in shared memory).
MAX_WINDOW = 15


@triton.jit
def _creff_kernel(
    q_ptr,  # [N, C, H, W] queries, contiguous
    k_ptr,  # [N, C, H, W] keys, contiguous
    v_ptr,  # [N, C, H, W] values, contiguous
    r_ptr,  # [N, C, H, W] residual, contiguous
    out_ptr,  # [N, C, H, W] output (residual's dtype), contiguous
    C,  # channels
    H,  # map height
    W,  # map width
    WINDOW: tl.constexpr,  # odd window side (7 in AR-Seg)
    WP: tl.constexpr,  # window side rounded up to a power of two
    TILE_H: tl.constexpr,  # tile rows
    TILE_W: tl.constexpr,  # tile columns
):
    TILE: tl.constexpr = TILE_H * TILE_W
    R: tl.constexpr = WINDOW // 2
    pid = tl.program_id(0)
    n = tl.program_id(1).to(tl.int64)
    tiles_w = tl.cdiv(W, TILE_W)
    hw = H * W
    img = n * C * hw  # int64 offset of this image; offsets inside it are int32 (the wrapper checks C*H*W)
    q_img, k_img, v_img, r_img, out_img = q_ptr + img, k_ptr + img, v_ptr + img, r_ptr + img, out_ptr + img

    # Pixels of the tile, flattened row-major, on the last (fastest, thread-mapped) axis: [TILE].
    i = tl.arange(0, TILE)
    py = (pid // tiles_w) * TILE_H + i // TILE_W
    px = (pid % tiles_w) * TILE_W + i % TILE_W
    p_ok = (py < H) & (px < W)
    p = tl.minimum(py, H - 1) * W + tl.minimum(px, W - 1)  # tail pixels read a valid pixel; stores are masked

    # Window rows [WP, 1, TILE] and columns [1, WP, TILE] (the seed's offset index is dy*WINDOW + dx).
    w = tl.arange(0, WP)
    ny = py[None, None, :] + (w - R)[:, None, None]
    nx = px[None, None, :] + (w - R)[None, :, None]
    rows = tl.minimum(tl.maximum(ny, 0), H - 1) * W
    cols = tl.minimum(tl.maximum(nx, 0), W - 1)
    # Rows/columns past the window (WP > WINDOW): a compile-time mask, so their loads and products are dropped.
    in_window = (w < WINDOW)[:, None, None] & (w < WINDOW)[None, :, None]
    in_map = in_window & (ny >= 0) & (ny < H) & (nx >= 0) & (nx < W)

    # Pass 1: scores, accumulated over the channels in fp32.
    scores = tl.zeros((WP, WP, TILE), dtype=tl.float32)
    for c in range(0, C):
        plane = c * hw
        qv = tl.load(q_img + plane + p).to(tl.float32)
        kv = tl.load(k_img + plane + rows + cols, mask=in_window, other=0.0).to(tl.float32)
        scores += qv[None, None, :] * kv

    # Softmax over the window: neighbours outside the map score 0 and keep their weight; rows/columns past the
    # window score -inf, weight 0.
    scores = tl.where(in_window, tl.where(in_map, scores, 0.0), float("-inf"))
    e = tl.exp(scores - tl.max(tl.max(scores, axis=0), axis=0)[None, None, :])
    attn = e / tl.sum(tl.sum(e, axis=0), axis=0)[None, None, :]
    attn = tl.where(in_map, attn, 0.0)  # zero padding: no value from outside the map

    # Pass 2: weighted sum of v plus the residual, one write per output element.
    for c in range(0, C):
        plane = c * hw
        vv = tl.load(v_img + plane + rows + cols, mask=in_window, other=0.0).to(tl.float32)
        agg = tl.sum(tl.sum(attn * vv, axis=0), axis=0)  # [TILE]
        res = tl.load(r_img + plane + p).to(tl.float32)
        tl.store(out_img + plane + p, (res + agg).to(out_ptr.dtype.element_ty), mask=p_ok)


def creff_bytes(q: Tensor, k: Tensor, v: Tensor, residual: Tensor) -> int:
    """Bytes CReFF must move: read q, k, v, residual once, write out (residual's dtype) once."""
    return sum(t.numel() * t.element_size() for t in (q, k, v, residual, residual))


def _default_launch(window: int) -> tuple[tuple[int, int], int]:
    """Tile and warps: one pixel per thread, its window^2 scores in registers (7x7: 8x16 tile, 4 warps); larger
    windows take smaller tiles so that a thread's scores stay near 64-128 registers."""
    tile = min(128, max(32, 8192 // triton.next_power_of_2(window * window)))
    return (tile // 16, 16), tile // 32


def creff(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    residual: Tensor,
    window: int = 7,
    *,
    tile: tuple[int, int] | None = None,
    num_warps: int | None = None,
) -> Tensor:
    """residual + local_attention(q, k, v, window), fused; q, k, v, residual [N,C,H,W] of one shape.

    Each tensor may be float32, float16 or bfloat16 (arithmetic fp32, output in residual's dtype).
    Non-contiguous inputs are copied to contiguous NCHW. Raises ShapeError for an even, < 1 or > MAX_WINDOW
    window, mismatched shapes, an unsupported dtype, tensors on different devices, or an image (C*H*W) beyond
    the int32 index range. `tile` (rows, columns; powers of two) and `num_warps` tune the launch.
    """
    reference._check_creff_args(q, k, v, residual, window)
    if window > MAX_WINDOW:
        raise ShapeError(
            f"creff kernel: window {window} exceeds MAX_WINDOW={MAX_WINDOW} (scores are held in registers); "
            f"use vidseg.kernels.reference.creff"
        )
    for name, t in (("q", q), ("k", k), ("v", v), ("residual", residual)):
        check_float("creff", name, t)
    device = check_same_device("creff", q=q, k=k, v=v, residual=residual)
    n, c, height, width = q.shape
    check_image("creff", c, height, width)
    check_grid_dim("creff", "batch N", n)
    out = torch.empty((n, c, height, width), dtype=residual.dtype, device=device)
    if out.numel() == 0:
        return out
    default_tile, default_warps = _default_launch(window)
    tile_h, tile_w = tile if tile is not None else default_tile
    num_warps = num_warps if num_warps is not None else default_warps
    check_launch("creff", tile_h=tile_h, tile_w=tile_w)
    q, k, v, residual = (nchw_contiguous(t) for t in (q, k, v, residual))
    grid = (triton.cdiv(height, tile_h) * triton.cdiv(width, tile_w), n)
    with device_guard(device):
        _creff_kernel[grid](
            q, k, v, residual, out, c, height, width,
            WINDOW=window, WP=triton.next_power_of_2(window), TILE_H=tile_h, TILE_W=tile_w, num_warps=num_warps,
        )  # fmt: skip
    return out

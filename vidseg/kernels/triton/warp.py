"""Fused backward bilinear warp (semantics: `vidseg.kernels.reference.warp`).

One pass: each program takes BLOCK_P consecutive pixels of one image, reads their motion vector (per pixel, or
per codec block: pixel (y, x) reads motion[y // BH, x // BW], so block motion is never expanded), computes the
four bilinear taps and weights once in fp32, then walks its share of the channels BLOCK_C at a time, gathering the
taps and writing the output. No sampling grid is materialised.

Bytes that must move (N images, C channels, H x W, element size e, motion grid Hb x Wb of element size e_m):
    read x:       N*C*H*W*e   (each input element about once when motion is smooth; the four taps of
                               neighbouring pixels overlap and hit in cache; scattered motion can read up to 4x)
    write out:    N*C*H*W*e
    read motion:  N*2*Hb*Wb*e_m per channel split (a few, and L2-resident after the first)
The stock composition (reference.warp) additionally writes and reads an [N,H,W,2] fp32 grid, and in fp16/bf16
casts x to fp32 and the result back (2 more passes over the features).
"""

from __future__ import annotations

import math

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

__all__ = ["warp", "warp_bytes"]


@triton.jit
def _warp_kernel(
    x_ptr,  # [N, C, H, W] features, contiguous
    m_ptr,  # [N, 2, HB, WB] motion in pixels, channel 0 = dx, 1 = dy, contiguous
    out_ptr,  # [N, C, H, W] output, x's dtype, contiguous
    C,  # channels
    H,  # feature map height
    W,  # feature map width
    HB,  # motion grid height (H for per-pixel motion)
    WB,  # motion grid width (W for per-pixel motion)
    BH,  # pixels per motion vector along y (1 for per-pixel motion)
    BW,  # pixels per motion vector along x
    C_PER_PROG,  # channels one program handles (a multiple of BLOCK_C)
    ax,  # sample x = ax * (x + dx) + bx: the convention's grid, in input pixels
    bx,
    ay,  # sample y = ay * (y + dy) + by
    by,
    BLOCK_C: tl.constexpr,  # channels per step of the channel loop
    BLOCK_P: tl.constexpr,  # pixels per program
):
    pid_p = tl.program_id(0)
    pid_c = tl.program_id(1)
    n = tl.program_id(2).to(tl.int64)
    hw = H * W
    # int64 image bases; offsets inside an image are int32 (the wrapper checks C*H*W).
    x_img = x_ptr + n * C * hw
    out_img = out_ptr + n * C * hw

    # Pixels of this program, and their motion (the block's vector for block motion).
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = p < hw
    py = p // W
    px = p % W
    m_base = m_ptr + n * 2 * HB * WB + (py // BH) * WB + (px // BW)
    mx = tl.load(m_base, mask=p_ok, other=0.0).to(tl.float32)
    my = tl.load(m_base + HB * WB, mask=p_ok, other=0.0).to(tl.float32)

    # Sample point in input pixels, then the four bilinear taps as grid_sample computes them.
    ix = ax * (px.to(tl.float32) + mx) + bx
    iy = ay * (py.to(tl.float32) + my) + by
    x0f = tl.floor(ix)
    y0f = tl.floor(iy)
    fx = ix - x0f
    fy = iy - y0f
    # Clamp before the int conversion so that far (or infinite) samples cannot overflow: -2 and W keep both
    # taps of an axis outside the map.
    x0 = tl.minimum(tl.maximum(x0f, -2.0), W * 1.0).to(tl.int32)
    y0 = tl.minimum(tl.maximum(y0f, -2.0), H * 1.0).to(tl.int32)
    x1 = x0 + 1
    y1 = y0 + 1
    vx0 = (x0 >= 0) & (x0 < W)
    vx1 = (x1 >= 0) & (x1 < W)
    vy0 = (y0 >= 0) & (y0 < H)
    vy1 = (y1 >= 0) & (y1 < H)
    # Zero padding: a tap outside the map contributes 0 (masked load, zero weight), as in grid_sample; the
    # zero weight also keeps an infinite sample point (NaN fraction) at 0.
    ok00 = p_ok & vy0 & vx0
    ok01 = p_ok & vy0 & vx1
    ok10 = p_ok & vy1 & vx0
    ok11 = p_ok & vy1 & vx1
    o00 = y0 * W + x0
    o01 = y0 * W + x1
    o10 = y1 * W + x0
    o11 = y1 * W + x1
    w00 = tl.where(ok00, (1.0 - fx) * (1.0 - fy), 0.0)
    w01 = tl.where(ok01, fx * (1.0 - fy), 0.0)
    w10 = tl.where(ok10, (1.0 - fx) * fy, 0.0)
    w11 = tl.where(ok11, fx * fy, 0.0)

    c_start = pid_c * C_PER_PROG
    c_end = tl.minimum(c_start + C_PER_PROG, C)
    for c0 in range(c_start, c_end, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        c_ok = (c < c_end)[:, None]
        plane = (c * hw)[:, None]  # [BLOCK_C, 1]
        src = x_img + plane
        v00 = tl.load(src + o00[None, :], mask=c_ok & ok00[None, :], other=0.0).to(tl.float32)
        v01 = tl.load(src + o01[None, :], mask=c_ok & ok01[None, :], other=0.0).to(tl.float32)
        v10 = tl.load(src + o10[None, :], mask=c_ok & ok10[None, :], other=0.0).to(tl.float32)
        v11 = tl.load(src + o11[None, :], mask=c_ok & ok11[None, :], other=0.0).to(tl.float32)
        val = v00 * w00[None, :] + v01 * w01[None, :] + v10 * w10[None, :] + v11 * w11[None, :]
        tl.store(out_img + plane + p[None, :], val.to(out_ptr.dtype.element_ty), mask=c_ok & p_ok[None, :])


def _sample_affine(convention: str, size: int) -> tuple[float, float]:
    """(a, b) with sample coordinate = a * (pixel + motion) + b along an axis of `size` pixels.

    The composition of the convention's normalisation and grid_sample's unnormalisation (reference.warp):
      exact:  ((2p+1)/S - 1 + 1) * S/2 - 1/2                   = p
      gsvnet: (2p/max(S-1,1) - 1 + 1) * (S-1)/2               = p (S > 1), 0 (S == 1)
      arseg:  (2p/max(S-1,1) - 1 + 1) * S/2 - 1/2             = p * S/max(S-1,1) - 1/2
    """
    if convention == "exact":
        return 1.0, 0.0
    if convention == "gsvnet":
        return (size - 1) / max(size - 1, 1), 0.0
    if convention == "arseg":
        return size / max(size - 1, 1), -0.5
    raise ShapeError(f"unknown warp convention {convention!r}; choose one of {reference.WARP_CONVENTIONS}")


def _block_size(motion_hw: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """Pixels per motion vector; the same tiling rule (and error) as reference.expand_block_motion."""
    (hb, wb), (height, width) = motion_hw, size
    if (hb, wb) == (height, width):
        return 1, 1
    bh, bw = math.ceil(height / hb), math.ceil(width / wb)
    if (hb - 1) * bh >= height or (wb - 1) * bw >= width:
        raise ShapeError(
            f"motion grid {hb}x{wb} does not tile a {height}x{width} map in whole blocks; give per-pixel motion "
            f"or a block grid of ceil(H/b) x ceil(W/b)"
        )
    return bh, bw


def warp_bytes(x: Tensor, motion: Tensor) -> int:
    """Bytes the warp must move: read x and motion once, write out once."""
    return 2 * x.numel() * x.element_size() + motion.numel() * motion.element_size()


def _sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 1  # the interpreter runs programs one after another: fewer, larger programs
    return torch.cuda.get_device_properties(device).multi_processor_count


def warp(
    x: Tensor,
    motion: Tensor,
    convention: str = "exact",
    *,
    block_p: int = 128,
    block_c: int = 8,
    num_warps: int = 4,
) -> Tensor:
    """Backward bilinear warp of x [N,C,H,W] by motion [N,2,H,W] or per-block [N,2,Hb,Wb].

    x: float32/float16/bfloat16 (output in x's dtype, arithmetic fp32); motion: any real dtype (integer codec
    motion is converted to float32). Non-contiguous inputs are copied to contiguous NCHW. Raises ShapeError
    for a bad shape, convention, dtype, device mix, or an image (C*H*W) beyond the int32 index range.
    """
    reference._check_warp_args(x, motion, convention)
    check_launch("warp", block_p=block_p, block_c=block_c)
    check_float("warp", "x", x)
    device = check_same_device("warp", x=x, motion=motion)
    if not motion.is_floating_point():
        motion = motion.float()
    n, c, height, width = x.shape
    hb, wb = motion.shape[-2:]
    bh, bw = _block_size((hb, wb), (height, width))
    check_image("warp", c, height, width)
    check_grid_dim("warp", "batch N", n)
    out = torch.empty((n, c, height, width), dtype=x.dtype, device=device)
    if out.numel() == 0:
        return out
    x = nchw_contiguous(x)
    motion = nchw_contiguous(motion)
    ax, bx = _sample_affine(convention, width)
    ay, by = _sample_affine(convention, height)

    pixel_blocks = triton.cdiv(height * width, block_p)
    # Split the channels over programs only as far as needed to fill the device (about 8 programs per SM);
    # each split re-reads the (small) motion and recomputes the taps.
    splits = min(max(1, triton.cdiv(8 * _sm_count(device), pixel_blocks * n)), triton.cdiv(c, block_c))
    c_per_prog = triton.cdiv(triton.cdiv(c, splits), block_c) * block_c
    grid = (pixel_blocks, triton.cdiv(c, c_per_prog), n)
    with device_guard(device):
        _warp_kernel[grid](
            x, motion, out, c, height, width, hb, wb, bh, bw, c_per_prog, ax, bx, ay, by,
            BLOCK_C=block_c, BLOCK_P=block_p, num_warps=num_warps,
        )  # fmt: skip
    return out

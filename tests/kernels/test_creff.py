"""The fused CReFF kernel against reference.creff: windows, tiles, borders, softmax range, dtypes."""

from __future__ import annotations

import pytest
import torch

from vidseg.errors import ConfigError, ShapeError
from vidseg.kernels import reference

# fp32: the same sums in another order (per-channel fp32 accumulation vs PyTorch's reductions): ~1e-6.
# fp16/bf16: both compute in fp32; the reference rounds the attention to the input dtype before adding the
# residual and rounds again, the kernel rounds once: up to ~1.5 ulp of the output.
TOL = {
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float16: dict(atol=3e-3, rtol=3e-3),
    torch.bfloat16: dict(atol=2.4e-2, rtol=2.4e-2),
}


def _inputs(shape, device, dtype=torch.float32, scale=1.0):
    q, k, v, r = (torch.randn(shape) for _ in range(4))
    return (q * scale).to(device, dtype), (k * scale).to(device, dtype), v.to(device, dtype), r.to(device, dtype)


@pytest.mark.parametrize(
    "shape, window",
    [
        ((2, 5, 13, 29), 7),  # AR-Seg's 7x7, odd map, C not a power of two, N=2
        ((2, 10, 13, 29), 3),  # a window that pads to 4x4
        ((1, 3, 5, 6), 9),  # window larger than the map: most neighbours zero-padded; pads to 16x16
        ((2, 4, 9, 11), 1),  # one neighbour: out = residual + v
    ],
)
def test_matches_reference(kernels, device, shape, window):
    q, k, v, r = _inputs(shape, device)
    out = kernels.creff(q, k, v, r, window)
    assert out.shape == r.shape and out.dtype == r.dtype and out.is_contiguous()
    torch.testing.assert_close(out, reference.creff(q, k, v, r, window), **TOL[torch.float32])


@pytest.mark.parametrize("tile", [(1, 32), (4, 8), (16, 2)])
def test_tiles_with_tails(kernels, device, tile):
    # 13 x 29 is a multiple of none of the tile sides: every tile shape leaves partial tiles on two edges.
    q, k, v, r = _inputs((1, 6, 13, 29), device)
    out = kernels.creff(q, k, v, r, 7, tile=tile)
    torch.testing.assert_close(out, reference.creff(q, k, v, r, 7), **TOL[torch.float32])


def test_zero_padded_neighbours_keep_weight(kernels, device):
    # q.k < 0 everywhere inside the map: the zero-padded neighbours (score 0) then dominate near the border,
    # and the border pixels' output shrinks towards the residual. A kernel that dropped them (-inf) would not.
    shape = (1, 4, 6, 7)
    q = torch.ones(shape, device=device)
    k = -torch.ones(shape, device=device)
    v = torch.ones(shape, device=device)
    r = torch.zeros(shape, device=device)
    out = kernels.creff(q, k, v, r, 7)
    expected = reference.creff(q, k, v, r, 7)
    torch.testing.assert_close(out, expected, **TOL[torch.float32])
    assert out[0, 0, 0, 0] < 0.01  # the corner: 33 padded neighbours at score 0 vs 16 real ones at -4


def test_large_scores_are_stable(kernels, device):
    # |q.k| up to a few hundred: exp overflows without the max subtraction.
    q, k, v, r = _inputs((1, 16, 9, 10), device, scale=6.0)
    out = kernels.creff(q, k, v, r, 7)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, reference.creff(q, k, v, r, 7), **TOL[torch.float32])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision(kernels, device, dtype):
    q, k, v, r = _inputs((2, 5, 13, 29), device, dtype)
    out = kernels.creff(q, k, v, r, 7)
    assert out.dtype == dtype
    torch.testing.assert_close(out, reference.creff(q, k, v, r, 7), **TOL[dtype])


def test_mixed_dtypes_and_layouts(kernels, device):
    # fp16 q/k/v with an fp32 residual (output fp32), channels_last and sliced inputs copied to NCHW.
    q, k, v, r = _inputs((2, 6, 13, 29), device)
    q16, k16, v16 = q.half(), k.half().to(memory_format=torch.channels_last), v.half()
    r_view = torch.cat([r, r], dim=1)[:, :6]
    out = kernels.creff(q16, k16, v16, r_view, 7)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, reference.creff(q16, k16, v16, r, 7), **TOL[torch.float16])


def test_empty_inputs(kernels, device):
    q = torch.randn(2, 0, 4, 5, device=device)
    assert kernels.creff(q, q, q, q, 7).shape == (2, 0, 4, 5)


def test_rejects_what_it_cannot_do(kernels):
    q = torch.randn(1, 3, 5, 6)
    with pytest.raises(ShapeError, match="odd"):
        kernels.creff(q, q, q, q, 4)
    with pytest.raises(ShapeError, match="MAX_WINDOW"):
        kernels.creff(q, q, q, q, kernels.MAX_WINDOW + 2)
    with pytest.raises(ShapeError, match="one shape"):
        kernels.creff(q, q[:, :2], q, q, 7)
    with pytest.raises(ShapeError, match="residual"):
        kernels.creff(q, q, q, q[:, :2], 7)
    with pytest.raises(ShapeError, match="float64"):
        kernels.creff(q, q.double(), q, q, 7)
    with pytest.raises(ShapeError, match="different devices"):
        kernels.creff(q, q, q.to("meta"), q, 7)
    with pytest.raises(ConfigError, match="power of two"):
        kernels.creff(q, q, q, q, 7, tile=(3, 8))
    big = torch.empty(1, 1, 2**16, 2**15, device="meta")
    with pytest.raises(ShapeError, match="int32 per-image index"):
        kernels.creff(big, big, big, big, 7)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_seed_shapes_on_gpu(kernels, dtype):
    # AR-Seg's CReFF working sizes (cityscapes-psp18 C=512 128x256; camvid-bise18 C=256 90x120), scaled inputs
    # as after the depthwise convs.
    for shape in [(1, 512, 128, 256), (2, 256, 90, 120)]:
        q, k, v, r = _inputs(shape, "cuda", dtype, scale=0.2)
        out = kernels.creff(q, k, v, r, 7)
        # C=512 sums: fp32 reordering error grows ~sqrt(C).
        tol = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else TOL[dtype]
        torch.testing.assert_close(out, reference.creff(q, k, v, r, 7), **tol)

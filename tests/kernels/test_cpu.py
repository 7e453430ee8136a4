"""The CPU CReFF kernel (vidseg.kernels.cpu) against reference.creff, and its registration as vidseg::creff's
CPU kernel. Speed is measured in benchmarks/kernels.py (--device cpu --cpu-fast), not here."""

from __future__ import annotations

import pytest
import torch

from vidseg.errors import ShapeError
from vidseg.kernels import cpu, ops, reference

# fp32: the same sums in another order (GEMM blocking vs PyTorch's reductions): ~1e-6 at these magnitudes.
# fp16/bf16: both compute in fp32 from the same inputs and round the attention to the input dtype, then add the
# residual and round again, so they differ only where the fp32 attentions straddle a rounding boundary: 1 ulp of
# the attention (fp16 2^-10, bf16 2^-7 relative) plus 1 ulp of the sum.
TOL = {
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float16: dict(atol=2e-3, rtol=2e-3),
    torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2),
}


def _inputs(shape, dtype=torch.float32, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v, r = (torch.randn(shape, generator=g) for _ in range(4))
    return (q * scale).to(dtype), (k * scale).to(dtype), v.to(dtype), r.to(dtype)


@pytest.mark.parametrize(
    "shape, window",
    [
        ((2, 5, 13, 29), 7),  # AR-Seg's 7x7, odd map, C not a power of two, N=2
        ((2, 10, 13, 29), 3),
        ((1, 3, 5, 6), 9),  # window larger than the map: most neighbours zero-padded
        ((2, 4, 9, 11), 1),  # one neighbour: out = residual + v
        ((1, 7, 21, 17), 7),  # several strips, a partial last strip
        ((1, 8, 16, 24), 7),  # whole strips only (the aligned path)
    ],
)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_matches_reference(shape, window, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    q, k, v, r = (t.contiguous(memory_format=fmt) for t in _inputs(shape))
    out = cpu.creff(q, k, v, r, window)
    assert out.shape == r.shape and out.dtype == r.dtype and out.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(out, reference.creff(q, k, v, r, window), **TOL[torch.float32])


@pytest.mark.parametrize("tile_width, rows_per_step", [(8, 1), (8, 5), (4, 3), (1, 2), (16, 13), (3, 40)])
def test_tiles_and_steps_with_tails(tile_width, rows_per_step):
    # 13 x 29 is a multiple of none of the tile widths; steps of several rows leave a partial last step, and a
    # step taller than the map (40) is cut to it.
    q, k, v, r = _inputs((2, 6, 13, 29), seed=1)
    out = cpu.creff(q, k, v, r, 7, tile_width=tile_width, rows_per_step=rows_per_step)
    torch.testing.assert_close(out, reference.creff(q, k, v, r, 7), **TOL[torch.float32])


def test_scratch_is_reused_and_replaced_across_shapes():
    # Per-thread buffers of the last shape: a second call of the same shape reuses them (zero borders intact),
    # another shape replaces them, and results never depend on what ran before.
    a, b = _inputs((1, 5, 11, 19), seed=7), _inputs((2, 5, 9, 8), seed=8)
    first = cpu.creff(*a, 5)
    buffers = cpu._scratch_local.buffers
    torch.testing.assert_close(cpu.creff(*b, 5), reference.creff(*b, 5), **TOL[torch.float32])
    assert cpu._scratch_local.buffers is not buffers
    assert torch.equal(cpu.creff(*a, 5), first) and torch.equal(cpu.creff(*a, 5), first)


def test_zero_padded_neighbours_keep_weight():
    # q.k < 0 inside the map: the zero-padded neighbours (score 0) dominate near the border.
    shape = (1, 4, 6, 7)
    q, k, v, r = torch.ones(shape), -torch.ones(shape), torch.ones(shape), torch.zeros(shape)
    out = cpu.creff(q, k, v, r, 7)
    torch.testing.assert_close(out, reference.creff(q, k, v, r, 7), **TOL[torch.float32])
    assert out[0, 0, 0, 0] < 0.01  # the corner: 33 padded neighbours at score 0 vs 16 real ones at -4


def test_large_scores_are_stable():
    # |q.k| up to a few hundred: exp overflows without the max subtraction.
    q, k, v, r = _inputs((1, 16, 9, 10), scale=6.0, seed=2)
    assert (q * k).sum(1).abs().max() > 100
    out = cpu.creff(q, k, v, r, 7)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, reference.creff(q, k, v, r, 7), **TOL[torch.float32])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision(dtype):
    q, k, v, r = _inputs((2, 5, 13, 29), dtype, seed=3)
    out = cpu.creff(q, k, v, r, 7)
    assert out.dtype == dtype and out.is_contiguous()
    torch.testing.assert_close(out, reference.creff(q, k, v, r, 7), **TOL[dtype])


def test_mixed_dtypes_and_layouts():
    q, k, v, r = _inputs((1, 6, 11, 13), seed=4)
    q16 = q.half()
    kcl = k.to(memory_format=torch.channels_last)
    vt = v.transpose(2, 3).contiguous().transpose(2, 3)  # non-contiguous view
    out = cpu.creff(q16, kcl, vt, r, 5)
    assert out.dtype == torch.float32 and out.is_contiguous()
    torch.testing.assert_close(out, reference.creff(q16, kcl, vt, r, 5), **TOL[torch.float16])


def test_bad_arguments_raise_shape_errors():
    q, k, v, r = _inputs((1, 2, 5, 6))
    with pytest.raises(ShapeError):
        cpu.creff(q, k, v, r, 4)
    with pytest.raises(ShapeError):
        cpu.creff(q, k[..., :5], v, r, 3)
    with pytest.raises(ShapeError):
        cpu.creff(q, k, v, r[:, :1], 3)
    with pytest.raises(ShapeError):
        cpu.creff(q, k, v, r, 3, tile_width=0)


def test_the_custom_op_runs_the_cpu_kernel_on_cpu():
    assert ops.implementation("cpu") == "cpu" and ops.implementation("cpu", "creff") == "cpu"
    assert ops.implementation("cpu", "warp") == "cpu"
    q, k, v, r = _inputs((2, 5, 13, 29), seed=5)
    # Bit-identical to the CPU kernel (and not to the reference, whose sums run in another order).
    assert torch.equal(torch.ops.vidseg.creff(q, k, v, r, 7), cpu.creff(q, k, v, r, 7))
    assert torch.equal(ops.creff(q, k, v, r, 7), cpu.creff(q, k, v, r, 7))
    assert not torch.equal(ops.creff(q, k, v, r, 7), reference.creff(q, k, v, r, 7))
    torch.library.opcheck(torch.ops.vidseg.creff.default, (q, k, v, r, 7))


def test_gradients_and_export_still_take_the_reference():
    q, k, v, r = _inputs((1, 3, 6, 7), seed=6)
    q.requires_grad_(True)
    assert torch.equal(ops.creff(q, k, v, r, 3), reference.creff(q, k, v, r, 3))


def test_scratch_made_under_inference_mode_is_not_reused_outside_it():
    """An engine run (under inference mode) then an export or a training step (outside it) with the same shapes:
    the per-thread scratch of the first may not be written by the second."""
    q, k, v, r = _inputs((1, 8, 12, 16), seed=7)
    with torch.inference_mode():
        inside = cpu.creff(q, k, v, r, 3)
    assert torch.equal(cpu.creff(q, k, v, r, 3), inside)


@pytest.mark.parametrize("shape, window", [((2, 5, 13, 29), 7), ((1, 3, 5, 6), 9), ((2, 4, 9, 11), 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_channels_last_composition_is_the_reference(shape, window, dtype):
    # reference.creff_channels_last is what exported artifacts carry (vidseg.export.program): the same sums
    # over channels in another order, the same roundings to q's and the residual's dtypes.
    q, k, v, r = _inputs(shape, dtype, scale=0.5, seed=3)
    out = reference.creff_channels_last(q, k, v, r, window)
    assert out.shape == r.shape and out.dtype == dtype
    torch.testing.assert_close(out, reference.creff(q, k, v, r, window), **TOL[dtype])

"""The CPU warp kernel (vidseg.kernels.cpu_warp) against reference.warp: channels-last gather, NCHW grid_sample."""

from __future__ import annotations

import pytest
import torch

from vidseg.errors import ShapeError
from vidseg.kernels import cpu_warp, ops, reference

CONVENTIONS = reference.WARP_CONVENTIONS
# fp32: the same sample points and weights as grid_sample; the four-term sum may round differently (embedding_bag
# accumulates with fused multiply-adds): 1 ulp of values ~3, far inside 1e-5.
# fp16/bf16: both compute in fp32 and round once to the input dtype; allow ~2 ulp of the output.
TOL = {
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float16: dict(atol=2e-3, rtol=2e-3),
    torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2),
}


def _cl(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


def _motion(kind: str, n: int, height: int, width: int, scale: float) -> torch.Tensor:
    if kind == "pixel":
        return torch.randn(n, 2, height, width) * scale
    return torch.randn(n, 2, 4, 8) * scale  # 4 x 8 blocks over 13 x 29: partial last row and column


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("kind", ["pixel", "block"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_channels_last_matches_reference(convention, kind, dtype):
    # Odd map, C not a power of two, N=2; motion up to ~3 sigma = 18 px pushes many taps off the map.
    x = _cl(torch.randn(2, 5, 13, 29).to(dtype))
    m = _motion(kind, 2, 13, 29, 6.0)
    out = cpu_warp.warp(x, m, convention)
    assert out.dtype == dtype and out.shape == x.shape
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    torch.testing.assert_close(out, reference.warp(x, m, convention), **TOL[dtype])


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_nchw_input_is_the_reference(convention):
    x, m = torch.randn(2, 5, 13, 29), _motion("block", 2, 13, 29, 4.0)
    out = cpu_warp.warp(x, m, convention)
    assert out.is_contiguous() and torch.equal(out, reference.warp(x, m, convention))


def test_a_seed_sized_map_is_bit_identical_to_grid_sample():
    # The sample points and weights are grid_sample's own; at the seeds' channel counts the sums agree exactly.
    g = torch.Generator().manual_seed(3)
    x = _cl(torch.randn(1, 64, 16, 32, generator=g))
    m = torch.randn(1, 2, 16, 32, generator=g) * 3
    for convention in ("arseg", "gsvnet"):
        assert torch.equal(cpu_warp.warp(x, m, convention), reference.warp(x, m, convention))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_motion_outside_the_frame_gives_zeros(convention):
    x = _cl(torch.randn(1, 3, 9, 11))
    for dx, dy in [(40.0, 0.0), (0.0, -30.0), (1e7, -1e7), (float("inf"), 0.0), (float("-inf"), 2.0)]:
        m = torch.tensor([dx, dy]).view(1, 2, 1, 1).expand(1, 2, 9, 11)
        assert torch.equal(cpu_warp.warp(x, m, convention), torch.zeros_like(x)), (dx, dy)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_motion_straddling_the_border(convention):
    x = _cl(torch.randn(2, 4, 7, 10))
    m = torch.empty(2, 2, 7, 10).uniform_(-1.0, 1.0)
    m[:, 0, :, 0] -= 0.5
    m[:, 0, :, -1] += 0.5
    m[:, 1, 0, :] -= 0.5
    m[:, 1, -1, :] += 0.5
    torch.testing.assert_close(cpu_warp.warp(x, m, convention), reference.warp(x, m, convention), **TOL[x.dtype])


def test_integer_shift_is_exact():
    x = _cl(torch.randn(1, 3, 8, 12))
    m = torch.zeros(1, 2, 8, 12)
    m[:, 0], m[:, 1] = 2.0, -1.0  # out[y, x] = x[y - 1, x + 2]
    out = cpu_warp.warp(x, m, "exact")
    assert torch.equal(out[..., 1:, :10], x[..., :-1, 2:])
    assert torch.equal(out[..., 0, :], torch.zeros_like(out[..., 0, :]))
    assert torch.equal(out[..., 10:], torch.zeros_like(out[..., 10:]))


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("size", [(1, 9), (7, 1), (2, 2)])
def test_degenerate_axes(convention, size):
    x = torch.randn(1, 3, *size).contiguous(memory_format=torch.channels_last)
    m = torch.randn(1, 2, *size)
    torch.testing.assert_close(cpu_warp.warp(x, m, convention), reference.warp(x, m, convention), **TOL[x.dtype])


def test_codec_integer_motion_and_the_custom_op():
    x = _cl(torch.randn(2, 6, 13, 29))
    m = torch.randint(-8, 9, (2, 2, 4, 8), dtype=torch.int16)
    expected = reference.warp(x, m, "arseg")
    torch.testing.assert_close(cpu_warp.warp(x, m, "arseg"), expected, **TOL[x.dtype])
    assert torch.equal(ops.warp(x, m, "arseg"), cpu_warp.warp(x, m, "arseg"))  # what vidseg::warp runs on CPU


def test_rejects_what_the_reference_rejects():
    x = _cl(torch.randn(1, 2, 13, 29))
    with pytest.raises(ShapeError, match="convention"):
        cpu_warp.warp(x, torch.zeros(1, 2, 13, 29), "bilinear")
    with pytest.raises(ShapeError, match="does not tile"):
        cpu_warp.warp(x, torch.zeros(1, 2, 6, 8))

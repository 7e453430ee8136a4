"""The fused warp kernel against reference.warp: conventions, per-pixel and per-block motion, borders, dtypes."""

from __future__ import annotations

import pytest
import torch

from vidseg.errors import ShapeError
from vidseg.kernels import reference

CONVENTIONS = reference.WARP_CONVENTIONS
# fp32: the kernel maps pixel -> sample point in one affine step (exact for "exact"); the reference rounds a
# normalised grid coordinate (|g| <= ~2, ulp 2.4e-7) and unnormalises it, i.e. ~W/2 ulp of position error times
# the feature gradient (~3 for N(0,1) maps): a few 1e-6 at these sizes.
# fp16/bf16: both compute in fp32 and round once to the input dtype; allow ~2 ulp of the output.
TOL = {
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float16: dict(atol=2e-3, rtol=2e-3),
    torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2),
}


def _motion(kind: str, n: int, height: int, width: int, scale: float) -> torch.Tensor:
    if kind == "pixel":
        return torch.randn(n, 2, height, width) * scale
    # Codec-like blocks: 4 x 8 blocks over 13 x 29 -> blocks of 4 x 4 pixels, the last row/column partial.
    return torch.randn(n, 2, 4, 8) * scale


# --- reference semantics (what every implementation must reproduce) ---


def test_reference_exact_zero_motion_is_identity():
    x = torch.randn(2, 3, 5, 7)
    assert torch.allclose(reference.warp(x, torch.zeros(2, 2, 5, 7), "exact"), x, atol=1e-6)


def test_reference_arseg_zero_motion_is_not_identity():
    x = torch.randn(1, 2, 6, 8)
    assert (reference.warp(x, torch.zeros(1, 2, 6, 8), "arseg") - x).abs().max() > 0.1


def test_reference_block_motion_equals_expanded_motion():
    x, m = torch.randn(2, 3, 13, 29), _motion("block", 2, 13, 29, 3.0)
    per_pixel = reference.expand_block_motion(m, (13, 29))
    assert per_pixel.shape == (2, 2, 13, 29)
    assert torch.equal(per_pixel[:, :, 12, 28], m[:, :, 3, 7])  # the partial corner block
    assert torch.equal(reference.warp(x, m, "exact"), reference.warp(x, per_pixel, "exact"))


# --- the Triton kernel ---


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("kind", ["pixel", "block"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_matches_reference(kernels, device, convention, kind, dtype):
    # Odd map, C not a power of two, N=2; motion up to ~3 sigma = 18 px pushes many taps off the map.
    x = torch.randn(2, 5, 13, 29).to(device, dtype)
    m = _motion(kind, 2, 13, 29, 6.0).to(device)
    out = kernels.warp(x, m, convention)
    assert out.dtype == dtype and out.shape == x.shape and out.is_contiguous()
    torch.testing.assert_close(out, reference.warp(x, m, convention), **TOL[dtype])


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf, weighted out
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_motion_outside_the_frame_gives_zeros(kernels, device, convention):
    x = torch.randn(1, 3, 9, 11, device=device)
    for dx, dy in [(40.0, 0.0), (0.0, -30.0), (1e7, -1e7), (float("inf"), 0.0)]:
        m = torch.tensor([dx, dy], device=device).view(1, 2, 1, 1).expand(1, 2, 9, 11)
        out = kernels.warp(x, m, convention)
        assert torch.equal(out, torch.zeros_like(x)), (dx, dy)
        if dx != float("inf"):
            assert torch.equal(reference.warp(x, m, convention), out)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_motion_straddling_the_border(kernels, device, convention):
    # Samples within one pixel outside the map: some taps in, some out (zero padding weights them out).
    x = torch.randn(2, 4, 7, 10, device=device)
    m = torch.empty(2, 2, 7, 10, device=device).uniform_(-1.0, 1.0)
    m[:, 0, :, 0] -= 0.5
    m[:, 0, :, -1] += 0.5
    m[:, 1, 0, :] -= 0.5
    m[:, 1, -1, :] += 0.5
    torch.testing.assert_close(kernels.warp(x, m, convention), reference.warp(x, m, convention), **TOL[x.dtype])


def test_integer_shift_is_exact(kernels, device):
    x = torch.randn(1, 3, 8, 12, device=device)
    m = torch.zeros(1, 2, 8, 12, device=device)
    m[:, 0], m[:, 1] = 2.0, -1.0  # out[y, x] = x[y - 1, x + 2]
    out = kernels.warp(x, m, "exact")
    assert torch.equal(out[..., 1:, :10], x[..., :-1, 2:])
    assert torch.equal(out[..., 0, :], torch.zeros_like(out[..., 0, :]))
    assert torch.equal(out[..., 10:], torch.zeros_like(out[..., 10:]))


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("size", [(1, 9), (7, 1), (1, 1)])
def test_degenerate_axes(kernels, device, convention, size):
    # max(S-1, 1) in the arseg/gsvnet normalisation, and align_corners=True collapsing a 1-pixel axis.
    x = torch.randn(1, 3, *size, device=device)
    m = torch.randn(1, 2, *size, device=device)
    torch.testing.assert_close(kernels.warp(x, m, convention), reference.warp(x, m, convention), **TOL[x.dtype])


def test_codec_integer_motion_and_layouts(kernels, device):
    # int16 codec motion is converted; channels_last features and a non-contiguous motion view are copied.
    x = torch.randn(2, 6, 13, 29, device=device)
    m = torch.randint(-8, 9, (2, 2, 4, 8), dtype=torch.int16, device=device)
    expected = reference.warp(x, m, "arseg")
    torch.testing.assert_close(kernels.warp(x, m, "arseg"), expected, **TOL[x.dtype])
    x_cl = x.to(memory_format=torch.channels_last)
    m_view = m.float().transpose(2, 3).contiguous().transpose(2, 3)
    out = kernels.warp(x_cl, m_view, "arseg")
    assert out.is_contiguous()
    torch.testing.assert_close(out, expected, **TOL[x.dtype])


def test_channel_splits_cover_every_channel(kernels, device):
    # A small block_c and block_p force several pixel blocks and channel chunks with tails.
    x = torch.randn(2, 21, 5, 13, device=device)
    m = torch.randn(2, 2, 5, 13, device=device) * 2
    out = kernels.warp(x, m, "gsvnet", block_p=16, block_c=4)
    torch.testing.assert_close(out, reference.warp(x, m, "gsvnet"), **TOL[x.dtype])


def test_empty_map(kernels, device):
    assert kernels.warp(torch.randn(2, 0, 4, 5, device=device), torch.zeros(2, 2, 4, 5, device=device)).shape == (
        2, 0, 4, 5,
    )  # fmt: skip


def test_rejects_what_it_cannot_do(kernels):
    x, m = torch.randn(1, 2, 13, 29), torch.zeros(1, 2, 13, 29)
    with pytest.raises(ShapeError, match="convention"):
        kernels.warp(x, m, "bilinear")
    with pytest.raises(ShapeError, match="does not tile"):
        kernels.warp(x, torch.zeros(1, 2, 6, 8))  # ceil(13/6) = 3 rows per block: 5 blocks cover 13 already
    with pytest.raises(ShapeError, match=r"\[N,2,h,w\]"):
        kernels.warp(x, torch.zeros(1, 3, 13, 29))
    with pytest.raises(ShapeError, match="float64"):
        kernels.warp(x.double(), m)
    with pytest.raises(ShapeError, match="int32 per-image index"):
        big = torch.empty(1, 1, 2**16, 2**15, device="meta")
        kernels.warp(big, torch.empty(1, 2, 1, 1, device="meta"))
    with pytest.raises(ShapeError, match="different devices"):
        kernels.warp(x, m.to("meta"))


@pytest.mark.cuda
@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_seed_shapes_on_gpu(kernels, convention, dtype):
    # AR-Seg's Cityscapes feature (C=512, 128x256) with 4x4-pixel blocks, and a per-pixel CamVid-sized map.
    for shape, motion_hw in [((1, 512, 128, 256), (32, 64)), ((1, 64, 180, 240), (180, 240))]:
        x = torch.randn(shape, device="cuda", dtype=dtype)
        m = torch.randn(1, 2, *motion_hw, device="cuda") * 8
        out = kernels.warp(x, m, convention)
        # Larger maps: the reference's normalised-grid rounding grows with W (see TOL).
        # fp32: the interpreter uses up to 90 % of 1e-4 on the arseg convention; a GPU's FMAs may round otherwise.
        tol = dict(atol=2e-4, rtol=2e-4) if dtype == torch.float32 else TOL[dtype]
        torch.testing.assert_close(out, reference.warp(x, m, convention), **tol)


def test_launches_are_guarded_to_the_tensors_gpu(kernels):
    # Triton launches on the *current* CUDA device: the wrappers make it the tensors' device (cuda:1 here).
    from vidseg.kernels.triton._common import device_guard

    guard = device_guard(torch.device("cuda", 1))
    assert isinstance(guard, torch.cuda.device) and guard.idx == 1
    with device_guard(torch.device("cpu")):  # the interpreter: no guard, and no CUDA call
        pass

"""logits_to_labels (vidseg.models.labels): separable banded resize + argmax, label for label the plain composition
up to float32 rounding at near-ties."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from vidseg.models import base, labels
from vidseg.models.labels import logits_to_labels, resize_matrix


def _resized(logits: torch.Tensor, size: tuple[int, int], align_corners: bool) -> torch.Tensor:
    if logits.shape[-2:] != torch.Size(size):
        logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=align_corners)
    return logits.float()


def _plain(logits: torch.Tensor, size: tuple[int, int], align_corners: bool) -> torch.Tensor:
    """The plain composition: one full-size F.interpolate, then argmax."""
    return _resized(logits, size, align_corners).argmax(1).to(torch.uint8)


def assert_plain_labels(out: torch.Tensor, resized: torch.Tensor) -> None:
    """out is resized.argmax(1), except at pixels where the chosen class's logit is within float32 rounding of the
    maximum (the two computations sum the same terms in another order), and at no more than 1e-5 of the pixels."""
    want = resized.argmax(1).to(torch.uint8)
    assert out.shape == want.shape and out.dtype == torch.uint8
    differ = out != want
    if not differ.any():
        return
    chosen = resized.gather(1, out.long().unsqueeze(1)).squeeze(1)
    top = resized.amax(1)
    scale = resized.abs().amax()
    assert ((top - chosen)[differ] <= 1e-6 * scale).all()
    assert differ.sum() <= max(1, 1e-5 * differ.numel())


CASES = [
    ((1, 19, 64, 128), (512, 1024)),  # BiSeNet's x8 at 512x1024
    ((2, 19, 13, 17), (104, 136)),  # N=2, odd logits, x8
    ((1, 12, 90, 120), (720, 960)),  # CamVid x8
    ((1, 19, 65, 129), (513, 1025)),  # x8 with align_corners=True ((H-1) = 8 (h-1))
    ((1, 5, 9, 40), (36, 160)),  # x4, a narrow class count
    ((1, 19, 64, 128), (64, 1024)),  # rows not resized, columns x8
    ((1, 19, 64, 128), (500, 1000)),  # a frame size that is not a multiple of the stride
    ((1, 19, 10, 7), (80, 56)),  # a small map
    ((1, 3, 30, 50), (120, 200)),  # C = 3
]


@pytest.mark.parametrize("shape, size", CASES, ids=[f"{s[2]}x{s[3]}->{z[0]}x{z[1]}" for s, z in CASES])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_random_logits_give_the_plain_labels(shape, size, align_corners, channels_last):
    g = torch.Generator().manual_seed(hash((shape, size)) % 2**31)
    logits = torch.randn(shape, generator=g) * 4
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
    out = logits_to_labels(logits, size, align_corners=align_corners)
    assert out.dtype == torch.uint8 and out.shape == (shape[0], *size)
    assert_plain_labels(out, _resized(logits, size, align_corners))


@pytest.mark.parametrize("align_corners", [False, True])
def test_exact_ties_keep_the_first_class(align_corners):
    # Integer-valued logits with classes 2 and 7 identical everywhere and class 4 equal to them on half the
    # map: the interpolated values tie exactly (same inputs, same arithmetic), and argmax takes the first.
    g = torch.Generator().manual_seed(5)
    logits = torch.randint(-3, 4, (1, 9, 32, 64), generator=g).float()
    logits[:, 7] = logits[:, 2]
    logits[:, 4, :16] = logits[:, 2, :16]
    logits[:, 2] += 6  # the tied classes win most pixels
    logits[:, 7] += 6
    logits[:, 4, :16] += 6
    logits = logits.contiguous(memory_format=torch.channels_last)
    size = (256, 512) if not align_corners else (249, 505)  # (H-1) = 8 (h-1) bands with align_corners
    out = logits_to_labels(logits, size, align_corners=align_corners)
    assert torch.equal(out, _plain(logits, size, align_corners))
    assert not (out == 7).any() and (out == 2).any()
    assert not (out[:, : size[0] // 2 - 8] == 4).any()  # tie with class 2 above the middle: 2 wins


def test_one_row_bands_and_odd_sizes(monkeypatch):
    monkeypatch.setattr(labels, "BAND_BYTES", 1)  # a band per output row
    g = torch.Generator().manual_seed(9)
    for align_corners, (h, size) in itertools.product((False, True), ((23, (184, 200)), (23, (177, 200)))):
        logits = torch.randn(1, 6, h, 25, generator=g).contiguous(memory_format=torch.channels_last)
        assert_plain_labels(logits_to_labels(logits, size, align_corners=align_corners),
                            _resized(logits, size, align_corners))


@pytest.mark.parametrize("n_in, n_out", [(64, 512), (13, 104), (68, 540), (544, 540), (7, 7), (5, 1), (1, 9), (90, 37)])
@pytest.mark.parametrize("align_corners", [False, True])
def test_resize_matrix_is_pytorchs_linear_resize(n_in, n_out, align_corners):
    eye = torch.eye(n_in, dtype=torch.float64)[None]  # n_in signals of length n_in: the matrix's columns
    want = F.interpolate(eye, size=n_out, mode="linear", align_corners=align_corners)[0].t()
    got = resize_matrix(n_in, n_out, align_corners)
    assert got.shape == (n_out, n_in) and torch.allclose(got, want, atol=1e-12)
    assert torch.allclose(got.sum(1), torch.ones(n_out, dtype=torch.float64))


def test_non_finite_logits_take_argmaxs_own_rule():
    logits = torch.randn(1, 4, 8, 8)
    logits[0, 2, 3, 3] = float("nan")
    logits[0, 1, 5, 5] = float("inf")
    size = (64, 64)
    assert torch.equal(logits_to_labels(logits, size, align_corners=False), _plain(logits, size, False))


def test_half_logits_and_the_base_entry_point():
    logits = torch.randn(1, 19, 16, 32).half().contiguous(memory_format=torch.channels_last)
    out = base.logits_to_labels(logits, (128, 256), align_corners=False)
    assert base.logits_to_labels is logits_to_labels
    assert_plain_labels(out, _resized(logits, (128, 256), False))


@pytest.mark.cuda
def test_cuda_logits_stay_on_the_gpu():
    logits = torch.randn(1, 19, 64, 128, device="cuda")
    out = logits_to_labels(logits, (512, 1024), align_corners=False)
    assert out.device.type == "cuda" and torch.equal(out, _plain(logits, (512, 1024), False))
    stride8 = logits[:, :, :8, :16]  # the seed's x8 (one fused resize on the GPU), then its resize to the frame
    for size in ((64, 128), (60, 120)):
        out = logits_to_labels(stride8, size, align_corners=True, upsample=8)
        want = _plain(labels.upsample_logits(stride8, 8), size, True)
        assert out.device.type == "cuda" and torch.equal(out, want)


UPSAMPLE_CASES = [
    ((1, 19, 64, 128), (512, 1024)),  # the x8 map is the frame: the seed's second resize is the identity
    ((1, 12, 46, 60), (360, 480)),  # AR-Seg's LR grid at 360x480: x8 gives 368x480, resized to the frame
    ((2, 19, 13, 17), (100, 131)),  # neither side a multiple of 8
    ((1, 19, 16, 16), (128, 120)),  # one side the x8 map's, the other not
    ((1, 19, 68, 120), (540, 960)),  # the demo at 960x540: x8 gives 544 rows
]


@pytest.mark.parametrize("shape, size", UPSAMPLE_CASES,
                         ids=[f"{s[2]}x{s[3]}->{z[0]}x{z[1]}" for s, z in UPSAMPLE_CASES])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_upsample_composes_the_seeds_x8_with_its_resize_to_the_frame(shape, size, align_corners, channels_last):
    g = torch.Generator().manual_seed(hash((shape, size)) % 2**31)
    logits = torch.randn(shape, generator=g) * 4
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
    x8 = torch.nn.Upsample(scale_factor=8, mode="bilinear", align_corners=False)(logits)  # the seed's network
    assert torch.equal(labels.upsample_logits(logits, 8), x8) and labels.upsample_logits(logits, 1) is logits
    out = logits_to_labels(logits, size, align_corners=align_corners, upsample=8)
    assert out.shape == (shape[0], *size)
    assert_plain_labels(out, _resized(x8, size, align_corners))


def test_frames_of_other_sizes_in_turn_each_get_their_own_labels():
    """Tap tables cached per frame size: frames of other sizes in turn, under inference mode and outside it, each
    get their plain composition."""
    g = torch.Generator().manual_seed(7)
    frames = [((1, 19, 13, 17), (100, 131)), ((1, 19, 68, 120), (540, 960)), ((1, 19, 13, 17), (100, 131))]
    for i, (shape, size) in enumerate(frames * 2):
        logits = (torch.randn(shape, generator=g) * 4).contiguous(memory_format=torch.channels_last)
        want = _resized(labels.upsample_logits(logits, 8), size, True)
        with torch.inference_mode(i % 2 == 0):
            out = logits_to_labels(logits, size, align_corners=True, upsample=8)
        assert_plain_labels(out, want)

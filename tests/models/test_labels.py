"""logits_to_labels (vidseg.models.labels): banded resize + argmax, label for label the plain composition."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from vidseg.models import base, labels
from vidseg.models.labels import banded_rows, logits_to_labels


def _plain(logits: torch.Tensor, size: tuple[int, int], align_corners: bool) -> torch.Tensor:
    """What logits_to_labels computed before the bands: one full-size F.interpolate, then argmax."""
    if logits.shape[-2:] != torch.Size(size):
        logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=align_corners)
    return logits.argmax(1).to(torch.uint8)


CASES = [
    ((1, 19, 64, 128), (512, 1024)),  # BiSeNet's x8 at 512x1024 (banded with align_corners=False)
    ((2, 19, 13, 17), (104, 136)),  # N=2, odd logits, x8
    ((1, 12, 90, 120), (720, 960)),  # CamVid x8
    ((1, 19, 65, 129), (513, 1025)),  # x8 with align_corners=True ((H-1) = 8 (h-1)), banded that way only
    ((1, 5, 9, 40), (36, 160)),  # x4, a narrow class count
    ((1, 19, 64, 128), (64, 1024)),  # rows not resized, columns x8
    ((1, 19, 64, 128), (500, 1000)),  # a frame size that is not a multiple of the stride: the plain path
    ((1, 19, 10, 7), (80, 56)),  # output height + width <= 128 in bands would change PyTorch's kernel
    ((1, 3, 30, 50), (120, 200)),  # C = 3: PyTorch's kernel choice depends on the class count
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
    assert torch.equal(out, _plain(logits, size, align_corners))


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


def test_bands_cover_the_map_for_any_band_height(monkeypatch):
    # Many short bands (the last one moved up, overlapping): still the plain labels, in both conventions.
    monkeypatch.setattr(labels, "BAND_BYTES", 1)
    g = torch.Generator().manual_seed(9)
    for align_corners, (h, size) in itertools.product((False, True), ((23, (184, 200)), (23, (177, 200)))):
        if banded_rows(h, size[0], align_corners) is None:
            continue
        logits = torch.randn(1, 6, h, 25, generator=g).contiguous(memory_format=torch.channels_last)
        assert torch.equal(logits_to_labels(logits, size, align_corners=align_corners),
                           _plain(logits, size, align_corners))


def test_which_row_scales_band():
    assert banded_rows(64, 512, False) == 8 and banded_rows(64, 64, True) == 1
    assert banded_rows(65, 513, True) == 8 and banded_rows(64, 512, True) is None
    assert banded_rows(64, 500, False) is None and banded_rows(64, 384, False) is None  # x6: not a power of two


def test_half_logits_and_the_base_entry_point():
    logits = torch.randn(1, 19, 16, 32).half().contiguous(memory_format=torch.channels_last)
    out = base.logits_to_labels(logits, (128, 256), align_corners=False)
    assert base.logits_to_labels is logits_to_labels
    assert torch.equal(out, _plain(logits, (128, 256), False))


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
    ((1, 19, 64, 128), (512, 1024)),  # the x8 map is the frame: the seed's second resize is the identity (banded)
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
    assert out.shape == (shape[0], *size) and torch.equal(out, _plain(x8, size, align_corners))


def test_the_reused_maps_of_the_two_resizes_give_each_frame_its_own_labels():
    """The seed's two resizes write into maps this thread reuses: frames of other sizes, under inference mode and
    outside it, each get exactly their plain composition."""
    g = torch.Generator().manual_seed(7)
    frames = [((1, 19, 13, 17), (100, 131)), ((1, 19, 68, 120), (540, 960)), ((1, 19, 13, 17), (100, 131))]
    for i, (shape, size) in enumerate(frames * 2):
        logits = (torch.randn(shape, generator=g) * 4).contiguous(memory_format=torch.channels_last)
        want = _plain(labels.upsample_logits(logits, 8), size, True)
        with torch.inference_mode(i % 2 == 0):
            out = logits_to_labels(logits, size, align_corners=True, upsample=8)
        assert torch.equal(out, want)

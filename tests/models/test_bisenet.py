"""BiSeNetV1-18 conventions that AR-Seg's checkpoints depend on (arseg.md §1.5, §8.9-8.11)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vidseg.models.bisenet import LOGITS_UPSAMPLE, BiSeNetV1
from vidseg.models.labels import logits_to_labels, upsample_logits
from vidseg.models.profile import count_params
from vidseg.models.registry import build


def test_lr_feature_is_46x60_at_360x480():
    net = BiSeNetV1(12).eval()
    trunk = {}
    net.cp.resnet.register_forward_hook(lambda mod, args, out: trunk.update(feat8=out[0], feat16=out[1]))
    with torch.no_grad():
        feat = net.features(torch.randn(1, 3, 360, 480))
    assert trunk["feat8"].shape[-2:] == (45, 60) and trunk["feat16"].shape[-2:] == (23, 30)
    assert feat.shape == (1, 256, 46, 60)  # not 45x60: nearest x2 of the 23x30 stride-16 map
    assert net.feature_size(360, 480) == (46, 60)
    assert net.feature_size(720, 960) == (90, 120)
    assert net.feature_size(1024, 2048) == (128, 256)


def test_context_path_upsamples_with_nearest_x2():
    cp = BiSeNetV1(19).cp
    for up in (cp.up16, cp.up32):
        assert up.mode == "nearest" and up.scale_factor == 2.0
    x = torch.randn(1, 2, 3, 5)
    assert torch.equal(cp.up16(x), x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1))


def test_aliases_are_the_head_modules_and_logits_are_the_seeds_before_its_x8_upsample():
    net = BiSeNetV1(19).eval()
    assert net.feat_conv_out is net.conv_out.conv and net.final_conv is net.conv_out.conv_out
    assert net.checkpoint_aliases == {"feat_conv_out.": "conv_out.conv.", "final_conv.": "conv_out.conv_out."}
    assert not any(k.startswith(("feat_conv_out.", "final_conv.")) for k in net.state_dict())
    with torch.no_grad():
        logits, feat = net.forward_key(torch.randn(1, 3, 64, 96))
        assert feat.shape == (1, 256, 8, 12) and (feat >= 0).all()  # post-ReLU ConvBNReLU output
        assert logits.shape == (1, 19, 8, 12) and torch.equal(logits, net.final_conv(feat))  # stride 8
        # The seed's nn.Upsample(scale_factor=8, bilinear, align_corners=False), left to the labels step:
        seed = nn.Upsample(scale_factor=8, mode="bilinear", align_corners=False)(logits)
        assert torch.equal(upsample_logits(logits, LOGITS_UPSAMPLE), seed)


def _seed_labels(net, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """AR-Seg's composition (arseg.md §1.5, §5): the network's x8 nn.Upsample, then evaluation.py's resize to the
    label size (bilinear, align_corners=True), then argmax."""
    logits = nn.Upsample(scale_factor=8, mode="bilinear", align_corners=False)(net.final_conv(net.features(x)))
    full = F.interpolate(logits, size=size, mode="bilinear", align_corners=True)
    return full.argmax(1).to(torch.uint8)


# Frame sizes: multiples of 16 (the x8 map is the frame: the banded path), multiples of 8 but not 16 (360x480:
# the x8 map is 368x480, the seed resizes it), neither (odd sizes), and one axis of each kind.
SIZES = [(128, 256), (96, 160), (120, 160), (100, 132), (77, 131), (128, 136)]


@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
@pytest.mark.parametrize("name", ["demo", "bise18-camvid"])
def test_labels_are_the_seeds_composition_at_every_frame_size(name, size):
    model = build(name, pretrained=False) if name == "demo" else build(name)
    model.eval()
    spec = model.spec
    assert (spec.logits_stride, spec.logits_upsample, spec.logits_align_corners) == (8, 8, True)
    g = torch.Generator().manual_seed(sum(size))
    image = torch.randint(0, 256, (1, 3, *size), generator=g, dtype=torch.uint8)
    with torch.no_grad():
        net = model.hr if hasattr(model, "hr") else model.net
        net.final_conv.bias.zero_()  # labels that vary over the frame (a random bias lets one class win)
        logits, _ = model.stages()["key"](image.contiguous(memory_format=torch.channels_last))
        want = _seed_labels(net, model.preprocess(image), size)
    assert len(want.unique()) > 3
    for layout in (torch.contiguous_format, torch.channels_last):  # Engine._labels passes channels_last
        got = logits_to_labels(logits.contiguous(memory_format=layout), size, align_corners=True,
                               upsample=spec.logits_upsample)
        assert torch.equal(got, want), layout


def test_aux_heads_exist_but_are_not_run():
    net = BiSeNetV1(12).eval()
    assert count_params(net) == 13_423_012  # arseg.md §6, n=12 (aux heads included)
    assert count_params(BiSeNetV1(19)) == 13_425_721
    calls = []
    for head in (net.conv_out16, net.conv_out32):
        head.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        net.forward_key(torch.randn(1, 3, 32, 32))
    assert calls == []

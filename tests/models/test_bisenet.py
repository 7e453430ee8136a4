"""BiSeNetV1-18 conventions that AR-Seg's checkpoints depend on (arseg.md §1.5, §8.9-8.11)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vidseg.models.bisenet import BiSeNetV1
from vidseg.models.profile import count_params


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


def test_aliases_are_the_head_modules_and_logits_are_x8_bilinear_without_align_corners():
    net = BiSeNetV1(19).eval()
    assert net.feat_conv_out is net.conv_out.conv and net.final_conv is net.conv_out.conv_out
    assert net.checkpoint_aliases == {"feat_conv_out.": "conv_out.conv.", "final_conv.": "conv_out.conv_out."}
    assert not any(k.startswith(("feat_conv_out.", "final_conv.")) for k in net.state_dict())
    with torch.no_grad():
        logits, feat = net.forward_key(torch.randn(1, 3, 64, 96))
        assert feat.shape == (1, 256, 8, 12) and (feat >= 0).all()  # post-ReLU ConvBNReLU output
        expected = F.interpolate(net.final_conv(feat), scale_factor=8.0, mode="bilinear", align_corners=False)
        assert logits.shape == (1, 19, 64, 96) and torch.allclose(logits, expected)


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

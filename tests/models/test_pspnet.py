"""PSPNet-18 conventions that the released checkpoints depend on (arseg.md §1.3-1.4, §8; etc.md §1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidseg.models import build
from vidseg.models.backbones import ETC
from vidseg.models.profile import count_params
from vidseg.models.pspnet import PPM, PSPModule, PSPNetCamVid, PSPNetSemseg


def test_camvid_pspnet_returns_log_probabilities_at_input_resolution():
    net = PSPNetCamVid(12).eval()
    x = torch.randn(1, 3, 44, 60)  # not a multiple of 8: the feature is 48x64, logits are resized back
    with torch.no_grad():
        logits, p = net.forward_key(x)
    assert logits.shape == (1, 12, 44, 60)
    assert p.shape == (1, 64, 48, 64) and net.feature_size(44, 60) == (48, 64)
    assert torch.allclose(logits.exp().sum(1), torch.ones(1, 44, 60), atol=1e-5)
    assert (logits <= 0).all()


def test_camvid_psp_branches_are_bare_convs_concatenated_before_the_input():
    psp = PSPModule(4, 8, (1, 2)).eval()
    for stage in psp.stages:  # AdaptiveAvgPool -> Conv1x1, no BN/ReLU
        assert [type(m) for m in stage] == [nn.AdaptiveAvgPool2d, nn.Conv2d]
        assert stage[1].bias is None
    with torch.no_grad():  # bottleneck = identity on the last 4 input channels: those must be x itself
        psp.bottleneck.weight.zero_()
        psp.bottleneck.bias.zero_()
        psp.bottleneck.weight[:4, 8:12, 0, 0] = torch.eye(4)
        x = torch.randn(1, 4, 6, 8)
        assert torch.allclose(psp(x)[:, :4], x.relu())
        # and the pooled branches are resized with align_corners=False
        psp.bottleneck.weight.zero_()
        psp.bottleneck.weight[:4, 4:8, 0, 0] = torch.eye(4)
        up = F.interpolate(psp.stages[1](x), size=(6, 8), mode="bilinear", align_corners=False)
        assert torch.allclose(psp(x)[:, :4], up.relu(), atol=1e-6)
        other = F.interpolate(psp.stages[1](x), size=(6, 8), mode="bilinear", align_corners=True)
        assert not torch.allclose(up, other, atol=1e-4)


def test_semseg_ppm_concatenates_the_input_first_with_align_corners_true():
    ppm = PPM(4, 2, (1, 2, 3, 6)).eval()
    for branch in ppm.features:
        assert [type(m) for m in branch] == [nn.AdaptiveAvgPool2d, nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    x = torch.randn(1, 4, 9, 12)
    with torch.no_grad():
        out = ppm(x)
        assert out.shape == (1, 4 + 4 * 2, 9, 12)
        assert torch.equal(out[:, :4], x)
        assert torch.allclose(out[:, 4:6], out[:, 4:6, :1, :1].expand(-1, -1, 9, 12))  # bin 1 is constant
        b2 = F.interpolate(ppm.features[1](x), size=(9, 12), mode="bilinear", align_corners=True)
        assert torch.allclose(out[:, 6:8], b2)


def test_semseg_feature_is_cls_without_its_last_conv_and_logits_stay_at_stride_8():
    net = PSPNetSemseg(19).eval()
    assert net.final_conv is net.cls[4]
    assert not any(k.startswith("final_conv.") for k in net.state_dict())  # the alias is folded, see checkpoints
    assert net.checkpoint_aliases == {"final_conv.": "cls.4."}
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        logits, p = net.forward_key(x)
        assert p.shape == (1, 512, 8, 12) and logits.shape == (1, 19, 8, 12)
        assert torch.allclose(logits, net.cls[4](p))
        trunk = net.layer4(net.layer3(net.layer2(net.layer1(net.layer0(x)))))
        assert torch.allclose(p, net.cls[:-1](net.ppm(trunk)))


def test_etc_pspnet_layout_and_parameters():
    net = PSPNetSemseg(19, layout=ETC, cls_dim=256, final_conv_alias=False)
    assert net.checkpoint_aliases == {}
    assert count_params(net) == 14_399_590  # etc.md §1, incl. the aux head
    assert count_params(net) - count_params(net.aux) == 13_804_371
    model = build("etc-psp18-cityscapes")
    assert model.spec.mean == (0.485, 0.456, 0.406) and model.spec.logits_stride == 8
    assert model.net.checkpoint_layout == "etc"


def test_etc_dilation_surgery_matches_the_seed_listing():
    """etc.md §1 / etc_state_dicts.txt: layer3/4 run at stride 1 and only each block's conv2 is dilated (2 / 4)."""
    net = PSPNetSemseg(19, layout=ETC, cls_dim=256, final_conv_alias=False)
    expected = {  # name: (stride, dilation, padding), as the seed's inspection lists them
        "layer3.0.conv1": (1, 1, 1), "layer3.0.conv2": (1, 2, 2), "layer3.0.downsample.0": (1, 1, 0),
        "layer3.1.conv1": (1, 1, 1), "layer3.1.conv2": (1, 2, 2),
        "layer4.0.conv1": (1, 1, 1), "layer4.0.conv2": (1, 4, 4), "layer4.0.downsample.0": (1, 1, 0),
        "layer4.1.conv1": (1, 1, 1), "layer4.1.conv2": (1, 4, 4),
        "layer2.0.conv1": (2, 1, 1), "layer2.0.downsample.0": (2, 1, 0),
    }
    convs = dict(net.named_modules())
    for name, (stride, dilation, padding) in expected.items():
        conv = convs[name]
        assert (conv.stride, conv.dilation, conv.padding) == ((stride,) * 2, (dilation,) * 2, (padding,) * 2), name


def test_camvid_pspnet_parameters_and_aux_heads_not_run():
    net = PSPNetCamVid(12).eval()
    assert count_params(net) == 17_461_979  # arseg.md §6
    calls = []
    net.classifier.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        net.forward_key(torch.randn(1, 3, 32, 32))
    assert calls == []

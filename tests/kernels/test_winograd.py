"""Winograd F(4x4, 3x3) computes the same convolution as the direct one, and replaces only what it can."""

import pytest
import torch
from torch import nn

from vidseg.kernels.winograd import WinogradConv2d, use_winograd, winograd_eligible


@pytest.mark.parametrize("shape", [(1, 8, 16, 24), (2, 5, 13, 7), (1, 16, 3, 2)])  # whole tiles, overhangs, tiny
@pytest.mark.parametrize("bias", [True, False])
def test_matches_the_direct_convolution(shape, bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(shape[1], 12, 3, padding=1, bias=bias)
    x = torch.randn(shape)
    with torch.no_grad():
        ref, out = conv(x), WinogradConv2d(conv)(x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=2e-5 * float(ref.abs().max()))


def test_channels_last_input_gives_the_same_result():
    conv = nn.Conv2d(8, 8, 3, padding=1)
    x = torch.randn(1, 8, 20, 36)
    with torch.no_grad():
        a = WinogradConv2d(conv)(x)
        b = WinogradConv2d(conv)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(a, b)


def test_only_3x3_stride1_pad1_ungrouped_convolutions_are_replaced():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                        nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 3, padding=1, groups=2),
                        nn.Conv2d(8, 8, 3, padding=2, dilation=2), nn.Sequential(nn.Conv2d(8, 4, 3, padding=1)))
    x = torch.randn(1, 3, 17, 19)
    with torch.no_grad():
        ref = net(x)
        assert use_winograd(net, min_channels=1) == 2
        out = net(x)
    assert isinstance(net[0], WinogradConv2d) and isinstance(net[6][0], WinogradConv2d)
    assert not any(isinstance(net[i], WinogradConv2d) for i in (2, 3, 4, 5))
    torch.testing.assert_close(out, ref, rtol=0, atol=2e-5 * float(ref.abs().max()))
    with pytest.raises(ValueError, match="3x3 stride-1"):
        WinogradConv2d(nn.Conv2d(8, 8, 3, stride=2, padding=1))
    assert not winograd_eligible(nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"))
    assert use_winograd(nn.Sequential(nn.Conv2d(64, 128, 3, padding=1))) == 0  # too narrow to pay


def test_bisenet_labels_are_unchanged():
    from vidseg.models.registry import build

    net = build("arseg-bise18-cityscapes").hr.eval()
    x = torch.randn(1, 3, 64, 128)
    with torch.inference_mode():
        ref = net.forward_key(x)[0]
        assert use_winograd(net, min_channels=1) == 20
        out = net.forward_key(x)[0]
    assert float((out - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    assert torch.equal(out.argmax(1), ref.argmax(1))


@pytest.mark.parametrize("model", ["arseg-bise18-cityscapes", "arseg-psp18-cityscapes", "etc-psp18-cityscapes",
                                   "gsvnet-swiftnet18-flownets", "sanet-tiny", "swnet-seq", "demo"])
def test_every_family_s_stages_run_with_winograd_layers(model):
    """What an aoti package on a CPU computes: no stage may reach into a swapped convolution's weights."""
    import copy

    from vidseg.export.validate import validation_inputs
    from vidseg.models.registry import build

    torch.manual_seed(0)
    for name, stage in build(model).eval().stages().items():
        swapped = copy.deepcopy(stage)
        use_winograd(swapped, min_channels=1)
        inputs = validation_inputs(stage, 64, 128)[0]
        with torch.inference_mode():
            for want, got in zip(stage(*inputs), swapped(*inputs), strict=True):
                scale = float(want.abs().max()) if want.is_floating_point() else 0.0
                torch.testing.assert_close(got, want, rtol=0, atol=2e-5 * max(scale, 1e-3), msg=f"{model} {name}")

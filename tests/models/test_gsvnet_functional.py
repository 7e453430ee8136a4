"""GSVNet against a functional re-implementation written from shared/reference/gsvnet.md alone.

Unlike test_flowwarp.py (whose seed transcription reuses vidseg's SwiftNet, FlowLight and GSV sub-modules), every
layer here is re-written with F.conv2d / F.batch_norm from the digest's text and reads only the seed's state_dict
keys, so layer order, paddings, dilations, interpolation modes, the SPP grids and the ladder skips of our modules
are pinned too. Random weights with random BatchNorm statistics, small frames.

The ladder skips: the digest (§7) says "the pre-ReLU output of each layer's last block is the skip", but the
seed's BasicBlock applies an in-place ReLU (`nn.ReLU(inplace=True)`) to `out` before returning `(relu, out)`, so
both are the rectified tensor. `test_swiftnet_ladder_skips_are_post_relu` pins that reading and checks that the
pre-ReLU reading would give a measurably different output.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidseg.engine.methods import make_method
from vidseg.engine.plans import execute_plans
from vidseg.models.flowwarp import gsvnet_bisenet18, gsvnet_swiftnet18
from vidseg.models.swiftnet import swiftnet18

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")

SD = dict[str, Tensor]


def _randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) * 0.6 - 0.3)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) * 0.8 + 0.6)
            m.bias.data.copy_(torch.rand(m.bias.shape, generator=gen) * 0.5 - 0.2)
        elif isinstance(m, nn.Conv2d) and m.bias is not None:
            m.bias.data.copy_(torch.rand(m.bias.shape, generator=gen) * 0.2 - 0.1)
    return module.eval()


def _sd(module: nn.Module) -> SD:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _bn(x: Tensor, sd: SD, p: str) -> Tensor:
    return F.batch_norm(
        x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"], False, 0.0, 1e-5
    )


def _conv(x: Tensor, sd: SD, p: str, stride: int = 1, pad: int = 0, dil: int = 1) -> Tensor:
    return F.conv2d(x, sd[p + ".weight"], sd.get(p + ".bias"), stride=stride, padding=pad, dilation=dil)


def _bil(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


# --- §7 SwiftNet-R18 ------------------------------------------------------------------------------------------------


def _brc(x: Tensor, sd: SD, p: str, k: int) -> Tensor:  # _BNReluConv: BN -> ReLU -> Conv k x k (pad k // 2)
    return _conv(F.relu(_bn(x, sd, p + ".norm")), sd, p + ".conv", pad=k // 2)


def _block(x: Tensor, sd: SD, p: str, stride: int) -> tuple[Tensor, Tensor]:
    """-> (relu(out), out) of the seed's BasicBlock *without* the in-place aliasing."""
    out = F.relu(_bn(_conv(x, sd, p + ".conv1", stride, 1), sd, p + ".bn1"))
    out = _bn(_conv(out, sd, p + ".conv2", 1, 1), sd, p + ".bn2")
    if p + ".downsample.0.weight" in sd:
        x = _bn(_conv(x, sd, p + ".downsample.0", stride), sd, p + ".downsample.1")
    out = out + x
    return F.relu(out), out


def _swiftnet(x: Tensor, sd: SD, *, pre_relu_skips: bool = False) -> Tensor:
    b = "backbone."
    x = F.max_pool2d(F.relu(_bn(_conv(x, sd, b + "conv1", 2, 3), sd, b + "bn1")), 3, 2, 1)
    skips = []
    for i, stride in zip(range(1, 5), (1, 2, 2, 2), strict=True):
        x, _ = _block(x, sd, f"{b}layer{i}.0", stride)
        x, pre = _block(x, sd, f"{b}layer{i}.1", 1)
        skips.append(pre if pre_relu_skips else x)
    height, width = skips[3].shape[-2:]
    ar = width / height
    bottleneck = _brc(skips[3], sd, b + "spp.spp.spp_bn", 1)
    levels = [bottleneck]
    for i, g in enumerate((8, 4, 2)):
        pooled = F.adaptive_avg_pool2d(bottleneck, (g, max(1, round(ar * g))))
        level = _brc(pooled, sd, f"{b}spp.spp.spp{i}", 1)
        levels.append(F.interpolate(level, (height, width), mode="bilinear", align_corners=False))
    x = _brc(torch.cat(levels, 1), sd, b + "spp.spp.spp_fuse", 1)
    for j, skip in enumerate((skips[2], skips[1], skips[0])):
        skip = _brc(skip, sd, f"{b}upsample.{j}.bottleneck", 1)
        x = F.interpolate(x, skip.shape[-2:], mode="bilinear", align_corners=False) + skip
        x = _brc(x, sd, f"{b}upsample.{j}.blend_conv", 3)
    return _brc(x, sd, "logits", 1)  # output stride 4, no upsampling


# --- §3 FlowLight, §4 warp, §5 GSV ----------------------------------------------------------------------------------


def _cbl(x: Tensor, sd: SD, p: str, stride: int = 1, pad: int = 1, dil: int = 1) -> Tensor:
    return F.leaky_relu(_bn(_conv(x, sd, p + ".0", stride, pad, dil), sd, p + ".1"), 0.1)


def _flowlight(x: Tensor, sd: SD) -> Tensor:
    x = _cbl(_cbl(x, sd, "conv1", 2), sd, "conv2", 2)
    x1 = _cbl(x, sd, "conv_dilate_1")
    x2 = _cbl(x, sd, "conv_dilate_2", pad=2, dil=2) + x1
    x3 = _cbl(x, sd, "conv_dilate_3", pad=4, dil=4) + x2
    x4 = _cbl(x, sd, "conv_dilate_4", pad=8, dil=8) + x3
    out = _cbl(torch.cat([x1, x2, x3, x4], 1), sd, "conv_merge", pad=0) + x
    return _conv(out, sd, "toflow", pad=1)


def _warp(ref: Tensor, flow: Tensor) -> Tensor:
    flow = flow / 4
    n, _, h, w = flow.shape
    gx = torch.linspace(-1, 1, w).view(1, 1, w) + 2 * flow[:, 0] / (w - 1)
    gy = torch.linspace(-1, 1, h).view(1, h, 1) + 2 * flow[:, 1] / (h - 1)
    grid = torch.stack([gx.expand(n, h, w), gy.expand(n, h, w)], -1)
    return F.grid_sample(ref, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _cbr(x: Tensor, sd: SD, conv: str, bn: str, stride: int = 1) -> Tensor:
    return F.relu(_bn(_conv(x, sd, conv, stride, 1), sd, bn))


def _gsv(s: Tensor, a: Tensor, sd: SD) -> Tensor:
    i, g = "grm.intra_net.intra_net.", "grm.guide."
    intra = _conv(_cbr(_cbr(a, sd, i + "0", i + "1"), sd, i + "3", i + "4"), sd, i + "6", pad=1)
    lap = torch.ones(1, 1, 3, 3)
    lap[0, 0, 1, 1] = -8
    edge = (F.conv2d(s.argmax(1, keepdim=True).float(), lap, padding=1) != 0).float()
    x = _cbr(torch.cat([intra, edge], 1), sd, g + "guide_conv.0", g + "guide_conv.1")
    f = _cbr(x, sd, g + "guide_conv_feat.0", g + "guide_conv_feat.1", 2)
    f = _cbr(f, sd, g + "guide_conv_feat.3", g + "guide_conv_feat.4", 2)
    f = F.interpolate(f, scale_factor=2.0, mode="bilinear", align_corners=True)
    f = _cbr(f, sd, g + "guide_deconv.1", g + "guide_deconv.2")
    f = F.interpolate(f, scale_factor=2.0, mode="bilinear", align_corners=True)
    f = _cbr(f, sd, g + "guide_deconv.5", g + "guide_deconv.6")
    weights = _cbr(x + f, sd, g + "guide_decoder.0", g + "guide_decoder.1")
    weights = weights / (weights.sum(1, keepdim=True) + 1e-9)
    shifted = F.conv3d(s.unsqueeze(1), sd["grm.ideal_dk.filter_copy_s"], padding=(0, 1, 1))
    cand = torch.cat([s.unsqueeze(1), shifted, intra.unsqueeze(1)], 1)  # [N, 11, 19, h, w]
    return (weights.unsqueeze(2) * cand).sum(1)


# --- §1, §2 the clip ------------------------------------------------------------------------------------------------


def _clip(frames, segnet, sd_flow: SD, sd_gsv: SD, mean_bgr, std_bgr, scale: float) -> list[Tensor]:
    height, width = frames[0].shape[-2:]
    h, w = height // 8, width // 8
    mean = torch.tensor(mean_bgr).view(1, 3, 1, 1)
    std = torch.tensor(std_bgr).view(1, 3, 1, 1)
    out, prev_image, prev = [], None, None
    for t, frame in enumerate(frames):
        image = (frame.flip(1).float() / (255.0 if scale == 255.0 else 1.0) - mean) / std  # BGR-normalised
        if t == 0:
            key = _bil(image, (height // 4 * 3, width // 4 * 3)).flip(1)  # 0.75, then back to RGB
            s = _bil(segnet(key), (h, w))
        else:
            a, b = _bil(image, (h, w)), _bil(prev_image, (h, w))
            flow = _bil(_flowlight(torch.cat([a, b], 1), sd_flow), (h, w))
            s = _gsv(_warp(torch.cat([prev, b], 1), flow)[:, :19], a, sd_gsv)
        out.append(s)
        prev_image, prev = image, s
    return out


def _frames(n: int, height: int, width: int) -> list[Tensor]:
    gen = torch.Generator().manual_seed(1)
    frames = [torch.randint(0, 256, (1, 3, height, width), generator=gen).float() for _ in range(n)]
    return [F.avg_pool2d(f, 5, 1, 2).round().to(torch.uint8) for f in frames]


# --- tests ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("input_scale", [1.0, 0.75])
def test_swiftnet_matches_the_functional_digest(input_scale):
    model = _randomise(swiftnet18(input_scale=input_scale))
    model.net.logits.conv.weight.data *= 30  # logits of a few units, so argmax is not decided by noise
    image = torch.randint(0, 256, (1, 3, 96, 160), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = model.stages()["key"].run(image=image)["logits"]
        x = image.float()
        x = (x - torch.tensor((73.15, 82.90, 72.3)).view(1, 3, 1, 1)) / torch.tensor((47.67, 48.49, 47.73)).view(
            1, 3, 1, 1
        )
        if input_scale != 1.0:
            x = _bil(x, (96 // 4 * 3, 160 // 4 * 3))
        ref = _swiftnet(x, _sd(model.net))
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_swiftnet_ladder_skips_are_post_relu():
    model = _randomise(swiftnet18())
    x = torch.randn(1, 3, 64, 128, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = model.net(x)
        post, pre = _swiftnet(x, _sd(model.net)), _swiftnet(x, _sd(model.net), pre_relu_skips=True)
    scale = float(post.abs().max())
    torch.testing.assert_close(ours, post, rtol=1e-4, atol=1e-4 * scale)
    assert float((pre - post).abs().max()) > 1e-2 * scale  # the test can tell the two readings apart


@pytest.mark.parametrize(
    ("builder", "mean_bgr", "std_bgr", "scale"),
    [
        (gsvnet_swiftnet18, (72.3, 82.90, 73.15), (47.73, 48.49, 47.67), 1.0),
        (gsvnet_bisenet18, (0.406, 0.456, 0.485), (0.225, 0.224, 0.229), 255.0),
    ],
    ids=["swiftnet", "bisenet"],
)
def test_flowwarp_clip_matches_the_functional_digest(builder, mean_bgr, std_bgr, scale):
    """key, 3 non-keys through the engine's flowwarp plans vs §1-§5 written out (BiSeNet itself is §8's module)."""
    model = _randomise(builder())
    model.flownet.toflow.weight.data *= 40  # flows of a few pixels of the 1/8 grid
    model.gsv.grm.guide.guide_decoder[1].bias.data.uniform_(0.2, 0.6)  # most guide weights active
    frames = _frames(4, 128, 256)
    if builder is gsvnet_swiftnet18:
        sd_seg = _sd(model.segnet)

        def segnet(x: Tensor) -> Tensor:
            return _swiftnet(x, sd_seg)
    else:
        segnet = model.segnet
    stages = model.stages()
    method = make_method("flowwarp", tuple(stages))
    state: dict[str, Tensor] = {}
    with torch.no_grad():
        ref = _clip(frames, segnet, _sd(model.flownet), _sd(model.gsv), mean_bgr, std_bgr, scale)
        flow = stages["flow"].run(image=frames[1], ref_image=frames[0])["flow"]
        for t, frame in enumerate(frames):
            plan = method.key_plan() if t == 0 else method.nonkey_plan()
            (logits,), _ = execute_plans([plan], [{"image": frame}], [state], lambda s, inputs: stages[s].run(**inputs))
            torch.testing.assert_close(logits, ref[t], rtol=1e-4, atol=1e-4 * float(ref[t].abs().max()))
    assert float(flow.abs().max()) > 0.5  # the warp was exercised with real displacements

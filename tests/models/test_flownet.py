"""FlowNetS flow nets (vidseg.models.flownet): NVIDIA's FlowNet2-S and GSVNet's FlowNetS.

`seed_*` functions transcribe the seeds' forwards (NVIDIA/flownet2-pytorch models.py FlowNet2S + networks/
FlowNetS.py + submodules.py; robert80203/GSVNet model/flownet/networks.py FlowNetS) with functional ops on a state
dict, and `seed_layout` their module tables, independently of vidseg's modules. Trained weights are not needed:
the flow's units, direction and frame-size handling are checked on weights set by hand.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from vidseg.kernels import ops
from vidseg.models.flownet import (
    FLOWNET2S_PARAMS,
    GSV_FLOWNETS_PARAMS,
    FlowNet2S,
    FlowNet2SFlowStage,
    GSVFlowNetS,
)
from vidseg.models.profile import count_params

# (name, in, out, kernel, stride) of the encoder; the decoder's concatenations give the in-channels below.
ENCODER = [("conv1", 6, 64, 7, 2), ("conv2", 64, 128, 5, 2), ("conv3", 128, 256, 5, 2), ("conv3_1", 256, 256, 3, 1),
           ("conv4", 256, 512, 3, 2), ("conv4_1", 512, 512, 3, 1), ("conv5", 512, 512, 3, 2),
           ("conv5_1", 512, 512, 3, 1), ("conv6", 512, 1024, 3, 2), ("conv6_1", 1024, 1024, 3, 1)]
DECONV = [("deconv5", 1024, 512), ("deconv4", 1026, 256), ("deconv3", 770, 128), ("deconv2", 386, 64)]
PREDICT = [("predict_flow6", 1024), ("predict_flow5", 1026), ("predict_flow4", 770), ("predict_flow3", 386),
           ("predict_flow2", 194)]
UPSAMPLE = ["upsampled_flow6_to_5", "upsampled_flow5_to_4", "upsampled_flow4_to_3", "upsampled_flow3_to_2"]


def seed_layout(flow_up_bias: bool) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the seeds' FlowNetS(batchNorm=False, 6 input channels)."""
    keys: dict[str, tuple[int, ...]] = {}
    for name, cin, cout, k, _ in ENCODER:
        keys[f"{name}.0.weight"], keys[f"{name}.0.bias"] = (cout, cin, k, k), (cout,)
    for name, cin, cout in DECONV:
        keys[f"{name}.0.weight"], keys[f"{name}.0.bias"] = (cin, cout, 4, 4), (cout,)
    for name, cin in PREDICT:
        keys[f"{name}.weight"], keys[f"{name}.bias"] = (2, cin, 3, 3), (2,)
    for name in UPSAMPLE:
        keys[f"{name}.weight"] = (2, 2, 4, 4)
        if flow_up_bias:
            keys[f"{name}.bias"] = (2,)
    return keys


def seed_state(flow_up_bias: bool, seed: int = 0) -> dict[str, Tensor]:
    """Random well-scaled values in the seed's layout (as its checkpoint holds them)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in seed_layout(flow_up_bias).items():
        fan_in = torch.Size(shape[1:]).numel() if len(shape) > 1 else 1
        scale = 2.0 / fan_in**0.5 if len(shape) > 1 else 0.05
        out[key] = torch.randn(shape, generator=gen) * scale
    return out


def seed_flownets(sd: dict[str, Tensor], x: Tensor, *, gsvnet: bool) -> Tensor:
    """FlowNetS.forward (eval) of either seed: NVIDIA (padding 1, no crops) or GSVNet (padding 0, crop_like, ReLU
    after the crop, AvgPool2d(2, 2) before predict_flow2)."""
    pad = 0 if gsvnet else 1

    def conv(name, t, k, s):
        return F.leaky_relu(F.conv2d(t, sd[f"{name}.0.weight"], sd[f"{name}.0.bias"], s, (k - 1) // 2), 0.1)

    def deconv(name, t, like):
        out = F.conv_transpose2d(t, sd[f"{name}.0.weight"], sd[f"{name}.0.bias"], 2, pad)
        if gsvnet:
            return F.leaky_relu(crop(out, like), 0.1)
        return F.leaky_relu(out, 0.1)

    def up(name, t, like):
        return crop(F.conv_transpose2d(t, sd[f"{name}.weight"], sd.get(f"{name}.bias"), 2, pad), like)

    def pred(name, t):
        return F.conv2d(t, sd[f"{name}.weight"], sd[f"{name}.bias"], 1, 1)

    def crop(t, like):
        return t[:, :, : like.size(2), : like.size(3)] if gsvnet else t

    out_conv2 = conv("conv2", conv("conv1", x, 7, 2), 5, 2)
    out_conv3 = conv("conv3_1", conv("conv3", out_conv2, 5, 2), 3, 1)
    out_conv4 = conv("conv4_1", conv("conv4", out_conv3, 3, 2), 3, 1)
    out_conv5 = conv("conv5_1", conv("conv5", out_conv4, 3, 2), 3, 1)
    out_conv6 = conv("conv6_1", conv("conv6", out_conv5, 3, 2), 3, 1)
    concat, flow = out_conv6, pred("predict_flow6", out_conv6)
    for level, skip in ((5, out_conv5), (4, out_conv4), (3, out_conv3), (2, out_conv2)):
        concat = torch.cat((skip, deconv(f"deconv{level}", concat, skip),
                            up(f"upsampled_flow{level + 1}_to_{level}", flow, skip)), 1)
        if level > 2:
            flow = pred(f"predict_flow{level}", concat)
    if gsvnet:
        concat = F.avg_pool2d(concat, 2, 2)
    return pred("predict_flow2", concat)


def seed_flownet2s(sd: dict[str, Tensor], inputs: Tensor, rgb_max: float = 255.0, div_flow: float = 20.0) -> Tensor:
    """NVIDIA FlowNet2S.forward (eval) on inputs [N,3,2,H,W]: mean over both frames per channel, / rgb_max,
    FlowNetS, x div_flow, nn.Upsample(scale_factor=4, bilinear) (align_corners=False since torch 0.4)."""
    rgb_mean = inputs.contiguous().view(inputs.size()[:2] + (-1,)).mean(dim=-1).view(inputs.size()[:2] + (1, 1, 1))
    x = (inputs - rgb_mean) / rgb_max
    x = torch.cat((x[:, :, 0], x[:, :, 1]), dim=1)
    flow2 = seed_flownets(sd, x, gsvnet=False)
    return F.interpolate(flow2 * div_flow, scale_factor=4, mode="bilinear", align_corners=False)


def smooth_frames(n: int, height: int, width: int, seed: int = 0) -> Tensor:
    """[n,3,H,W] float frames in [0, 255] with some structure (blurred noise)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, height // 4 + 1, width // 4 + 1, generator=gen)
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return (x * 255).clamp(0, 255)


@pytest.fixture(scope="module")
def flownet2s() -> tuple[FlowNet2S, dict[str, Tensor]]:
    sd = seed_state(flow_up_bias=False, seed=1)
    net = FlowNet2S().eval()
    net.load_state_dict(sd, strict=True)
    return net, sd


# --- layouts and parameter counts ---------------------------------------------------------------------------------


def test_layouts_and_parameter_counts_match_the_seeds():
    nvidia, gsvnet = FlowNet2S(), GSVFlowNetS()
    assert {k: tuple(v.shape) for k, v in nvidia.state_dict().items()} == seed_layout(flow_up_bias=False)
    assert {k: tuple(v.shape) for k, v in gsvnet.state_dict().items()} == seed_layout(flow_up_bias=True)
    assert count_params(nvidia) == FLOWNET2S_PARAMS == 38_676_506  # NVIDIA's comment says 38,676,504
    assert count_params(gsvnet) == GSV_FLOWNETS_PARAMS == 38_676_514  # reference/gsvnet.md §3
    assert sum(torch.Size(s).numel() for s in seed_layout(False).values()) == 38_676_506


# --- the seeds' forwards ------------------------------------------------------------------------------------------


def test_flownet2s_equals_nvidias_forward_where_nvidias_runs(flownet2s):
    net, sd = flownet2s
    frames = smooth_frames(2, 64, 128)
    with torch.no_grad():
        ours = net.flow(frames[:1], frames[1:])
        seed = seed_flownet2s(sd, torch.stack((frames[:1], frames[1:]), dim=2))
    assert ours.shape == (1, 2, 64, 128)
    scale = float(seed.abs().max())
    assert scale > 0.1  # the random weights give a non-trivial flow
    torch.testing.assert_close(ours, seed, rtol=1e-4, atol=1e-5 * scale)  # fp32 summation order only


def test_flownet2s_pads_with_the_mean_colour_and_crops_back(flownet2s):
    """50x90 is not a multiple of 64 (NVIDIA's network cannot run it): vidseg pads bottom/right to 64x128 with
    the pair's mean colour (mean of the real pixels) and returns the top-left 50x90 of that flow."""
    net, sd = flownet2s
    frames = smooth_frames(2, 50, 90, seed=3)
    mean = frames.mean(dim=(0, 2, 3), keepdim=True)  # per channel, over both frames
    padded = mean.expand(2, 3, 64, 128).clone()
    padded[:, :, :50, :90] = frames
    with torch.no_grad():
        ours = net.flow(frames[:1], frames[1:])
        seed = seed_flownet2s(sd, torch.stack((padded[:1], padded[1:]), dim=2))[..., :50, :90]
    assert ours.shape == (1, 2, 50, 90)
    torch.testing.assert_close(ours, seed, rtol=1e-4, atol=1e-5 * float(seed.abs().max()))


@pytest.mark.parametrize("size", [(16, 32), (13, 27), (8, 8)])
def test_gsvnet_flownets_equals_gsvnets_forward_at_any_size(size):
    sd = seed_state(flow_up_bias=True, seed=2)
    net = GSVFlowNetS().eval()
    net.load_state_dict(sd, strict=True)
    x = torch.randn(1, 6, *size, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ours, seed = net(x), seed_flownets(sd, x, gsvnet=True)
    quarter = [-(-n // 4) for n in size]  # two stride-2 convs (padding k//2) round up
    assert ours.shape == seed.shape == (1, 2, quarter[0] // 2, quarter[1] // 2)  # then the 2x2 average pool
    torch.testing.assert_close(ours, seed, rtol=1e-4, atol=1e-5)


# --- units and direction, on weights set by hand --------------------------------------------------------------------


def constant_flow_net(cls, raw: tuple[float, float]):
    """A flow net whose every weight is zero but predict_flow2's bias: its raw output is `raw` everywhere."""
    net = cls().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.predict_flow2.bias.copy_(torch.tensor(raw))
    return net


@pytest.mark.parametrize("grid", [(64, 128), (12, 24), (9, 17)])
def test_flownet2s_flow_is_in_pixels_of_its_grid_and_warps_the_reference_onto_the_current_frame(grid):
    """Current frame B is the reference A moved by t = (+3 px in x, -2 px in y): B(p) = A(p - t), so the backward
    flow from B to A is -t. The raw output set to -t / div_flow must come back as -t pixels (x in channel 0),
    at the grid's size (padding to multiples of 64 and the crop included), and warping A by it gives B."""
    t = (3, -2)
    net = constant_flow_net(FlowNet2S, (-t[0] / 20.0, -t[1] / 20.0))
    stage = FlowNet2SFlowStage(net, lambda h, w: grid).eval()
    a = smooth_frames(1, *grid, seed=5)
    b = torch.roll(a, shifts=(t[1], t[0]), dims=(2, 3))  # b[y, x] = a[y - ty, x - tx]
    with torch.no_grad():
        (flow,) = stage(b.round().to(torch.uint8), a.round().to(torch.uint8))
    assert flow.shape == (1, 2, *grid)
    torch.testing.assert_close(flow[:, 0], torch.full(grid, -3.0).expand(1, *grid), rtol=0, atol=1e-4)
    torch.testing.assert_close(flow[:, 1], torch.full(grid, 2.0).expand(1, *grid), rtol=0, atol=1e-4)
    warped = ops.warp(a, flow, "gsvnet")
    inside = (slice(None), slice(None), slice(0, grid[0] - 2), slice(3, None))  # p - t stays in the frame
    torch.testing.assert_close(warped[inside], b[inside], rtol=0, atol=1e-3)


def test_flownet2s_flow_stage_resizes_both_frames_to_its_grid_and_puts_the_current_frame_first():
    seen = []
    net = constant_flow_net(FlowNet2S, (0.0, 0.0))
    real = net.flow
    net.flow = lambda x0, x1: seen.append((x0, x1)) or real(x0, x1)
    stage = FlowNet2SFlowStage(net, lambda h, w: (h // 4, w // 4))
    current = torch.full((1, 3, 40, 80), 200, dtype=torch.uint8)
    reference = torch.full((1, 3, 40, 80), 10, dtype=torch.uint8)
    (flow,) = stage(current, reference)
    (x0, x1), = seen
    assert x0.shape == x1.shape == (1, 3, 10, 20) and flow.shape == (1, 2, 10, 20)
    assert float(x0.mean()) == pytest.approx(200.0) and float(x1.mean()) == pytest.approx(10.0)

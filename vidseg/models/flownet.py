"""FlowNetS optical flow, in the two layouts vidseg's seeds ship: NVIDIA's FlowNet2-S and GSVNet's FlowNetS.

Both are the FlowNetS of Dosovitskiy et al. (ICCV 2015) without batch norm on a 6-channel image pair, with the
same module names (so the same state_dict keys): `conv1 .. conv6_1` (Conv + LeakyReLU(0.1), all with bias; 7x7
and 5x5 s2 then 3x3), `deconv5 .. deconv2` (4x4 s2 transposed conv + LeakyReLU(0.1)), `predict_flow6 ..
predict_flow2` (3x3 conv to 2 channels) and `upsampled_flow6_to_5 .. upsampled_flow3_to_2` (4x4 s2 transposed
conv 2 -> 2). They differ in three places:

- transposed convs: NVIDIA padding 1 (output exactly 2x: sizes must be multiples of 64); GSVNet padding 0
  (output 2n+2, cropped top-left to the skip's size, `crop_like`), so it runs at any size;
- flow upsampling (`upsampled_flow*`): NVIDIA without bias, GSVNet with one (4 x 2 more parameters);
- GSVNet average-pools (2x2) before predict_flow2: its raw flow is at 1/8 of the input, NVIDIA's at 1/4.
Parameters: NVIDIA 38,676,506 (its FlowNetS.py comment says 38,676,504), GSVNet 38,676,514. Files: NVIDIA's
`FlowNet2-S_checkpoint.pth.tar` is {"state_dict": ..., "epoch", "best_EPE"} (read with weights_only; the entry is
unwrapped); GSVNet keeps its trained flow net under "state_dict_of" of gsvnet_*_r18.tar with a `module.` prefix.

`FlowNet2S.flow(image0, image1)` is NVIDIA's `FlowNet2S.forward`: both frames in [0, rgb_max] RGB (its inference
feeds scipy-imread RGB in [0, 255]; rgb_max = 255), minus the per-channel mean over both frames, divided by
rgb_max, concatenated (frame 0 first); the raw flow at 1/4 of the input is multiplied by div_flow = 20 and
upsampled x4 (bilinear, align_corners=False: torch >= 0.4's nn.Upsample). The result is in pixels of the input
grid, channel 0 = x, 1 = y, and points from frame 0 into frame 1: image0(p) ~ image1(p + flow(p)) (FlowNet2 warps
img1 onto img0 with it). So with image0 = the current frame and image1 = the reference, it is vidseg's backward
motion (`vidseg.models.base`).

Frame sizes: NVIDIA's network needs height and width in multiples of 64 (its inference centre-crops frames to
them, dropping the borders). vidseg instead **pads** the normalised pair at the bottom and right with zeros (the
pair's mean colour) up to the next multiples of 64 and **crops** the flow back to the top-left H x W, so every
frame size works, pixel coordinates keep their meaning, and the result equals NVIDIA's exactly where NVIDIA's runs
(sizes that are multiples of 64: no padding happens). The mean is taken over the real pixels only.

GSVNet's FlowNetS (`GSVFlowNetS`) runs at any size as the seed does (its crops absorb odd sizes); GSVNet feeds it
cat[previous, current] 1/8-scale BGR frames and post-processes its raw output like FlowLight's
(`vidseg.models.flowwarp.GSVFlowStage`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidseg.models.base import Stage

__all__ = ["FlowNetS", "FlowNet2S", "GSVFlowNetS", "FlowNet2SFlowStage", "crop_like", "FLOWNET2S_PARAMS",
           "GSV_FLOWNETS_PARAMS"]

FLOWNET2S_PARAMS = 38_676_506  # NVIDIA's layout, counted from its code
GSV_FLOWNETS_PARAMS = 38_676_514  # GSVNet's (reference/gsvnet.md §3)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, bias=True),
                         nn.LeakyReLU(0.1, inplace=True))


def _deconv(cin: int, cout: int, padding: int) -> nn.Sequential:
    # GSVNet applies the LeakyReLU after its crop; an element-wise op commutes with the crop.
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=padding, bias=True),
                         nn.LeakyReLU(0.1, inplace=True))


def crop_like(x: Tensor, like: Tensor) -> Tensor:
    """x cropped to like's height and width from the top-left (GSVNet's crop_like); no-op when they match."""
    height, width = int(like.shape[-2]), int(like.shape[-1])
    if tuple(x.shape[-2:]) == (height, width):
        return x
    return x[..., :height, :width]


class FlowNetS(nn.Module):
    """FlowNetS without batch norm: a 6-channel pair -> raw 2-channel flow (x, y) at 1/4 of the input (1/8 with
    `pool_flow2`). See the module docstring for the two seeds' settings."""

    def __init__(self, *, in_channels: int = 6, deconv_padding: int = 1, flow_up_bias: bool = False,
                 pool_flow2: bool = False) -> None:
        super().__init__()
        self.conv1 = _conv(in_channels, 64, 7, 2)
        self.conv2 = _conv(64, 128, 5, 2)
        self.conv3 = _conv(128, 256, 5, 2)
        self.conv3_1 = _conv(256, 256)
        self.conv4 = _conv(256, 512, stride=2)
        self.conv4_1 = _conv(512, 512)
        self.conv5 = _conv(512, 512, stride=2)
        self.conv5_1 = _conv(512, 512)
        self.conv6 = _conv(512, 1024, stride=2)
        self.conv6_1 = _conv(1024, 1024)
        # Each decoder level concatenates the skip, the deconvolved features and the upsampled coarser flow.
        self.deconv5 = _deconv(1024, 512, deconv_padding)
        self.deconv4 = _deconv(512 + 512 + 2, 256, deconv_padding)
        self.deconv3 = _deconv(512 + 256 + 2, 128, deconv_padding)
        self.deconv2 = _deconv(256 + 128 + 2, 64, deconv_padding)
        self.predict_flow6 = nn.Conv2d(1024, 2, 3, padding=1)
        self.predict_flow5 = nn.Conv2d(1026, 2, 3, padding=1)
        self.predict_flow4 = nn.Conv2d(770, 2, 3, padding=1)
        self.predict_flow3 = nn.Conv2d(386, 2, 3, padding=1)
        self.predict_flow2 = nn.Conv2d(194, 2, 3, padding=1)
        for name in ("6_to_5", "5_to_4", "4_to_3", "3_to_2"):
            self.add_module(f"upsampled_flow{name}",
                            nn.ConvTranspose2d(2, 2, 4, stride=2, padding=deconv_padding, bias=flow_up_bias))
        self.pool_flow2 = pool_flow2

    def forward(self, x: Tensor) -> Tensor:
        c2 = self.conv2(self.conv1(x))
        c3 = self.conv3_1(self.conv3(c2))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        feat = self.conv6_1(self.conv6(c5))
        flow = self.predict_flow6(feat)
        levels = (
            (c5, self.deconv5, self.upsampled_flow6_to_5, self.predict_flow5),
            (c4, self.deconv4, self.upsampled_flow5_to_4, self.predict_flow4),
            (c3, self.deconv3, self.upsampled_flow4_to_3, self.predict_flow3),
            (c2, self.deconv2, self.upsampled_flow3_to_2, None),
        )
        for skip, deconv, upsample, predict in levels:
            feat = torch.cat((skip, crop_like(deconv(feat), skip), crop_like(upsample(flow), skip)), dim=1)
            if predict is not None:
                flow = predict(feat)
        if self.pool_flow2:
            feat = F.avg_pool2d(feat, 2, 2)
        return self.predict_flow2(feat)


class FlowNet2S(FlowNetS):
    """NVIDIA's FlowNet2-S (`FlowNet2-S_checkpoint.pth.tar`); `flow()` is its forward, for any frame size."""

    checkpoint_layout = "flownet2"
    size_multiple = 64  # the coarsest level (conv6) is 1/64 of the input; transposed convs exactly double

    def __init__(self, *, rgb_max: float = 255.0, div_flow: float = 20.0) -> None:
        super().__init__(in_channels=6, deconv_padding=1, flow_up_bias=False, pool_flow2=False)
        self.rgb_max = float(rgb_max)
        self.div_flow = float(div_flow)

    def flow(self, image0: Tensor, image1: Tensor) -> Tensor:
        """image0, image1: float [N,3,H,W] RGB in [0, rgb_max], in the net's dtype -> flow [N,2,H,W] in pixels of
        that grid with image0(p) ~ image1(p + flow(p)). Sizes not multiples of 64 are padded and cropped back."""
        height, width = int(image0.shape[-2]), int(image0.shape[-1])
        x0, x1 = image0, image1
        mean = (x0.mean(dim=(2, 3), keepdim=True) + x1.mean(dim=(2, 3), keepdim=True)) * 0.5
        x = torch.cat((x0 - mean, x1 - mean), dim=1) / self.rgb_max
        m = self.size_multiple
        pad_h, pad_w = -height % m, -width % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))  # zeros = the mean colour, bottom and right only
        raw = self(x)
        size = (int(raw.shape[-2]) * 4, int(raw.shape[-1]) * 4)
        flow = F.interpolate(raw * self.div_flow, size=size, mode="bilinear", align_corners=False)
        return flow[..., :height, :width] if (pad_h or pad_w) else flow


class GSVFlowNetS(FlowNetS):
    """GSVNet's FlowNetS (`--optical-flow-network flownet`): raw flow at 1/8 of its input, any input size."""

    checkpoint_entry = "state_dict_of"  # where the seed's gsvnet_*.tar keeps the flow net (as FlowLight)
    checkpoint_layout = "gsvnet-flownets"

    def __init__(self) -> None:
        super().__init__(in_channels=6, deconv_padding=0, flow_up_bias=True, pool_flow2=True)


def _bil(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class FlowNet2SFlowStage(Stage):
    """image, ref_image (uint8 RGB, full res) -> flow [N,2,h,w]: FlowNet2-S between both frames resized to
    `grid(H, W)` (bilinear, align_corners=True; no resize when the grid is the frame), in pixels of that grid,
    backward: p + flow(p) is where pixel p of `image` was in `ref_image`."""

    input_names = ("image", "ref_image")
    output_names = ("flow",)

    def __init__(self, net: FlowNet2S, grid: Callable[[int, int], tuple[int, int]]) -> None:
        super().__init__()
        self.net = net
        self.grid = grid  # (H, W) -> (h, w)

    def forward(self, image: Tensor, ref_image: Tensor) -> tuple[Tensor]:
        size = self.grid(int(image.shape[-2]), int(image.shape[-1]))
        dtype = self.net.conv1[0].weight.dtype  # the net's precision (a stage cast to fp16 computes in fp16)
        current = _bil(image.to(dtype), size)
        reference = _bil(ref_image.to(dtype), size)
        return (self.net.flow(current, reference),)

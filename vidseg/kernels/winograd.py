"""Winograd F(4x4, 3x3) convolution for compiled CPU stages.

A 3x3 stride-1 convolution costs 9 multiply-adds per input channel, output channel and pixel. Winograd's
minimal filtering (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) computes each 4x4
output tile from a 6x6 input tile with 36 products per channel pair instead of 144: 4x fewer multiply-adds in
the part that dominates, at the price of linear transforms of the input and output tiles. On a CPU with AVX2
and FMA only, the direct convolution already runs at the cores' peak rate (oneDNN and ONNX Runtime alike reach
~41 GMAC/s per core on BiSeNet-18), so fewer multiply-adds is the only way left to make fp32 faster.

The transforms are written as plain tensor arithmetic on strided views so that Inductor (AOTInductor packages,
`vidseg.export.aoti`) fuses each into one loop over the tiles; the 36 tile-wise products are one batched matrix
multiply (MKL). Run eagerly the transforms cost a dozen memory passes and the layer is slower than oneDNN's:
use this only inside a compiled stage, and only on layers wide enough to pay (`MIN_CHANNELS`). In fp32 the
result differs from the direct convolution by ~1e-6 of the output's range (the points 0, +-1, +-2 keep the
transform matrices' entries small); the package is validated against the direct convolution like every artifact.
The transformed filters take 4x the memory of the 3x3 ones.

Why not a library: oneDNN's Winograd needs AVX-512, and PyTorch's NNPACK fails on this CPU at the first call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["WinogradConv2d", "use_winograd", "winograd_eligible"]

TILE = 4  # output tile edge: F(4x4, 3x3) reads 6x6 input tiles
# The transforms cost ~1/C_in + 1/C_out of the products' time, so narrow layers lose: in AOTInductor packages on a
# 2-core AVX2 CPU, two ResNet blocks ran 2.4x faster at 256 channels (32x64), 1.8x at 128 (64x128) and 0.7x at 64
# (128x256) than with the direct convolution (with INDUCTOR_OPTIONS).
MIN_CHANNELS = 128
# Inductor options for a graph holding these layers: materialise every intermediate that is read more than once.
# By default Inductor inlines the producer of a convolution's input (batch norm, ReLU, residual add) into all 36
# transform outputs, recomputing it at every read and writing megabytes of C++: those blocks ran up to 1.5x slower
# and took 3x longer to compile (ResNet blocks at 64-256 channels; direct convolutions were unaffected).
# Not realize_opcount_threshold=1 as well: it gained the blocks nothing (46 ms either way, two 256-channel blocks
# at 32x64) but materialised every pointwise step of other fused code, e.g. each of CReFF's 49 window products
# and partial sums: its attention ran 1.2 s instead of 55 ms (benchmarks/results/cpu-2c-2026-12-07-inductor-options.md).
INDUCTOR_OPTIONS = {"realize_reads_threshold": 1}

# Filter transform G (6x3) for the interpolation points 0, 1, -1, 2, -2 and infinity.
_G = torch.tensor([[1 / 4, 0, 0],
                   [-1 / 6, -1 / 6, -1 / 6],
                   [-1 / 6, 1 / 6, -1 / 6],
                   [1 / 24, 1 / 12, 1 / 6],
                   [1 / 24, -1 / 12, 1 / 6],
                   [0, 0, 1]], dtype=torch.float64)


def _input_transform(d: list[Tensor]) -> list[Tensor]:
    """B^T applied along one axis: 6 strided slices -> 6 (the matrix's zeros and shared sums written out)."""
    d0, d1, d2, d3, d4, d5 = d
    return [4 * d0 - 5 * d2 + d4,
            (d3 + d4) - 4 * (d1 + d2),
            (d4 - d3) + 4 * (d1 - d2),
            (d4 - d2) + 2 * (d3 - d1),
            (d4 - d2) - 2 * (d3 - d1),
            4 * d1 - 5 * d3 + d5]


def _output_transform(m: list[Tensor]) -> list[Tensor]:
    """A^T applied along one axis: 6 -> 4."""
    m0, m1, m2, m3, m4, m5 = m
    s12, d12, s34, d34 = m1 + m2, m1 - m2, m3 + m4, m3 - m4
    return [m0 + s12 + s34, d12 + 2 * d34, s12 + 4 * s34, d12 + 8 * d34 + m5]


class WinogradConv2d(nn.Module):
    """A drop-in for a 3x3, stride-1, padding-1, ungrouped `nn.Conv2d`, computed by F(4x4, 3x3).

    The filter transform U = G g G^T is done once here (in float64), stored as [36, C_in, C_out].
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if not winograd_eligible(conv):
            raise ValueError(f"Winograd F(4x4,3x3) needs a 3x3 stride-1 padding-1 ungrouped convolution, got {conv}")
        weight = conv.weight.detach()
        u = torch.einsum("ai,kcij,bj->abck", _G, weight.double(), _G)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.register_buffer("u", u.reshape(36, self.in_channels, self.out_channels).to(weight.dtype).contiguous())
        bias = conv.bias.detach().clone() if conv.bias is not None else None
        self.register_buffer("bias", bias)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        k = self.out_channels
        th, tw = -(-h // TILE), -(-w // TILE)  # tiles per column and row; the last ones may overhang
        padded = F.pad(x, (1, tw * TILE + 1 - w, 1, th * TILE + 1 - h))
        tiles = []
        for rows in _input_transform([padded[:, :, i:i + TILE * th:TILE] for i in range(6)]):
            tiles += _input_transform([rows[:, :, :, j:j + TILE * tw:TILE] for j in range(6)])
        v = torch.stack(tiles).permute(0, 1, 3, 4, 2).reshape(36, n * th * tw, c)  # [36, tiles, C_in]
        m = torch.bmm(v, self.u).view(6, 6, n, th, tw, k)
        out = [torch.stack(_output_transform(list(row.unbind(0)))) for row in _output_transform(list(m.unbind(0)))]
        y = torch.stack(out).permute(2, 5, 3, 0, 4, 1).reshape(n, k, th * TILE, tw * TILE)[:, :, :h, :w]
        return y if self.bias is None else y + self.bias.view(1, k, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, F(4x4, 3x3)"


def winograd_eligible(module: nn.Module) -> bool:
    """Whether F(4x4, 3x3) computes this convolution exactly (up to rounding)."""
    return (type(module) is nn.Conv2d and module.kernel_size == (3, 3) and module.stride == (1, 1)
            and module.padding == (1, 1) and module.dilation == (1, 1) and module.groups == 1
            and module.padding_mode == "zeros" and module.weight.is_floating_point())


def use_winograd(module: nn.Module, *, min_channels: int | None = None) -> int:
    """Replace every eligible convolution inside module with at least min_channels (default `MIN_CHANNELS`)
    input and output channels, in place, by a `WinogradConv2d`; returns how many."""
    min_channels = MIN_CHANNELS if min_channels is None else min_channels
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if winograd_eligible(child) and min(child.in_channels, child.out_channels) >= min_channels:
                setattr(parent, name, WinogradConv2d(child))
                count += 1
    return count

"""Counting a module's multiply-accumulates and parameters (for the README tables and vidseg-bench).

`count_macs` runs one forward with hooks: every Conv (1/2/3-d, grouped or not) and ConvTranspose counts
out.numel() * (in_channels / groups) * prod(kernel), every Linear out.numel() * in_features; a module may add the
MACs of work done outside such layers through a `profile_macs(inputs, output) -> int` method (CReFF's local
attention: 2 * C*H*W * window^2). BatchNorm, activations, pooling, interpolation and softmax are not counted,
as in the seeds' digests. Inputs may live on the meta device (with the module moved there too), so a
1024x2048 count costs no compute.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["count_macs", "count_params"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _layer_macs(module: nn.Module, inputs: tuple, output: object) -> int:
    if isinstance(module, _CONVS):
        if isinstance(module, nn.modules.conv._ConvTransposeNd):  # each input element scatters a kernel
            x = inputs[0]
            return x.numel() * (module.out_channels // module.groups) * math.prod(module.kernel_size)
        return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def count_macs(module: nn.Module, *inputs: Tensor) -> int:
    """Multiply-accumulates of one forward of `module(*inputs)` (see the module docstring for what counts)."""
    total = 0

    def hook(mod: nn.Module, args: tuple, output: object) -> None:
        nonlocal total
        total += _layer_macs(mod, args, output)
        extra = getattr(mod, "profile_macs", None)
        if callable(extra):
            total += int(extra(args, output))

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total


def count_params(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Unique parameters (a module registered under two names counts once); buffers are not parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)

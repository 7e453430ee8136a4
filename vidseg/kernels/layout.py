"""The memory format the vidseg:: ops return: their input's, so a channels_last network stays channels_last.

One rule for every implementation (CPU kernel, reference, Triton wrappers) and for the fake implementations that
torch.compile and torch.export trace with: channels_last when the tensor is channels_last-contiguous and not
plain contiguous (a [N,C,1,1] map is both: contiguous wins), contiguous NCHW for anything else (views included).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["memory_format_of", "in_format_of"]


def memory_format_of(t: Tensor) -> torch.memory_format:
    """torch.channels_last for a channels_last 4-D tensor that is not also contiguous, else contiguous_format."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def in_format_of(out: Tensor, like: Tensor) -> Tensor:
    """`out` in `like`'s memory format (no copy when it already is)."""
    return out.contiguous(memory_format=memory_format_of(like))

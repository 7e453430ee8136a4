"""logits -> uint8 labels: bilinear resize to the frame plus argmax over classes, in row bands on the CPU.

The plain composition (F.interpolate to the frame, then argmax) materialises full-size float32 logits: 38 MiB for
19 classes at 512x1024, written once and read once, and freshly page-faulted every frame (allocations that size
are new mappings; on our 2-core VM first-touching 38 MiB alone cost ~70 ms under load). Here the output is made a
band of rows at a time: each band's logits are small enough to stay in cache (and their allocation is reused), and
the argmax reads them there. Labels are exactly those of the plain composition, ties included, because every band
is computed by the same F.interpolate kernel with the same per-pixel arithmetic:

PyTorch derives a row's source coordinate from the output row index and the scale (in float32, with a fused
multiply-add on our x86 build), so a band interpolated on its own agrees with the full map only when that mapping
is shift-invariant: when the row scale is a power of two (x2, x4, x8 ... upsampling: align_corners=False with
H = h * 2^k, or align_corners=True with H - 1 = (h - 1) * 2^k) or the rows are not resized (H = h). Then a band
whose first input row is i0 and whose first output row is i0 * 2^k samples exactly the coordinates of the full
map, shifted by i0. A band reaches one input row past the rows it needs where PyTorch clamps at a map's edge (a
negative source coordinate at the top with align_corners=False, the second tap of the last row at the bottom), so
those clamps only touch output rows the band discards. Other scales (frame sizes that are not a
power-of-two multiple of the logits, e.g. 1000 px from 128 logits) keep the plain composition: exactness there
would mean re-implementing PyTorch's kernel arithmetic, whose fused-multiply-add order is a property of the
compiled build. CUDA tensors keep the plain composition too (one fused pass on the GPU already).

Seeds whose network ends in a fixed upsample (BiSeNet's x8, bilinear, align_corners=False) and whose evaluation
then resizes that map to the frame (AR-Seg: bilinear, align_corners=True) compose two resizes. vidseg's stages stop
before the upsample (`ModelSpec.logits_upsample`), and `logits_to_labels(..., upsample=8)` composes the same two
steps: where the upsampled map already has the frame's size (a BiSeNet frame whose sides are multiples of 16) the
seed's second resize is the identity, and the x8 resize runs in bands as above; at other sizes the x8 map is
materialised (`upsample_logits`, the seed's own step) and resized to the frame as before: the old path, since two
bilinear resizes do not fold into one and bands of the second are not exact at a non-power-of-two scale.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["logits_to_labels", "upsample_logits", "banded_rows", "BAND_BYTES"]

# Bytes of float32 logits per band: cache-sized, so the argmax reads what the resize just wrote from cache, and
# tall enough that the spare rows a band computes (one input row's worth above and below) cost little.
BAND_BYTES = 4 * 2**20


def _plain(logits: Tensor, size: tuple[int, int], align_corners: bool) -> Tensor:
    if logits.shape[-2:] != torch.Size(size):
        logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=align_corners)
    return logits.argmax(1).to(torch.uint8)


def banded_rows(in_rows: int, out_rows: int, align_corners: bool) -> int | None:
    """Output rows per input row (2^k) when the row mapping is shift-invariant (see the module docstring), 1 when
    rows are not resized, None when bands could not reproduce the full resize exactly."""
    if out_rows == in_rows:
        return 1
    if align_corners:
        if in_rows < 2 or (out_rows - 1) % (in_rows - 1):
            return None
        factor = (out_rows - 1) // (in_rows - 1)
    else:
        if out_rows % in_rows:
            return None
        factor = out_rows // in_rows
    return factor if factor & (factor - 1) == 0 else None


def _band_input_rows(y0: int, y1: int, factor: int, in_rows: int, align_corners: bool) -> tuple[int, int, int]:
    """(i0, i1, out_rows): the band call on input rows i0 .. i1-1 whose output rows cover y0 .. y1-1.

    The band's output row 0 is the full map's row i0 * factor, and its scale equals the full map's (2^-k). Its
    first and last rows differ from the full map's where the kernel clamps at the band's edges (a source
    coordinate below 0 with align_corners=False; the second tap of the last input row), so the band reaches one
    input row beyond the rows y0 .. y1-1 interpolate between, on each side where the clamp could bite.
    """
    if factor == 1:  # rows are copied, not resized: no clamp, no spare rows
        return y0, y1, y1 - y0
    if align_corners:  # source row y / factor: rows y0 .. y1-1 read input rows y0 // f .. (y1 - 1) // f + 1
        i0, i1 = y0 // factor, min(in_rows, (y1 - 1) // factor + 3)
        return i0, i1, (i1 - i0 - 1) * factor + 1
    # source row (y + 1/2) / f - 1/2: rows y0 .. y1-1 read input rows y0 // f - 1 .. ceil(y1 / f)
    i0, i1 = max(0, y0 // factor - 1), min(in_rows, -(-y1 // factor) + 1)
    return i0, i1, (i1 - i0) * factor


_scratch = threading.local()


def _scratch_map(role: str, shape: tuple[int, ...], fmt: torch.memory_format) -> Tensor:
    """A float32 map this thread reuses frame after frame. A fresh 40 MiB map is a new mapping whose first touch
    (page faults) cost more than the resize that fills it: reusing the two maps of the seed's two resizes made
    the labels step 2-2.5x faster at 540x960. Keyed by inference mode too: a tensor made under inference mode
    cannot be written outside it."""
    key = (role, shape, fmt, torch.is_inference_mode_enabled())
    maps = getattr(_scratch, "maps", None)
    if maps is None:
        maps = _scratch.maps = {}
    if key not in maps:
        if len(maps) >= 4:  # a new frame size: let the old maps go
            maps.clear()
        maps[key] = torch.empty(shape, dtype=torch.float32).contiguous(memory_format=fmt)
    return maps[key]


def _two_resizes(logits: Tensor, upsample: int, size: tuple[int, int], align_corners: bool) -> Tensor:
    """The seed's x`upsample` map resized to the frame, then argmax: the same two PyTorch kernels as
    `upsample_logits` + F.interpolate (their out= forms), written into this thread's reused maps on the CPU."""
    n, k, h, w = logits.shape
    if logits.device.type != "cpu" or logits.requires_grad or n * k == 0:
        return _plain(upsample_logits(logits.float(), upsample), size, align_corners)
    fmt = torch.channels_last if logits.is_contiguous(memory_format=torch.channels_last) and not \
        logits.is_contiguous() else torch.contiguous_format
    up = _scratch_map("up", (n, k, h * upsample, w * upsample), fmt)
    torch.ops.aten.upsample_bilinear2d.out(logits.float(), [h * upsample, w * upsample], False, None, None, out=up)
    full = _scratch_map("frame", (n, k, *size), fmt)
    torch.ops.aten.upsample_bilinear2d.out(up, list(size), align_corners, None, None, out=full)
    return full.argmax(1).to(torch.uint8)


def upsample_logits(logits: Tensor, factor: int) -> Tensor:
    """The seed's in-network upsample of stride-`factor` logits: x`factor` bilinear, align_corners=False.

    Given as a size (the scale is then exactly 1/factor, as nn.Upsample(scale_factor=factor) samples), which
    PyTorch's CPU kernel runs 2x faster on channels_last logits. factor 1 returns the logits as they are.
    """
    if factor == 1:
        return logits
    size = (logits.shape[-2] * factor, logits.shape[-1] * factor)
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def logits_to_labels(logits: Tensor, size: tuple[int, int], *, align_corners: bool = True,
                     upsample: int = 1) -> Tensor:
    """Resize logits [N,K,h,w] to size (H, W) bilinearly and take the argmax -> uint8 labels [N,H,W].

    Exactly `F.interpolate(upsample_logits(logits, upsample).float(), size, mode="bilinear",
    align_corners=...).argmax(1)` (no second resize when the size already matches), computed in row bands on the
    CPU where that is exact (see the module docstring). upsample: `ModelSpec.logits_upsample`.
    """
    if upsample != 1:
        h, w = logits.shape[-2:]
        if (h * upsample, w * upsample) == (int(size[0]), int(size[1])):
            # The seed's resize to the frame is the identity here: only its x`upsample` step is left, banded.
            return logits_to_labels(logits, size, align_corners=False)
        # The seed's two resizes, materialised (the path before stride-8 logits; see the module docstring).
        return _two_resizes(logits, upsample, (int(size[0]), int(size[1])), align_corners)
    height, width = int(size[0]), int(size[1])
    n, k, h, w = logits.shape
    factor = banded_rows(h, height, align_corners)
    if logits.device.type != "cpu" or factor is None or logits.shape[-2:] == torch.Size(size) or n * k == 0:
        return _plain(logits, (height, width), align_corners)
    # The band calls must take the kernel the full call takes: PyTorch picks it from the input's layout, the
    # class count and whether output height + width <= 128, so bands keep the layout and are at least that tall.
    fmt = torch.channels_last if logits.is_contiguous(memory_format=torch.channels_last) and not \
        logits.is_contiguous() else torch.contiguous_format
    if height + width <= 128:
        return _plain(logits, (height, width), align_corners)
    rows = max(factor, BAND_BYTES // max(1, width * k * 4), 129 - width)
    rows = -(-rows // factor) * factor  # bands start on input-row boundaries
    # Band starts; the last band is moved up to end at the last row (overlapping its predecessor) rather than
    # shortened, so that every band call is as tall as the kernel choice above needs.
    bands = [(y0, min(height, y0 + rows)) for y0 in range(0, height, rows)]
    if bands[-1][1] - bands[-1][0] < rows:
        bands[-1] = (max(0, (height - rows) // factor * factor), height)
    labels = torch.empty((n, height, width), dtype=torch.uint8)
    index = torch.empty((1, max(y1 - y0 for y0, y1 in bands), width), dtype=torch.int64)
    for b in range(n):
        for y0, y1 in bands:
            i0, i1, out_rows = _band_input_rows(y0, y1, factor, h, align_corners)
            band = logits[b : b + 1, :, i0:i1].float().contiguous(memory_format=fmt)
            up = F.interpolate(band, size=(out_rows, width), mode="bilinear", align_corners=align_corners)
            top = y0 - i0 * factor
            out = index[:, : y1 - y0]
            torch.argmax(up[:, :, top : top + y1 - y0], dim=1, out=out)
            labels[b, y0:y1].copy_(out[0])
    return labels

"""A colour legend for label maps: one swatch and name per class, as a PNG beside an overlay video.

    write_legend("run1/clip_legend.png", label_set("cityscapes19").legend())

Drawn with Pillow's built-in font (no font files needed); the legend is a small image of its own rather than
pixels burnt into every video frame, so the overlay keeps the whole picture.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidseg.errors import output_error

__all__ = ["legend_image", "write_legend"]

_SWATCH = 14  # px
_ROW = 18
_PAD = 6


def legend_image(entries: Sequence[tuple[str, tuple[int, int, int]]], *, shares: Sequence[float] | None = None,
                 columns: int = 1) -> np.ndarray:
    """uint8 RGB legend: a colour swatch and the class name per entry (with its share of the pixels when
    `shares` is given), in `columns` columns."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    labels = [name if shares is None else f"{name} {share:.1%}" for (name, _), share in
              zip(entries, shares if shares is not None else [0.0] * len(entries), strict=True)]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max((probe.textlength(text, font=font) for text in labels), default=0)
    col_w = int(_PAD + _SWATCH + _PAD + text_w + _PAD)
    rows = -(-len(entries) // columns) if entries else 0
    image = Image.new("RGB", (max(col_w * columns, 1), rows * _ROW + 2 * _PAD), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for i, ((_, colour), text) in enumerate(zip(entries, labels, strict=True)):
        x, y = (i // rows) * col_w + _PAD, _PAD + (i % rows) * _ROW
        draw.rectangle([x, y + 2, x + _SWATCH, y + 2 + _SWATCH], fill=tuple(colour), outline=(0, 0, 0))
        draw.text((x + _SWATCH + _PAD, y + 3), text, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def write_legend(path: str | os.PathLike, entries: Sequence[tuple[str, tuple[int, int, int]]], *,
                 shares: Sequence[float] | None = None) -> Path:
    """The legend as a PNG at `path` (written to a temporary name, then renamed)."""
    from PIL import Image

    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    try:
        Image.fromarray(legend_image(entries, shares=shares, columns=2 if len(entries) > 12 else 1)).save(
            tmp, format="PNG")
        os.replace(tmp, path)
    except OSError as err:
        raise output_error(path, err) from err
    finally:
        tmp.unlink(missing_ok=True)
    return path

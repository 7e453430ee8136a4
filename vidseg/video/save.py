"""What `--save` writes: the output kinds and the sinks that write them, named after the input.

    make_sinks(("overlay", "labels"), Path("out"), "clip", fps=25.0, palette="cityscapes19")
    -> [OverlayVideoSink(out/clip_overlay.mp4), LabelPNGSink(out/clip_labels/)]

One place for vidseg-run and the cluster workers, so an input's outputs look the same whichever ran it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidseg.config import SAVE_KINDS

__all__ = ["SAVE_KINDS", "make_sinks"]
# ModelSpec.palette -> vidseg.video.sinks palette name
_PALETTES = {"cityscapes19": "cityscapes", "cityscapes": "cityscapes", "camvid11": "camvid11", "camvid12": "camvid12"}


def make_sinks(save: tuple[str, ...], folder: Path, stem: str, *, fps: float | None, palette: str) -> list[Any]:
    """The sinks for `save`, inside folder: <stem>_overlay.mp4 (at fps, 25 when unknown; the model's palette,
    Cityscapes when the sinks do not know it), <stem>_labels/ (PNG per frame), <stem>_labels.npz."""
    from vidseg.video.sinks import PALETTES, LabelPNGSink, NPZSink, OverlayVideoSink

    sinks: list[Any] = []
    if "overlay" in save:
        name = _PALETTES.get(palette, palette)
        sinks.append(OverlayVideoSink(folder / f"{stem}_overlay.mp4", fps=fps or 25.0,
                                      palette=name if name in PALETTES else "cityscapes"))
    if "labels" in save:
        sinks.append(LabelPNGSink(folder / f"{stem}_labels"))
    if "npz" in save:
        sinks.append(NPZSink(folder / f"{stem}_labels.npz"))
    return sinks

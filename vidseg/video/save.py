"""What `--save` writes: the output kinds and the sinks that write them, named after the input.

    make_sinks(("overlay", "labels"), Path("out"), "clip", fps=25.0, palette="cityscapes19")
    -> [OverlayVideoSink(out/clip_overlay.mp4), LabelPNGSink(out/clip_labels/)]

One place for vidseg-run and the cluster workers, so an input's outputs look the same whichever ran it.

| kind    | file(s)                                   | holds                                                     |
|---------|-------------------------------------------|-----------------------------------------------------------|
| overlay | <stem>_overlay.mp4, <stem>_legend.png     | the frames with label colours blended in; class colours   |
| labels  | <stem>_labels/<index>_trainIds.png        | one 8-bit PNG of class ids per frame                      |
| npz     | <stem>_labels.npz                         | labels [N, H, W] stacked, per-frame arrays, index, pts    |
| probs   | <stem>_probs.npz                          | fp16 class probabilities per frame at the logits' size    |

"probs" needs the engine to keep logits (`EngineConfig.return_logits`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidseg.config import SAVE_KINDS

__all__ = ["SAVE_KINDS", "make_sinks", "sink_paths", "legend_of", "default_root"]


def default_root() -> Path:
    """The folder numbered result folders go under (vidseg-run, -bench, -export, the cluster): $VIDSEG_OUT,
    else ./vidseg-out."""
    return Path(os.environ.get("VIDSEG_OUT") or "vidseg-out")


def make_sinks(save: Sequence[str], out: Path | str, stem: str, *, palette: str, fps: float | None,
               num_classes: int | None = None, alpha: float = 0.5, encode_threads: int = 0,
               encode_preset: str = "veryfast") -> list[Any]:
    """The sinks for the kinds asked for, writing `out/<stem>_*`, and the overlay's legend PNG beside it when the
    palette names a label set vidseg knows with `num_classes` classes (the model's). When `out` is a stream URL
    (a str: rtsp://, rtmp://, udp://, tcp://, srt://), the overlay alone, sent there live. encode_threads,
    encode_preset: the overlay encoder's threads (0: its own choice) and x264 preset (`vidseg.threads`)."""
    if not save:
        return []
    from vidseg.video.sinks import PALETTES, LabelPNGSink, NPZSink, OverlayVideoSink

    sinks: list[Any] = []
    if "overlay" in save:
        target = out if isinstance(out, str) else out / f"{stem}_overlay.mp4"
        sinks.append(OverlayVideoSink(target, fps=fps or 25.0, alpha=alpha, threads=encode_threads,
                                      preset=encode_preset, palette=palette if palette in PALETTES else "cityscapes"))
        if isinstance(out, str):
            return sinks
        legend = legend_of(palette, num_classes)
        if legend:
            from vidseg.video.legend import write_legend

            write_legend(out / f"{stem}_legend.png", legend)
    if "labels" in save:
        sinks.append(LabelPNGSink(out / f"{stem}_labels"))
    if "npz" in save:
        sinks.append(NPZSink(out / f"{stem}_labels.npz"))
    if "probs" in save:
        from vidseg.video.probs import ProbsSink

        sinks.append(ProbsSink(out / f"{stem}_probs.npz"))
    return sinks


def sink_paths(sinks: Sequence[Any]) -> list[Path | str]:
    """What each sink writes (a file or a folder; a stream's URL, redacted), with the overlay's legend beside it."""
    from vidseg.video.redact import redact

    named = [str(getattr(s, "path", getattr(s, "directory", ""))) for s in sinks]
    paths = [Path(p) for p in named if "://" not in p]
    legends = [p.with_name(p.name.replace("_overlay.mp4", "_legend.png")) for p in paths
               if p.name.endswith("_overlay.mp4")]
    return [redact(p) if "://" in p else Path(p) for p in named] + [p for p in legends if p.exists()]


def legend_of(palette: str, num_classes: int | None) -> list[tuple[str, tuple[int, int, int]]]:
    """(class name, colour) per class of a known palette; empty when vidseg does not know it or the model's class
    count differs (a model with its own classes)."""
    from vidseg.classes import label_set
    from vidseg.errors import InputError

    try:
        entries = label_set(palette).legend()
    except InputError:
        return []
    return entries if num_classes is None or len(entries) == num_classes else []

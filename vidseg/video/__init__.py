"""vidseg.video: frames in and out; nothing here knows about models or engines.

    open_source(input, motion=..., options=...)    any input (file, URL, camera, stdin, images, arrays, frames)
        -> Source                                  behind one protocol; SourceOptions: time-outs, reconnects, ...
    StreamSource, ImageSequenceSource              streams/cameras/stdin (reconnecting); folders, globs, Cityscapes
    vidseg.video.redact.redact(text)               credentials in URLs masked, for anything shown or written
    open_video(path, motion=...) -> VideoSource    iterate Frame(index, image, pts, pict_type, motion)
    MotionField, MotionChain                       codec motion vectors as backward maps; chained to the keyframe
    OverlayVideoSink, LabelPNGSink, NPZSink        result writers; colorize / overlay with a palette (vidseg.classes)
    VideoWriter                                    the one H.264 / HEVC / MPEG-4 encoder every video goes through

Names are imported on first use, so `import vidseg.video.frame` (or a command's --help) stays free of PyAV
and torch.
"""

from __future__ import annotations

import importlib

__all__ = [
    "open_source",
    "Source",
    "SourceOptions",
    "IterableSource",
    "StreamSource",
    "open_stream",
    "ImageSequenceSource",
    "open_video",
    "VideoSource",
    "Frame",
    "MOTION_CODECS",
    "MotionField",
    "MotionChain",
    "OverlayVideoSink",
    "LabelPNGSink",
    "NPZSink",
    "VideoWriter",
    "CITYSCAPES_PALETTE",
    "CITYSCAPES_TRAINID_TO_LABELID",
    "CAMVID11_PALETTE",
    "CAMVID12_PALETTE",
    "get_palette",
    "colorize",
    "overlay",
]

_LAZY = {
    **{name: "vidseg.video.source" for name in ("open_source", "Source", "SourceOptions", "IterableSource")},
    **{name: "vidseg.video.live" for name in ("StreamSource", "open_stream")},
    "ImageSequenceSource": "vidseg.video.images",
    **{name: "vidseg.video.decode" for name in ("open_video", "VideoSource", "MOTION_CODECS")},
    "Frame": "vidseg.video.frame",
    **{name: "vidseg.video.motion" for name in ("MotionField", "MotionChain")},
    **{name: "vidseg.video.sinks" for name in ("OverlayVideoSink", "LabelPNGSink", "NPZSink", "get_palette",
                                               "colorize", "overlay")},
    "VideoWriter": "vidseg.video.encode",
    **{name: "vidseg.classes" for name in ("CITYSCAPES_PALETTE", "CITYSCAPES_TRAINID_TO_LABELID",
                                           "CAMVID11_PALETTE", "CAMVID12_PALETTE")},
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vidseg.video' has no attribute {name!r}")

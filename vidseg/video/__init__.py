"""vidseg.video: frames in and out; nothing here knows about models or engines.

    open_source(input, motion=...) -> Source       any input (path, arrays, frames) behind one protocol
    open_video(path, motion=...) -> VideoSource    iterate Frame(index, image, pts, pict_type, motion)
    MotionField, MotionChain                       codec motion vectors as backward maps; chained to the keyframe
    OverlayVideoSink, LabelPNGSink, NPZSink        result writers; colorize / overlay with a palette (vidseg.classes)
    VideoWriter                                    the one H.264 / HEVC / MPEG-4 encoder every video goes through
"""

from vidseg.classes import CAMVID11_PALETTE, CAMVID12_PALETTE, CITYSCAPES_PALETTE, CITYSCAPES_TRAINID_TO_LABELID
from vidseg.video.decode import MOTION_CODECS, VideoSource, open_video
from vidseg.video.encode import VideoWriter
from vidseg.video.frame import Frame
from vidseg.video.motion import MotionChain, MotionField
from vidseg.video.sinks import (
    LabelPNGSink,
    NPZSink,
    OverlayVideoSink,
    colorize,
    get_palette,
    overlay,
)
from vidseg.video.source import IterableSource, Source, open_source

__all__ = [
    "open_source",
    "Source",
    "IterableSource",
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

"""The command line's side of sources: options for streams, cameras and image sequences, the early input check,
opening the input, and a safe stem for output names.

    add_source_arguments(parser)               --timeout, --reconnect*, --rtsp-transport, --fps, --video-size, ...
    check_input(text)                          a missing file fails before the model loads; URLs etc. pass
    open_input(text, args, motion=...)         -> Source (`vidseg.video.source.open_source`)
    output_stem(source)                        "cam" for rtsp://user:pw@host/cam?token=...: never a secret
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from vidseg.errors import ConfigError, InputError
from vidseg.video.redact import redact
from vidseg.video.source import RTSP_TRANSPORTS, Source, SourceOptions, open_source, source_kind

__all__ = ["add_source_arguments", "source_options", "check_input", "open_input", "output_stem", "INPUT_HELP"]

INPUT_HELP = ("video file; stream URL (rtsp://, rtmp://, http(s)://, tcp://, udp://, srt://); camera (/dev/video0 "
              "or 0); image folder, glob or Cityscapes city folder; - for a stream on stdin")


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of streams, cameras and image sequences, as one argument group."""
    defaults = SourceOptions()
    g = parser.add_argument_group("sources", "how streams, cameras and image sequences are opened")
    g.add_argument("--timeout", type=float, default=defaults.timeout, metavar="S",
                   help=f"streams, cameras: seconds an open or a read may wait (default {defaults.timeout:g})")
    g.add_argument("--reconnect", type=int, default=defaults.reconnect, metavar="N",
                   help=f"streams, cameras: attempts to reopen a lost stream, 0 none, -1 for ever "
                        f"(default {defaults.reconnect})")
    g.add_argument("--reconnect-delay", type=float, default=defaults.reconnect_delay, metavar="S",
                   help=f"first wait before reconnecting, doubled per attempt (default {defaults.reconnect_delay:g})")
    g.add_argument("--reconnect-max-delay", type=float, default=defaults.reconnect_max_delay, metavar="S",
                   help=f"longest wait between attempts (default {defaults.reconnect_max_delay:g})")
    g.add_argument("--rtsp-transport", choices=RTSP_TRANSPORTS, default=defaults.rtsp_transport,
                   help=f"RTSP transport (default {defaults.rtsp_transport})")
    g.add_argument("--fps", type=float, metavar="F",
                   help="image sequences: frame rate (default 25, Cityscapes 17); cameras: the rate to ask for")
    g.add_argument("--video-size", metavar="WxH", help="cameras: the picture size to ask for, e.g. 1280x720")
    g.add_argument("--input-format", metavar="FMT",
                   help="cameras: the pixel or compressed format to ask for (yuyv422, mjpeg, h264)")
    g.add_argument("--format", dest="demuxer", metavar="NAME",
                   help="FFmpeg demuxer to force, as ffmpeg -f (stdin: mpegts, matroska, h264, ...)")
    g.add_argument("--input-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an FFmpeg input option, repeatable (e.g. rtsp_flags=listen to receive a pushed RTSP stream)")


def source_options(args: argparse.Namespace) -> SourceOptions:
    """The parsed source options as a `SourceOptions`."""
    extra = {}
    for item in args.input_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--input-option {redact(item)!r} is not KEY=VALUE")
        extra[key] = value
    return SourceOptions(timeout=args.timeout, rtsp_transport=args.rtsp_transport, reconnect=args.reconnect,
                         reconnect_delay=args.reconnect_delay, reconnect_max_delay=args.reconnect_max_delay,
                         fps=args.fps, video_size=args.video_size, input_format=args.input_format,
                         format=args.demuxer, ffmpeg_options=extra)


def check_input(text: str) -> None:
    """Fail early (before the model loads) on a video file that is not there; streams, cameras, stdin and image
    sequences are checked when they are opened."""
    kind = source_kind(text)
    if kind == "images":
        from vidseg.cluster.inputs import VIDEO_SUFFIXES
        from vidseg.video.images import IMAGE_EXTENSIONS, ImageSequenceSource

        folder = Path(text)
        if folder.is_dir() and not any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir()):
            videos = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            if videos:
                raise InputError(f"{text}: is a directory of videos ({', '.join(videos[:3])}"
                                 f"{', ...' if len(videos) > 3 else ''}), not of images; give one video, or add "
                                 "--cluster local to process every video in it")
        ImageSequenceSource(text)  # lists the images (reads none): an empty folder or glob fails here
        return
    if kind != "file":
        return
    path = Path(text[len("file://"):] if text.lower().startswith("file://") else text)
    if not path.is_file():
        raise InputError(f"{text}: no such file; check the path")


def open_input(text: str, args: argparse.Namespace, *, motion: bool, threads: int = 0) -> Source:
    """The input opened as a `Source` with the command line's source options (threads: a file's decoder threads,
    0: FFmpeg's choice)."""
    return open_source(text, motion=motion, options=dataclasses.replace(source_options(args), threads=threads))


def output_stem(source: Any) -> str:
    """A file-name stem for a source's outputs, with no secret in it: a file's stem, a stream URL's last path part
    (else its host), a camera's device name, "stdin", an image folder's name."""
    name = str(getattr(source, "name", source))
    kind = source_kind(source if isinstance(source, (str, os.PathLike)) else name)
    if kind == "network":
        rest = redact(name).split("://", 1)[1]
        host, _, path = rest.split("?", 1)[0].split("#", 1)[0].partition("/")
        parts = [p for p in path.split("/") if p and p != "***"]
        stem = Path(parts[-1]).stem if parts else host.rsplit("@", 1)[-1].split(":", 1)[0]
    elif kind == "stdin":
        stem = "stdin"
    elif kind == "images":
        folder = Path(name)
        while any(c in folder.name for c in "*?[") and folder != folder.parent:
            folder = folder.parent
        stem = folder.name if folder.name and not folder.suffix else folder.stem
    else:
        stem = Path(name).stem
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._")
    return stem or "stream"

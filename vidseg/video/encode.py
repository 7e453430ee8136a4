"""Writing video: the one PyAV encoder every video vidseg writes goes through (overlay sinks, synthetic clips,
clips re-encoded for codec motion in the evaluation).

    with VideoWriter("out.mp4", width=W, height=H, rate=17, codec="libx264",
                     options=fixed_gop_options("libx264", gop=12, bframes=0)) as writer:
        for image in frames:
            writer.write(image)                    # pts = frames written so far, in 1 / rate

The file is written under a temporary name beside the final one (`<stem>.part<suffix>`, so the container
still follows the extension) and renamed when the writer closes, so a crash never leaves a half-written file
under the final name. Leaving the ``with`` block normally or by KeyboardInterrupt (Ctrl-C) finishes the file:
the encoder is flushed and the container's index written, so it plays with the frames written so far; any
other exception discards it.

The path may also be a stream URL, for live output: rtsp:// (pushed to a server, RTSP over TCP), rtmp:// (FLV),
udp://, tcp:// or srt:// (MPEG-TS); see `STREAM_FORMATS`. Frames then go out as they are encoded (x264 tuned
for zero latency, an I-frame every two seconds unless `gop` says otherwise, so that a viewer can join at any
time), there is no temporary name, and no error shows the URL's secrets (`vidseg.video.redact`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidseg.errors import InputError, ShapeError, output_error
from vidseg.video.redact import redact

__all__ = ["VideoWriter", "fixed_gop_options", "has_encoder", "stream_format", "STREAM_FORMATS"]

# Stream URL scheme -> the FFmpeg muxer of a video sent there.
STREAM_FORMATS = {"rtsp": "rtsp", "rtsps": "rtsp", "rtmp": "flv", "rtmps": "flv", "udp": "mpegts", "tcp": "mpegts",
                  "srt": "mpegts"}

_X26X_PARAMS = {"libx264": "x264-params", "libx265": "x265-params"}


def has_encoder(name: str) -> bool:
    """Whether this PyAV / FFmpeg build has the encoder `name` (e.g. "libx264")."""
    import av

    try:
        av.codec.Codec(name, "w")
    except Exception:  # PyAV raises UnknownCodecError, or ValueError in older releases
        return False
    return True


def stream_format(path: str | os.PathLike) -> str | None:
    """The muxer of a stream URL (`STREAM_FORMATS`); None for a file path. Another scheme is an InputError."""
    text = os.fspath(path)
    if "://" not in text or text.lower().startswith("file://"):
        return None
    scheme = text.split("://", 1)[0].lower()
    if scheme not in STREAM_FORMATS:
        raise InputError(f"{redact(text)}: cannot send a video over {scheme}://; use "
                         f"{', '.join(s + '://' for s in STREAM_FORMATS)}, or a file path")
    return STREAM_FORMATS[scheme]


def fixed_gop_options(encoder: str, gop: int, bframes: int, extra: Mapping[str, object] | None = None) -> dict:
    """Encoder options for an exact GOP structure: an I-frame every `gop` frames (closed GOPs, no scene-cut
    I-frames) and at most `bframes` consecutive B-frames. libx264 / libx265 run at preset veryfast with `extra`
    x264 / x265 parameters (e.g. {"ref": 1}) after the GOP ones; other encoders (mpeg4) only lose their
    scene-cut I-frames and take the GOP from `VideoWriter`'s gop and bframes."""
    key = _X26X_PARAMS.get(encoder)
    if key is None:
        return {"sc_threshold": "1000000000"}
    params = {"keyint": gop, "min-keyint": gop, "scenecut": 0, "bframes": bframes, **(extra or {}),
              "log-level": "error"}
    return {"preset": "veryfast", key: ":".join(f"{k}={v}" for k, v in params.items())}


class VideoWriter:
    """One video stream encoded from uint8 RGB frames with PyAV.

    path: output file; the container follows its extension (.mp4, .mkv, .avi ...); or a stream URL (see the
    module docstring). width, height: the encoded
    size (even for 4:2:0 pixel formats); a frame of another size is scaled to it. rate: nominal frame rate.
    codec: the PyAV encoder ("libx264", "libx265", "mpeg4" ...). time_base: the frames' pts unit (default
    1 / rate; e.g. 1/90000 to keep a variable-frame-rate source's timestamps). bitrate (bits/s), gop (frames
    between I-frames) and bframes (most consecutive B-frames) set the encoder's fields when given; options are
    the encoder's private options (crf, preset, x264-params ...; see `fixed_gop_options`).
    Errors: InputError when FFmpeg cannot write the file or encode a frame; ShapeError for a frame that is not
    uint8 RGB [H, W, 3] or an odd size with a 4:2:0 pixel format.
    """

    def __init__(self, path: str | os.PathLike, *, width: int, height: int, rate: float | Fraction = 25,
                 codec: str = "libx264", time_base: Fraction | None = None, bitrate: int | None = None,
                 gop: int | None = None, bframes: int | None = None, options: Mapping[str, str] | None = None,
                 pix_fmt: str = "yuv420p") -> None:
        import av

        if width < 1 or height < 1 or (pix_fmt.startswith("yuv420") and (width % 2 or height % 2)):
            raise ShapeError(f"{path}: cannot encode {width}x{height} frames as {pix_fmt} (4:2:0 needs an even size)")
        self.format = stream_format(path)  # None: a file
        self.url = os.fspath(path) if self.format else None
        self.path = Path(path) if self.url is None else self.url
        self.codec = codec
        self.width, self.height = int(width), int(height)
        self.rate = Fraction(rate)
        self.time_base = Fraction(time_base) if time_base is not None else 1 / self.rate
        self.count = 0
        options = dict(options or {})
        if self.url is None:
            self._part: Path | None = self.path.with_name(f"{self.path.stem}.part{self.path.suffix}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            target, open_args = str(self._part), {}
        else:
            self._part = None
            target = self.url
            open_args = {"format": self.format, "timeout": 10.0,
                         "options": {"rtsp_transport": "tcp"} if self.format == "rtsp" else {}}
            options = {"tune": "zerolatency", **options} if codec == "libx264" else options
            gop = max(1, round(2 * self.rate)) if gop is None else gop
        try:
            self._container = av.open(target, mode="w", **open_args)
        except av.FFmpegError as err:
            self._stream_fail(f"cannot write a {codec} video", err)
            if isinstance(err, OSError) and err.errno:
                raise output_error(self.path, err) from err
            raise InputError(f"{self.path}: cannot write a {codec} video: {err}") from err
        try:
            stream = self._container.add_stream(codec, rate=self.rate, options=options)
        except (av.FFmpegError, ValueError) as err:
            self._discard()
            self._stream_fail(f"cannot write a {codec} video", err)
            raise InputError(f"{self.path}: cannot write a {codec} video: {err}") from err
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = pix_fmt
        if bitrate is not None:
            stream.bit_rate = int(bitrate)
        if time_base is not None:
            stream.codec_context.time_base = self.time_base
        if gop is not None:
            stream.codec_context.gop_size = int(gop)
        if bframes is not None:
            stream.codec_context.max_b_frames = int(bframes)
        self._stream = stream

    def write(self, image: np.ndarray, *, pts: int | None = None, key: bool = False) -> None:
        """Encode one uint8 RGB [H, W, 3] frame. pts: its time in `time_base` units, increasing (default: the
        number of frames written before it). key: force an I-frame here."""
        import av

        if self._container is None:
            raise InputError(f"{self.path}: the video writer is closed")
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ShapeError(f"{self.path}: frames must be uint8 RGB [H, W, 3], got {image.dtype} {image.shape}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        if image.shape[:2] != (self.height, self.width):
            frame = frame.reformat(width=self.width, height=self.height)
        frame.pts = self.count if pts is None else int(pts)
        frame.time_base = self.time_base
        if key:
            frame.pict_type = av.video.frame.PictureType.I
        self._encode(frame)
        self.count += 1

    def close(self) -> None:
        """Flush the encoder, finish the container and move it to `path` (a no-op once closed)."""
        if self._container is None:
            return
        try:
            self._encode(None)  # the encoder's delayed frames
        except BaseException:
            self._discard()
            raise
        try:
            self._container.close()  # writes the index (moov): the file is playable
        except Exception as err:
            self._container = None
            if self._part is not None:
                self._part.unlink(missing_ok=True)
            self._stream_fail("cannot finish the video", err)
            if isinstance(err, OSError) and err.errno:
                raise output_error(self.path, err) from err
            raise InputError(f"{self.path}: cannot finish the video: {err}") from err
        self._container = None
        if self._part is not None:
            os.replace(self._part, self.path)

    def abort(self) -> None:
        """Stop without keeping the file (nothing appears under `path`)."""
        if self._container is not None:
            self._discard()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            self.close()
        else:
            self.abort()

    def _encode(self, frame) -> None:
        import av

        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except av.FFmpegError as err:
            self._stream_fail("sending the video failed", err)
            if isinstance(err, OSError) and err.errno:  # the file cannot be written (a full disk): no video
                self._discard()
                raise output_error(self.path, err) from err
            raise InputError(f"encoding {self.path} with {self.codec} failed: {err}") from err

    def _stream_fail(self, what: str, err: Exception) -> None:
        """For a stream: raise the InputError of a failure, redacted and unchained (FFmpeg's own message quotes
        the URL, secrets included). For a file: nothing (the caller raises its own error)."""
        if self.url is not None:
            message = f"{self.url}: {what}: {getattr(err, 'strerror', None) or err}"
            raise InputError(redact(message, source=self.url)) from None

    def _discard(self) -> None:
        container, self._container = self._container, None
        with contextlib.suppress(Exception):  # the file is thrown away; the error that led here is the one to report
            container.close()
        if self._part is not None:
            self._part.unlink(missing_ok=True)

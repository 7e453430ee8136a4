"""Streams FFmpeg reads as they come: network URLs, V4L2 cameras, and a container on standard input.

    with open_stream("rtsp://cam.local/live", motion=True) as source:    # or /dev/video0, or "-" (stdin)
        for frame in source:     # Frame(index, image, pts, pict_type, motion, arrived=..., segment=...)
            ...

A `StreamSource` decodes with the file decoder's core (`vidseg.video.decode.StreamDecoder`: codec motion vectors,
H.264 reference bits, orientation) but with slice threads only, as frame threads hold frames back. Each frame
carries `arrived`, the `time.perf_counter()` when its packet was read, from which the engine measures latency.

Network and camera sources are `live`; each open and each read waits at most `SourceOptions.timeout` seconds.
Streams are opened with minimal probing, so the first frame comes at once rather than after a buffered second.
A stream that ends or breaks (sender gone, time-out, reset) is *lost*, unless it declared a duration (a file
served over HTTP or RTSP), whose end is the end. A lost stream is reopened with exponential back-off
(`SourceOptions.reconnect*`); the frames after it get the next `Frame.segment`, so the engine starts the stream's
state anew with a keyframe, while indices and pts go on increasing (pts jump by the outage). Frames before the
loss were already handed on: nothing is lost but the outage. `reconnects` counts the reopenings.

A source that never opens, refuses the credentials, sends no video, or stays lost after the last attempt raises
one `InputError` line; authentication failures never repeat the URL's secrets, nor does anything else:
`name` and every message go through `vidseg.video.redact.redact`. Standard input is read once to its end, is
not live and is never reopened.
"""

from __future__ import annotations

import errno
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import av

from vidseg.errors import InputError
from vidseg.video.decode import StreamDecoder
from vidseg.video.frame import Frame
from vidseg.video.redact import redact
from vidseg.video.source import FrameIterator, SourceOptions

__all__ = ["StreamSource", "open_stream", "STREAM_KINDS"]

STREAM_KINDS = ("network", "device", "stdin")
_MAX_ARRIVALS = 512  # arrival times kept for packets whose frames are not out of the decoder yet


class _Failure(Exception):
    """Why a connection failed or a stream was lost: one line (secrets redacted), and whether retrying can help."""

    def __init__(self, message: str, fatal: bool) -> None:
        super().__init__(message)
        self.fatal = fatal


class StreamSource(FrameIterator):
    """A network stream, camera or stdin container (see the module docstring). Made by `open_stream`.

    Attributes once open: name (redacted), live, fps, size, codec, motion_available, reconnects, frames (handed
    out so far), packets_skipped (damaged packets dropped by the decoder, common on UDP).
    """

    def __init__(self, url: str, *, kind: str, motion: bool = False, options: SourceOptions | None = None) -> None:
        if kind not in STREAM_KINDS:
            raise ValueError(f"kind must be one of {STREAM_KINDS}, got {kind!r}")
        self._url = url
        self.kind = kind
        self.options = options or SourceOptions()
        self.name = "stdin" if kind == "stdin" else redact(url)
        self.live = kind != "stdin"
        self.motion = bool(motion)
        self.reconnects = 0
        self.frames = 0
        self._skipped_before = 0  # damaged packets of earlier connections
        self._stopping = threading.Event()
        self._check_local()
        try:
            self._container, self._decoder = self._connect()
        except _Failure as failure:
            raise InputError(f"{self.name}: cannot open the stream: {failure}") from None

    # -------------------------------------------------------------------------------------------- the protocol
    @property
    def fps(self) -> float | None:
        return self._decoder.fps

    @property
    def size(self) -> tuple[int, int] | None:
        return self._decoder.size if min(self._decoder.size) > 0 else None  # unknown until a frame, rarely

    @property
    def codec(self) -> str:
        return self._decoder.codec

    @property
    def motion_available(self) -> bool:
        return self._decoder.motion_available

    @property
    def packets_skipped(self) -> int:
        return self._skipped_before + len(self._decoder.skipped)

    def stop(self) -> None:
        """Ask a reading thread to finish soon (thread-safe): a back-off wait ends at once, a read within the
        time-out."""
        self._stopping.set()

    def close(self) -> None:
        self.stop()
        super().close()
        self._container.close()

    def __repr__(self) -> str:
        return f"StreamSource({self.name!r}, kind={self.kind}, codec={self.codec}, size={self.size})"

    # -------------------------------------------------------------------------------------------- reading
    def _frames(self) -> Iterator[Frame]:
        segment = 0
        shift = 0.0  # added to this connection's pts so that they go on from the previous connection's
        last: Frame | None = None
        while True:
            container, decoder = self._container, self._decoder
            rebase = segment > 0  # the first timed frame of a new connection sets its shift
            lost: _Failure | None = None
            try:
                for frame in self._read(container, decoder):
                    if rebase and frame.pts is not None and last is not None and last.pts is not None:
                        gap = max((frame.arrived or 0.0) - (last.arrived or 0.0), 1.0 / (self.fps or 25.0))
                        shift, rebase = last.pts + gap - frame.pts, False
                    pts = None if frame.pts is None else frame.pts + shift
                    last = replace(frame, index=self.frames, pts=pts, segment=segment)
                    self.frames += 1
                    yield last
            except _Failure as failure:
                lost = failure
            finally:
                container.close()
            if self._stopping.is_set():
                return
            if lost is None and (self.kind == "stdin" or decoder.duration is not None):
                return  # the stream ended: stdin at its end, or a served file
            if self.kind == "stdin":
                raise InputError(f"stdin: the stream broke off after {self.frames} frames: {lost}; frames up to "
                                 "there were processed")
            if lost is not None and lost.fatal:
                raise InputError(f"{self.name}: {lost}")
            reopened = self._reconnect(lost or _Failure("the stream ended", fatal=False))
            if reopened is None:
                return
            self._skipped_before += len(decoder.skipped)
            self._container, self._decoder = reopened
            self.reconnects += 1
            segment += 1

    def _read(self, container, decoder: StreamDecoder) -> Iterator[Frame]:
        """One connection's frames, each with the time its packet arrived; a read error becomes a _Failure."""
        arrivals: dict[float, float] = {}
        packets = container.demux(decoder.stream)
        time_base = decoder.stream.time_base
        while not self._stopping.is_set():
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError as err:
                yield from self._stamp(decoder.drain(), arrivals)
                raise self._failure(err) from None
            now = time.perf_counter()
            if packet.pts is not None and time_base is not None:
                if len(arrivals) >= _MAX_ARRIVALS:
                    del arrivals[next(iter(arrivals))]
                arrivals[float(packet.pts * time_base)] = now
            yield from self._stamp(decoder.decode(packet), arrivals, now)
        yield from self._stamp(decoder.drain(), arrivals)

    def _stamp(self, frames: list[Frame], arrivals: dict[float, float], now: float | None = None) -> Iterator[Frame]:
        """The frames with the time their packet arrived; stdin's frames get none (it is not live: a live run
        paces it like a file, and its latency runs from that release)."""
        for frame in frames:
            arrived = arrivals.pop(frame.pts, None) if frame.pts is not None else None
            yield replace(frame, arrived=arrived or now or time.perf_counter()) if self.live else frame

    # -------------------------------------------------------------------------------------------- connecting
    def _check_local(self) -> None:
        if self.kind == "device":
            if not sys.platform.startswith("linux"):
                raise InputError(f"{self.name}: cameras are read through V4L2, which needs Linux; on other systems "
                                 "stream the camera (e.g. ffmpeg ... -f mpegts -) into `vidseg-run -`")
            if not os.path.exists(self._url):
                raise InputError(f"{self.name}: no such camera device; `ls /dev/video*` lists the V4L2 cameras")
            if not _is_char_device(self._url):
                raise InputError(f"{self.name}: not a camera device (V4L2 cameras are /dev/videoN)")
        if self.kind == "stdin" and os.isatty(0):  # FFmpeg reads file descriptor 0, whatever sys.stdin is
            raise InputError("stdin: standard input is a terminal; pipe a video stream into it, e.g. "
                             "`ffmpeg -i CAMERA -c:v libx264 -f mpegts - | vidseg-run - --live`")

    def _open_arguments(self) -> tuple[str, dict]:
        o = self.options
        # Minimal probing: FFmpeg's default reads about a second of stream before the first frame, which a live
        # source would then hand on as one late burst (measured: open 1.2 s -> 0.08 s on a loopback RTSP camera).
        options = {"probesize": "32", "analyzeduration": "0"} if self.kind == "network" else {}
        scheme = self._url.split("://", 1)[0].lower() if "://" in self._url else ""
        if scheme in ("rtsp", "rtsps"):
            options["rtsp_transport"] = o.rtsp_transport
        fmt = o.format
        if self.kind == "device":
            fmt = fmt or "v4l2"
            if o.video_size:
                options["video_size"] = o.video_size
            if o.fps:
                options["framerate"] = f"{o.fps:g}"
            if o.input_format:
                options["input_format"] = o.input_format
        options.update(o.ffmpeg_options)
        if "listen" in options.get("rtsp_flags", "") and "listen_timeout" not in options:
            options["listen_timeout"] = str(math.ceil(o.timeout))  # FFmpeg's default (-1) overflows (ERANGE)
        url = "pipe:0" if self.kind == "stdin" else self._url
        timeout = None if self.kind == "stdin" else (o.timeout, o.timeout)
        return url, {"format": fmt, "options": options, "timeout": timeout}

    def _connect(self):
        """(container, decoder) of a new connection; a _Failure when it cannot be made."""
        url, kwargs = self._open_arguments()
        began = time.monotonic()
        try:
            container = av.open(url, "r", **kwargs)
        except av.FFmpegError as err:
            timeout = self.options.timeout
            if isinstance(err, av.error.InvalidDataError) and time.monotonic() - began >= 0.9 * timeout:
                # a server that accepts the connection and never answers: FFmpeg's RTSP demuxer, interrupted
                # by the time-out, says "invalid data"
                raise _Failure(f"no answer within {timeout:g} s (time-out)", fatal=False) from None
            raise self._failure(err, opening=True) from None
        except ValueError as err:  # an unknown format name
            raise _Failure(redact(str(err), source=self._url), fatal=True) from None
        try:
            decoder = StreamDecoder(container, self.name, motion=self.motion, low_delay=True,
                                    hint="the source sends no video; check the stream's path or channel")
        except InputError as err:
            container.close()
            raise _Failure(str(err).split(": ", 1)[-1], fatal=True) from None
        return container, decoder

    def _reconnect(self, lost: _Failure):
        """Reopen a lost stream with exponential back-off; None when stopped meanwhile; InputError when every
        attempt failed or a failure cannot be retried."""
        o = self.options
        delay, attempt, began, why = o.reconnect_delay, 0, time.monotonic(), lost
        while o.reconnect < 0 or attempt < o.reconnect:
            attempt += 1
            if self._stopping.wait(delay):
                return None
            try:
                return self._connect()
            except _Failure as failure:
                if failure.fatal:
                    raise InputError(f"{self.name}: lost after {self.frames} frames ({lost}); reconnecting "
                                     f"failed: {failure}") from None
                why = failure
            delay = min(delay * 2.0, o.reconnect_max_delay)
        if o.reconnect == 0:
            raise InputError(f"{self.name}: lost after {self.frames} frames: {lost}; reconnecting is off "
                             "(--reconnect 0); frames up to the loss were processed")
        raise InputError(
            f"{self.name}: lost after {self.frames} frames ({lost}) and not back after {attempt} reconnect "
            f"attempts in {time.monotonic() - began:.0f} s (last: {why}); frames up to the loss were processed; "
            "check the source, or allow more attempts (--reconnect N, -1 for ever)"
        )

    def _failure(self, err: av.FFmpegError, *, opening: bool = False) -> _Failure:
        """One FFmpeg error as a one-line _Failure, redacted; fatal when retrying cannot help."""
        message, fatal = _describe(err, self.options.timeout, opening, self._url)
        log = getattr(err, "log", None)
        if log and log[1] and not message.startswith("authentication"):
            message = f"{message} (FFmpeg: {log[1][2].strip()})"
        return _Failure(redact(message, source=self._url), fatal)


def _describe(err: av.FFmpegError, timeout: float, opening: bool, url: str) -> tuple[str, bool]:
    """(what went wrong, fatal) for an FFmpeg error while opening or reading a stream."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if isinstance(err, av.error.HTTPUnauthorizedError):
        return "authentication failed (401 Unauthorized): check the user name and password", True
    if isinstance(err, av.error.HTTPForbiddenError):
        return "access forbidden (403): these credentials may not read this stream", True
    if isinstance(err, av.error.HTTPNotFoundError):
        return "not found (404): check the stream's path", True
    if isinstance(err, av.error.HTTPClientError):
        return f"the server refused the request ({err.strerror})", True
    if isinstance(err, av.error.ProtocolNotFoundError):
        return f"this FFmpeg build cannot read {scheme}:// streams (the protocol is not compiled in)", True
    if isinstance(err, av.error.ExitError):  # PyAV's time-out interrupt
        return f"no data within {timeout:g} s (time-out)", False
    if isinstance(err, av.error.ConnectionRefusedError):
        return "connection refused: nothing accepts connections at that address and port", False
    code = getattr(err, "errno", None)
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "host unreachable: check the address and the network", False
    if code == errno.ETIMEDOUT:
        return "the connection timed out: check the address and the network", False
    if isinstance(err, av.error.FileNotFoundError):
        return "no such stream or device", True
    if isinstance(err, av.error.PermissionError):
        return "permission denied (e.g. add yourself to the 'video' group for a camera)", True
    if isinstance(err, av.error.InvalidDataError) and opening:
        return f"the data is not a stream FFmpeg can read ({err.strerror}); check the URL and format", True
    if opening and code == errno.EIO:  # FFmpeg says only "Input/output error" for these two
        host = _host(url)
        if host is None:
            return "the URL is malformed (its host part cannot be read); check it", True
        if host and _unresolvable(host):
            return f"the host name {host!r} cannot be resolved: check the address and the network (DNS)", False
    return err.strerror or type(err).__name__, False


def _host(url: str) -> str | None:
    """The host of a URL ('' when it has none, e.g. a file path); None when the URL cannot be parsed."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return None


def _unresolvable(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror:
        return True
    except OSError:  # another failure (no network at all): not the name's fault
        pass
    return False


def _is_char_device(path: str) -> bool:
    import stat

    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


def open_stream(url: str, *, kind: str = "network", motion: bool = False,
                options: SourceOptions | None = None) -> StreamSource:
    """Open a network URL (kind "network"), a V4L2 camera path ("device") or standard input ("stdin", url "-").
    motion: export codec motion vectors. Raises `InputError` (one line, no secrets) when it cannot be opened."""
    return StreamSource(url, kind=kind, motion=motion, options=options)

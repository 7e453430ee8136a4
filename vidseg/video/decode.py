"""Decoding: PyAV demux + frame-threaded decode -> `Frame(index, image, pts, pict_type, motion)`.

`open_video(path)` is the one entry point. The returned `VideoSource` is a context manager and an iterator of
`Frame`s in display order:

    with open_video("clip.mp4", motion=True) as video:
        for frame in video:
            frame.image    # uint8 RGB [H, W, 3], display orientation
            frame.motion   # MotionField (codec motion vectors) or None

Contract:
  * ``Frame.index`` counts decoded frames from 0 (never derived from pts); ``pts`` is in seconds.
  * Every failure a user can cause (missing, empty or non-video file, no video stream, undecodable or truncated
    stream, unsupported display matrix) raises `InputError`; FFmpeg's errors are translated in one place
    (`_input_error`) and chained (``from err``). A stream that breaks off mid-way first yields every frame that
    can still be decoded (the decoder is drained), then raises an `InputError` saying how many frames were
    decoded and where it stopped. A damaged packet mid-way (flagged corrupt by the demuxer, or refused by the
    decoder as invalid data) is skipped and decoding goes on; once the stream ends, an `InputError` says how many
    packets were skipped. "Breaks off" also covers streams that end cleanly but early: fewer frames than
    the container's frame count, or (when the count is unknown, e.g. Matroska) a last frame well before the
    stream's declared duration.
  * Display rotation (the stream's display matrix, multiples of 90 degrees) is applied to the image and to the
    motion field; flipped or oblique display matrices are refused.
  * ``Frame.motion`` (with ``motion=True``) holds the codec's vectors as exported (``MotionField.blocks``), put
    on its cell grid only when first read, in the reader's thread (`MotionField`). It is None when there is no
    motion to report: the codec exports no vectors (HEVC, VP9, AV1, ...; see `VideoSource.motion_available`) or
    the frame is an I-frame. A P/B-frame of an exporting codec (H.264, MPEG-1/2/4, H.263) without side data gets
    an all-invalid `MotionField` ("motion unknown"), told apart from "no export" by the codec and the picture
    type. It is intra-coded throughout (FFmpeg attaches side data only when at least one block has a vector) or,
    with MPEG-1/2/4, it is the last frame of a stream whose decoder holds a frame back: FFmpeg exports no vectors
    for the frame it returns at the final flush (measured). An empty array never appears.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vidseg.errors import InputError
from vidseg.video.frame import Frame

__all__ = ["Frame", "StreamDecoder", "SkippedPackets", "VideoSource", "open_video", "MOTION_CODECS"]

# Decoders whose FFmpeg implementation exports AV_FRAME_DATA_MOTION_VECTORS (h264 and the mpegvideo family).
MOTION_CODECS = frozenset(
    {"h264", "mpeg1video", "mpeg2video", "mpeg4", "h263", "h263p", "h263i", "flv", "msmpeg4v1", "msmpeg4v2",
     "msmpeg4", "wmv1", "wmv2"}
)
# Codecs whose B-frames are never references.
_NO_REFERENCE_B = frozenset({"mpeg1video", "mpeg2video", "mpeg4", "h263", "h263p", "msmpeg4v1", "msmpeg4v2",
                             "msmpeg4", "wmv1", "wmv2", "flv"})
# AVPictureType -> 'I' / 'P' / 'B' (S = MPEG-4 GMC sprite, predicted; SI/SP/BI as their base types).
_PICT_TYPES = {1: "I", 2: "P", 3: "B", 4: "P", 5: "I", 6: "P", 7: "B"}
# Intra-only codecs (camera raw and MJPEG frames): frames get pict_type "?", as no frame predicts from another.
_INTRA_ONLY = frozenset({"rawvideo", "mjpeg", "png", "bmp", "tiff", "jpeg2000", "jpegls", "ljpeg"})
_DECODER_FIELDS = frozenset({"codec", "fps", "size", "rotation", "motion_available", "length", "duration"})


class SkippedPackets:
    """Damaged packets a decoder skipped: how many, and the first one's time (s, -1 unknown). Constant memory: a
    lossy UDP camera may skip packets for weeks."""

    def __init__(self) -> None:
        self.count = 0
        self.first = -1.0

    def add(self, seconds: float) -> None:
        if self.count == 0:
            self.first = seconds
        self.count += 1

    def __len__(self) -> int:
        return self.count


class StreamDecoder:
    """The decode core that file and live sources share: the video stream of an open PyAV container -> `Frame`s.

    It picks the video stream (a cover image is not one), configures the decoder (threads, motion export), reads
    H.264 reference bits from the packets, applies the display rotation and turns decoded pictures into frames:
    index counted from 0, pts in seconds, picture type, codec motion. A damaged packet (flagged corrupt by the
    demuxer, or refused by the decoder as invalid data) is skipped and counted in `skipped` (`SkippedPackets`).

    name: how errors name the input (never a secret). hint: what to give instead when there is no video stream.
    low_delay: slice threads only: frame threads hold back one frame per thread, which a live source cannot
    afford. Attributes: codec, motion_available, fps, size (H, W; display orientation), rotation, length
    (frame count the container declares, or None), duration (s or None), frames (made so far), last_pts.
    """

    _MAX_PENDING = 512  # H.264 reference bits kept for frames not yet out of the decoder (bounded for live use)

    def __init__(self, container, name: str, *, motion: bool = False, threads: int = 0, cell: int = 4,
                 low_delay: bool = False, hint: str = "give a video file") -> None:
        self.name = name
        self.cell = int(cell)
        self.frames = 0
        self.skipped = SkippedPackets()
        self.last_pts: float | None = None
        self.start = 0.0
        # A cover image (attached picture, e.g. album art in an audio file) is not a video stream.
        videos = [s for s in container.streams.video if not _is_cover(s) and s.codec_context is not None]
        if not videos:
            found = ", ".join(f"{s.type} ({s.codec_context.name if s.codec_context else 'unknown codec'})"
                              for s in container.streams) or "none"
            raise InputError(f"{name}: no video stream (streams found: {found}); {hint}")
        stream = self.stream = videos[0]
        ctx = stream.codec_context
        self.codec = ctx.name
        self.motion_available = bool(motion) and self.codec in MOTION_CODECS
        self.length = stream.frames or None
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.duration = _stream_duration(container, stream)
        self._coded_size = (ctx.height, ctx.width)
        self._time_base = stream.time_base
        self.rotation = 0
        self.size = self._coded_size
        # H.264: read nal_ref_idc from the packets (B-pyramids); avcC extradata gives the NAL length size.
        self._nal_length: int | None = None
        self._reference_by_pts: dict[int, bool | None] = {}
        if self.codec == "h264":
            extra = ctx.extradata or b""
            self._nal_length = (extra[4] & 3) + 1 if len(extra) > 4 and extra[0] == 1 else 0
        stream.thread_type = "SLICE" if low_delay else "AUTO"  # AUTO: frame + slice threading
        stream.thread_count = threads  # 0: FFmpeg picks (cores + 1)
        # One converter for the stream: `VideoFrame.to_ndarray(format=...)` builds a scaler per frame, and one
        # with automatic threads, which costs more than the conversion (0.2 ms at 960x540) and competes with
        # the decoder's own threads. Same pixels.
        self._reformatter = VideoReformatter()
        if motion:
            ctx.options = {"flags2": "+export_mvs"}
            # Imported here: motion math needs torch, and checking a file without motion (vidseg-run's check
            # before any model loads) should not pay for importing it.
            from vidseg.video.motion import MotionField

            self._motion_field = MotionField

    def decode(self, packet) -> list[Frame]:
        """The frames a packet completes (none for a damaged packet, which is skipped)."""
        if packet.is_corrupt:  # a cut-off or damaged packet: skip it rather than decode garbage
            self.skipped.add(_packet_time(packet))
            return []
        if self._nal_length is not None and packet.size and packet.pts is not None:
            if len(self._reference_by_pts) >= self._MAX_PENDING:  # frames that never came out
                del self._reference_by_pts[next(iter(self._reference_by_pts))]
            self._reference_by_pts[packet.pts] = _h264_reference(memoryview(packet), self._nal_length)
        try:
            return [self._make_frame(frame) for frame in self.stream.decode(packet)]
        except av.error.InvalidDataError:  # one damaged packet: the frames after it still decode
            self.skipped.add(_packet_time(packet))
            return []

    def drain(self) -> list[Frame]:
        """What the (frame-threaded) decoder still holds, after the last packet or a failure."""
        frames: list[Frame] = []
        try:
            for frame in self.stream.decode(None):
                frames.append(self._make_frame(frame))
        except av.FFmpegError:
            pass
        return frames

    def where(self) -> str:
        return f"last decoded frame index {self.frames - 1}, pts {self.last_pts:.3f} s" \
            if self.frames and self.last_pts is not None else f"{self.frames} frames decoded"

    def _make_frame(self, frame: av.VideoFrame) -> Frame:
        index = self.frames
        if index == 0:
            self._set_orientation(frame)
        image = self._reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
        k = self.rotation // 90
        if k:
            image = np.ascontiguousarray(np.rot90(image, k))
        if self.codec in _INTRA_ONLY:  # every picture is coded alone: its type says nothing about prediction
            pict_type = "?"
        else:
            pict_type = _PICT_TYPES.get(int(frame.pict_type), "I" if frame.key_frame else "P")
        motion = None
        if self.motion_available and pict_type != "I":
            side = frame.side_data.get("MOTION_VECTORS")
            size = (frame.height, frame.width)
            if side is None:
                motion = self._motion_field.invalid(self.size, cell=self.cell)
            else:
                # A copy (~80 kB), read-only: PyAV's array is a view that keeps the whole decoded picture alive.
                blocks = side.to_ndarray().copy()
                blocks.flags.writeable = False
                motion = self._motion_field.from_vectors(blocks, size, cell=self.cell, rotation=self.rotation)
        # The stream's time base: frames drained from the decoder at the end carry no time base of their own.
        if frame.pts is not None:
            pts = float(frame.pts * self._time_base)
        else:
            pts = index / self.fps if self.fps else None
        if index == 0:
            self.start = pts or 0.0
        self.last_pts = pts
        if self._nal_length is not None:
            reference = self._reference_by_pts.pop(frame.pts, None)
        else:
            reference = pict_type != "B" if self.codec in _NO_REFERENCE_B else None
        self.frames += 1
        return Frame(index, image, pts, pict_type, motion, reference)

    def _set_orientation(self, frame: av.VideoFrame) -> None:
        side = frame.side_data.get("DISPLAYMATRIX")
        if side is None:
            return
        m = np.frombuffer(bytes(side), dtype=np.int32).astype(np.float64) / 65536.0
        # Counter-clockwise rotation of the display transform, as av_display_rotation_get (and PyAV's
        # VideoFrame.rotation) give it: [[0, -1], [1, 0]] -> 90.
        degrees = -np.degrees(np.arctan2(m[1], m[0]))
        rotation = int(round(degrees)) % 360
        if m[0] * m[4] - m[1] * m[3] < 0 or abs(degrees - round(degrees / 90) * 90) > 0.5:
            raise InputError(
                f"{self.name}: the display matrix {m[[0, 1, 3, 4]].round(3).tolist()} mirrors the picture or "
                f"rotates it by {degrees:.1f} degrees; vidseg handles rotations by multiples of 90 degrees "
                "only. Re-encode upright, e.g. `ffmpeg -i in.mp4 -c:a copy out.mp4` (ffmpeg auto-rotates)."
            )
        self.rotation = rotation
        if rotation in (90, 270):
            self.size = (self._coded_size[1], self._coded_size[0])


class VideoSource:
    """An open video file, a `vidseg.video.source.Source`: iterate it for `Frame`s; close it (or use ``with``)
    when done. Made by `open_video`.

    Properties, known once it is open: ``length`` (frame count when the container stores it, else None), ``fps``,
    ``duration`` (seconds or None), ``size`` (H, W) in display orientation, ``codec`` (decoder name),
    ``rotation`` (degrees counter-clockwise applied to the coded picture), ``motion_available`` (motion was asked
    for and the codec exports vectors: otherwise every ``Frame.motion`` is None), ``frames_decoded``.
    A source is iterated once. A file is not ``live``: every frame is read (a live run paces it at its frame rate).
    """

    live = False

    def __init__(self, path: str | os.PathLike, *, motion: bool = False, threads: int = 0, cell: int = 4) -> None:
        self.path = os.fspath(path)
        self.name = self.path
        self.motion = bool(motion)
        self.threads = int(threads)
        self.cell = int(cell)
        self._container = None
        self._decoder: StreamDecoder | None = None
        self._frames = self._decode()
        # Opening runs inside the decode generator (one place for FFmpeg errors); the first frame is peeked so
        # that a file with no decodable frame fails here and the display matrix is known.
        self._first: Frame | None = next(self._frames, None)

    def __getattr__(self, name: str):
        # codec, fps, size, rotation, motion_available, length, duration: the decoder's, once the file is open
        if name in _DECODER_FIELDS and self.__dict__.get("_decoder") is not None:
            return getattr(self._decoder, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def frames_decoded(self) -> int:
        return self._decoder.frames if self._decoder is not None else 0

    # ------------------------------------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        return next(self._frames)

    def close(self) -> None:
        self._first = None
        self._frames.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"VideoSource({self.path!r}, codec={self.codec}, size={self.size}, fps={self.fps}, "
                f"length={self.length}, motion={self.motion_available})")

    # ------------------------------------------------------------------------------------------- decoding
    def _decode(self) -> Iterator[Frame]:
        self._check_file()
        failure: av.FFmpegError | None = None
        try:
            try:
                container = self._container = av.open(self.path, "r")
                # No stream, or none whose codec parameters could be read: typically an MP4 cut in or before its
                # index.
                if all(s.codec_context is None for s in container.streams):
                    raise InputError(f"{self.path}: no readable stream: not a video, or a file truncated or corrupt "
                                     "in its header or index (e.g. an MP4 cut before the end of its moov atom); "
                                     "check that the file is complete")
                decoder = self._decoder = StreamDecoder(container, self.path, motion=self.motion,
                                                        threads=self.threads, cell=self.cell)
                for packet in container.demux(decoder.stream):  # the last packet is PyAV's flush packet
                    yield from decoder.decode(packet)
            except av.FFmpegError as err:
                failure = err
            if self._decoder is not None and failure is not None:
                yield from self._decoder.drain()
            self._check_complete(failure)
        finally:
            if self._container is not None:
                self._container.close()

    def _check_file(self) -> None:
        if not os.path.exists(self.path):
            raise InputError(f"{self.path}: no such file; check the path")
        if os.path.isdir(self.path):
            raise InputError(f"{self.path}: is a directory, not a video file")
        if os.path.getsize(self.path) == 0:
            raise InputError(f"{self.path}: empty file (0 bytes); it is not a video")

    def _check_complete(self, failure: av.FFmpegError | None) -> None:
        n = self.frames_decoded
        if failure is not None:
            raise _input_error(self, failure) from failure
        decoder = self._decoder
        skipped = decoder.skipped if decoder is not None else SkippedPackets()
        if skipped:
            where = f" (first at {skipped.first:.3f} s)" if skipped.first >= 0 else ""
            if n == 0:
                raise InputError(f"{self.path}: truncated or corrupt: no frame could be decoded; {len(skipped)} "
                                 f"packet(s) are cut off or damaged{where}; check that the file is complete")
            raise InputError(
                f"{self.path}: truncated or corrupt: {len(skipped)} packet(s) cut off or damaged{where} were "
                f"skipped; decoding went on and ended after {n} frames ({decoder.where()}); every decodable "
                "frame was returned. Re-encode or re-download the file for a clean copy"
            )
        if n == 0:
            raise InputError(f"{self.path}: the video stream holds no decodable frame: it has no frames, or the "
                             "file is truncated or corrupt; check that the file is complete")
        if self.length is not None and n < self.length:
            raise InputError(f"{self.path}: truncated: the container declares {self.length} frames but the stream "
                             f"ends after {n} ({decoder.where()}); frames up to there were returned")
        last = decoder.last_pts
        if self.length is None and self.duration and self.fps and last is not None:
            period = 1.0 / self.fps
            missing = self.duration - (last - decoder.start + period)
            if missing > 1.5 * period:
                raise InputError(
                    f"{self.path}: truncated: the stream declares {self.duration:.3f} s but ends after {n} frames "
                    f"({decoder.where()}), about {round(missing * self.fps)} frames short; frames up to there were "
                    "returned"
                )


def _input_error(source: VideoSource, err: av.FFmpegError) -> InputError:
    """The one translation of an FFmpeg error into an InputError: path, what had been decoded, FFmpeg's words."""
    message = err.strerror or str(err)
    log = getattr(err, "log", None)
    if log and log[1]:
        message = f"{message} (FFmpeg log: {log[1][2].strip()})"
    n = source.frames_decoded
    container = source._container
    if container is None:
        return InputError(f"{source.path}: cannot decode it as a video: FFmpeg finds no container it can read in "
                          f"it ({message}); it is another kind of file, or truncated or corrupt")
    if n == 0:
        found = ", ".join(f"{s.type} {s.codec_context.name if s.codec_context else '?'}" for s in container.streams)
        return InputError(f"{source.path}: a {container.format.name} container ({found or 'no streams'}) whose "
                          f"video does not decode: {message}; the file is truncated or corrupt")
    return InputError(f"{source.path}: decoding stopped after {n} frames ({source._decoder.where()}): {message}; "
                      "the file is truncated or corrupt; frames up to there were returned")


def _packet_time(packet) -> float:
    return float(packet.pts * packet.time_base) if packet.pts is not None and packet.time_base else -1.0


def _is_cover(stream) -> bool:
    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except AttributeError:  # PyAV without Stream.disposition
        return False


def _h264_reference(data: memoryview, length_size: int) -> bool | None:
    """nal_ref_idc != 0 of the first slice NAL unit of an H.264 access unit: length-prefixed NAL units (avcC,
    as in MP4 / Matroska) when length_size > 0, else Annex B start codes. None when no slice is found."""
    if length_size:
        i, n = 0, len(data)
        while i + length_size < n:
            size = int.from_bytes(data[i:i + length_size], "big")
            header = data[i + length_size]
            if header & 0x1F in (1, 5):  # coded slice (non-IDR, IDR)
                return bool(header & 0x60)
            i += length_size + size
        return None
    head = bytes(data[:4096])
    i = head.find(b"\x00\x00\x01")
    while 0 <= i < len(head) - 3:
        header = head[i + 3]
        if header & 0x1F in (1, 5):
            return bool(header & 0x60)
        i = head.find(b"\x00\x00\x01", i + 3)
    return None


def _stream_duration(container, stream) -> float | None:
    """Declared duration of the video stream in seconds: the stream's own, or Matroska's DURATION tag, or the
    container's when it holds this stream alone."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION")
    if tag:
        try:
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            pass
    if container.duration is not None and len(container.streams) == 1:
        return container.duration / 1e6
    return None


def open_video(path: str | os.PathLike, *, motion: bool = False, threads: int = 0, cell: int = 4) -> VideoSource:
    """Open a video file for decoding.

    motion: export the codec's motion vectors (``flags2=+export_mvs``) into ``Frame.motion`` as `MotionField`s
        on a grid of ``cell``-pixel cells (made when first read). threads: decoder threads (0 = as many as FFmpeg
        likes).
    Raises `InputError` when the file cannot be read as a video.
    """
    return VideoSource(path, motion=motion, threads=threads, cell=cell)


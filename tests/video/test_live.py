"""Live sources against real streams on 127.0.0.1: TCP, UDP and pushed RTSP (PyAV alone), HTTP (progressive MP4,
HLS), GStreamer's RTSP server where installed; reconnects, time-outs, refusals, 401, no video, missing cameras.
Every stream is started and stopped by its test, and every wait is bounded (SourceOptions.timeout)."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import av
import numpy as np
import pytest

from vidseg.errors import InputError
from vidseg.video.live import StreamSource
from vidseg.video.source import SourceOptions, open_source, source_kind

from .conftest import encode, translation_frames
from .loopback import Sender, free_port, http_server, mpegts_of, rtsp_server, stdin_fed_with, tcp_sender

SECRET = "Pa55-w0rd-xyzzy"
TOKEN = "tok-8c1d4e9f"

FAST = SourceOptions(timeout=5.0, reconnect=4, reconnect_delay=0.2, reconnect_max_delay=1.0)


@pytest.fixture(scope="module")
def stream_clip(tmp_path_factory) -> Path:
    """2 s of 64x96 H.264 at 25 fps, an I-frame every 25 frames, content moving (+2, +1) px per frame."""
    images = translation_frames((64, 96), 50, (2, 1))
    return encode(tmp_path_factory.mktemp("live") / "cam.mp4", images, gop=25)


def take(source, n: int, on_frame=None) -> list:
    frames = []
    for frame in source:
        frames.append(frame)
        if on_frame is not None:
            on_frame(frame)
        if len(frames) == n:
            break
    return frames


def check_codec_motion(frames) -> None:
    predicted = [f for f in frames if f.pict_type == "P"]
    assert predicted and all(f.motion is not None for f in predicted)
    assert all(f.motion is None for f in frames if f.pict_type == "I")
    moving = np.concatenate([f.motion.to_dense(f.size, mode="area")[0].reshape(2, -1) for f in predicted[:5]], 1)
    assert np.median(moving[0]) == pytest.approx(-2, abs=0.5)  # backward map: -velocity


def test_a_tcp_stream_gives_frames_with_codec_motion_and_arrival_times(stream_clip):
    with tcp_sender(stream_clip) as (url, _), open_source(url, motion=True, options=FAST) as source:
        assert source_kind(url) == "network" and isinstance(source, StreamSource)
        assert source.live and source.motion_available and source.size == (64, 96)
        frames = take(source, 30)
    assert [f.index for f in frames] == list(range(30))
    check_codec_motion(frames)
    arrived = [f.arrived for f in frames]
    assert all(a is not None for a in arrived) and arrived == sorted(arrived)
    pts = [f.pts for f in frames]
    assert np.diff(pts) == pytest.approx(np.full(29, 0.04), abs=1e-3)
    assert {f.segment for f in frames} == {0}


def test_a_udp_stream_is_read_from_the_port_vidseg_binds(stream_clip):
    port = free_port(socket.SOCK_DGRAM)
    with Sender(stream_clip, f"udp://127.0.0.1:{port}?pkt_size=1316", "mpegts"):
        with open_source(f"udp://127.0.0.1:{port}", motion=True, options=FAST) as source:
            frames = take(source, 20)  # joins mid-stream: from the next I-frame (SPS/PPS repeat there)
    assert len(frames) == 20
    check_codec_motion(frames)


def test_a_pushed_rtsp_stream_is_received_with_codec_motion_by_pyav_alone(stream_clip):
    """PyAV listens (rtsp_flags=listen), a PyAV rtsp muxer pushes: no RTSP server needed."""
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/cam"
    options = SourceOptions(timeout=15.0, reconnect=0, ffmpeg_options={"rtsp_flags": "listen"})
    with Sender(stream_clip, url, "rtsp", options={"rtsp_transport": "tcp"}, connect_retry=15):
        with open_source(url, motion=True, options=options) as source:
            frames = take(source, 30)
    check_codec_motion(frames)


def test_a_lost_stream_reconnects_with_a_new_segment_and_keeps_counting(stream_clip):
    senders = []

    def kill_and_restart(frame):
        if frame.index == 15:
            senders[0].kill()
            senders.append(Sender(stream_clip, senders[0].url, "mpegts"))

    with tcp_sender(stream_clip) as (url, first):
        first.url = f"{url}?listen=1"
        senders.append(first)
        try:
            with open_source(url, motion=True, options=FAST) as source:
                frames = take(source, 45, kill_and_restart)
                reconnects = source.reconnects
        finally:
            for sender in senders[1:]:
                sender.kill()
    assert reconnects == 1
    assert [f.index for f in frames] == list(range(45))  # indices go on
    segments = [f.segment for f in frames]
    assert segments == sorted(segments) and set(segments) == {0, 1}
    assert frames[segments.index(1)].pict_type == "I"  # the new connection starts at an I-frame
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:], strict=False))  # pts too: the outage is a gap


def test_when_every_reconnect_fails_one_line_says_so_after_the_frames_before(stream_clip):
    options = SourceOptions(timeout=3.0, reconnect=2, reconnect_delay=0.1, reconnect_max_delay=0.2)
    frames = []
    with tcp_sender(stream_clip) as (url, sender), open_source(url, options=options) as source:
        with pytest.raises(InputError) as caught:
            take(source, 1000, lambda f: frames.append(f) or (f.index == 10 and sender.kill()))
    message = str(caught.value)
    assert len(frames) >= 11 and "\n" not in message
    assert f"lost after {len(frames)} frames" in message and "not back after 2 reconnect attempts" in message
    assert "connection refused" in message


def test_reconnect_zero_gives_up_at_the_first_loss(stream_clip):
    options = SourceOptions(timeout=3.0, reconnect=0)
    with tcp_sender(stream_clip) as (url, sender), open_source(url, options=options) as source:
        with pytest.raises(InputError, match="reconnecting is off"):
            take(source, 1000, lambda f: f.index == 5 and sender.kill())


def test_nothing_listening_is_a_one_line_connection_refused():
    start = time.monotonic()
    with pytest.raises(InputError, match="cannot open the stream: connection refused") as caught:
        open_source(f"tcp://127.0.0.1:{free_port()}", options=FAST)
    assert "\n" not in str(caught.value) and time.monotonic() - start < 5


def test_a_silent_source_times_out():
    start = time.monotonic()
    with pytest.raises(InputError, match=r"no data within 1 s \(time-out\)"):
        open_source(f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}", options=SourceOptions(timeout=1.0))
    assert time.monotonic() - start < 5


def test_a_401_says_authentication_failed_and_never_the_secret(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with http_server(tmp_path, unauthorized=True) as base:
        url = base.replace("http://", f"http://alice:{SECRET}@") + f"/live.ts?token={TOKEN}"
        with pytest.raises(InputError) as caught:
            open_source(url, options=FAST)
    message = str(caught.value)
    assert "authentication failed" in message and "alice" not in message
    for text in (message, repr(caught.value), caplog.text):
        assert SECRET not in text and TOKEN not in text


def test_a_stream_without_video_is_refused_in_one_line(tmp_path):
    audio = tmp_path / "radio.ts"
    with av.open(str(audio), "w") as out:
        stream = out.add_stream("mp2", rate=48000)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48000, i * 1152
            for packet in stream.encode(frame):
                out.mux(packet)
    with http_server(tmp_path) as base, pytest.raises(InputError, match=r"no video stream \(streams found: audio"):
        open_source(f"{base}/radio.ts", options=FAST)


def test_a_served_file_and_an_hls_playlist_end_cleanly_without_reconnecting(stream_clip, tmp_path):
    hls = tmp_path / "hls"
    hls.mkdir()
    with av.open(str(stream_clip)) as clip, av.open(str(hls / "live.m3u8"), "w", format="hls",
                                                     options={"hls_time": "1", "hls_list_size": "0"}) as out:
        stream = out.add_stream_from_template(clip.streams.video[0])
        for packet in clip.demux(clip.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    (tmp_path / "cam.mp4").write_bytes(stream_clip.read_bytes())
    with http_server(tmp_path) as base:
        for url in (f"{base}/cam.mp4", f"{base}/hls/live.m3u8"):
            with open_source(url, motion=True, options=FAST) as source:
                frames = list(source)
                assert len(frames) == 50 and source.reconnects == 0, url
                check_codec_motion(frames)


def test_rtsp_from_a_server_with_credentials(stream_clip, caplog):
    """The usual camera: vidseg pulls from an RTSP server that demands a password (GStreamer's, where installed)."""
    caplog.set_level(logging.DEBUG)
    with rtsp_server(stream_clip, user="alice", password=SECRET) as url:
        good = url.replace("rtsp://", f"rtsp://alice:{SECRET}@") + f"?token={TOKEN}"
        with pytest.raises(InputError, match="authentication failed") as caught:
            open_source(good.replace(SECRET, "wrong-" + SECRET[::-1]), options=FAST)
        assert SECRET[::-1] not in str(caught.value)
        with open_source(good, motion=True, options=FAST) as source:
            assert SECRET not in source.name and TOKEN not in source.name and SECRET not in repr(source)
            frames = take(source, 30)
    check_codec_motion(frames)
    assert SECRET not in caplog.text and TOKEN not in caplog.text


@pytest.mark.parametrize("device", ["/dev/video99", 99, "99"])
def test_a_camera_that_is_not_there_is_a_clean_error(device):
    with pytest.raises(InputError, match=r"/dev/video99: no such camera device"):
        open_source(device)


def test_a_protocol_the_ffmpeg_build_lacks_is_named():
    try:
        open_source(f"srt://127.0.0.1:{free_port(socket.SOCK_DGRAM)}", options=SourceOptions(timeout=1.0))
    except InputError as err:
        assert "srt://" in str(err) and "\n" not in str(err)
        if "not compiled in" not in str(err):  # a build with libsrt: nothing answers there
            assert "time-out" in str(err) or "refused" in str(err) or "cannot open" in str(err)
    else:
        pytest.fail("an srt:// URL with nothing behind it opened")


def test_a_stream_on_stdin_is_read_to_its_end_and_is_not_live(stream_clip):
    """`-` reads a container from file descriptor 0; a live run paces it like a file, so its frames carry no
    arrival time (latency then runs from the paced release)."""
    with stdin_fed_with(mpegts_of(stream_clip)), open_source("-", motion=True) as source:
        assert source_kind("-") == "stdin" and source.name == "stdin" and not source.live
        frames = list(source)
    assert len(frames) == 50 and all(f.arrived is None for f in frames)
    check_codec_motion(frames)


@pytest.mark.parametrize("url, words", [
    (f"rtsp://alice:{SECRET}@camera.invalid/live", "the host name 'camera.invalid' cannot be resolved"),
    (f"http://camera.invalid/live.m3u8?token={TOKEN}", "the host name 'camera.invalid' cannot be resolved"),
    (f"rtsp://alice:{SECRET}@[bad/live", "the URL is malformed"),
])
def test_a_host_that_does_not_resolve_and_a_malformed_url_say_so(url, words):
    """FFmpeg reports both as a bare 'Input/output error' (.invalid never resolves: RFC 6761)."""
    with pytest.raises(InputError) as caught:
        open_source(url, options=SourceOptions(timeout=2.0, reconnect=0))
    message = str(caught.value)
    assert words in message and "\n" not in message and SECRET not in message and TOKEN not in message


def test_rtsp_over_udp_on_request(stream_clip):
    """--rtsp-transport udp: RTP over UDP from the server (TCP is the default); codec motion still arrives."""
    with rtsp_server(stream_clip) as url:
        options = SourceOptions(timeout=5.0, reconnect=0, rtsp_transport="udp")
        with open_source(url, motion=True, options=options) as source:
            frames = take(source, 30)
            udp_ports = _udp_ports_bound()
    check_codec_motion(frames)
    assert udp_ports, "no UDP socket was bound while the RTSP stream was read"


def _udp_ports_bound() -> set[int]:
    """Local ports of this process's UDP sockets on 127.0.0.1 (the RTP/RTCP pair of an RTSP-over-UDP session)."""
    import os

    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            ports.add(int(fields[1].split(":")[1], 16))
    return ports


@pytest.mark.parametrize("scheme", ["rtsp", "tcp"])
def test_a_server_that_accepts_and_never_answers_is_a_time_out(scheme):
    with socket.socket() as silent:  # the kernel accepts connections into the backlog; nothing is ever sent
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"{scheme}://127.0.0.1:{silent.getsockname()[1]}/cam"
        with pytest.raises(InputError, match=r"cannot open the stream: no (answer|data) within 1.5 s \(time-out\)"):
            open_source(url, options=SourceOptions(timeout=1.5, reconnect=0))

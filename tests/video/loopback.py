"""Real streams on 127.0.0.1 for the live-source tests: free ports, a real-time sender process (PyAV), an HTTP
file server (thread), and GStreamer's RTSP server where the system has it (subprocess of a Python with gi).

Every process and server is started and stopped by the test that uses it (context managers), and every wait is
bounded.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SENDER = HERE / "stream_sender.py"
GST_SERVER = HERE / "gst_rtsp_server.py"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that nothing uses right now (TCP, or UDP with kind=SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sender:
    """`stream_sender.py` in a subprocess: the clip's packets to `url` in real time. kill() stops it mid-stream."""

    def __init__(self, clip: Path, url: str, fmt: str, *, loop: bool = True, options: dict | None = None,
                 connect_retry: float = 0.0) -> None:
        args = [sys.executable, str(SENDER), str(clip), url, "--format", fmt, "--timeout", "20"]
        args += ["--loop"] if loop else []
        args += ["--connect-retry", str(connect_retry)] if connect_retry else []
        for k, v in (options or {}).items():
            args += ["--option", f"{k}={v}"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()
        if self.process.stderr is not None:
            self.process.stderr.close()


def wait_for_listener(port: int, timeout: float = 30.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port... without connecting to it: a sender that
    listens serves its first client only, so poll the socket table instead."""
    deadline = time.monotonic() + timeout
    needle = f":{port:04X} "
    while time.monotonic() < deadline:
        try:
            table = Path("/proc/net/tcp").read_text()
        except OSError:  # no /proc: give the sender a moment
            time.sleep(1.0)
            return
        if any(needle in line and line.split()[3] == "0A" for line in table.splitlines()[1:]):  # 0A: LISTEN
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextlib.contextmanager
def tcp_sender(clip: Path, *, loop: bool = True) -> Iterator[tuple[str, Sender]]:
    """A sender listening on a free TCP port (MPEG-TS); yields (the URL vidseg reads, the sender)."""
    port = free_port()
    with Sender(clip, f"tcp://127.0.0.1:{port}?listen=1", "mpegts", loop=loop) as sender:
        wait_for_listener(port)
        yield f"tcp://127.0.0.1:{port}", sender


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _Unauthorized(_QuietHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="camera"')
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def http_server(directory: Path, *, unauthorized: bool = False) -> Iterator[str]:
    """Serve a folder over HTTP on a free port (in a thread); yields the base URL. unauthorized: answer every
    request with 401."""
    handler = _Unauthorized if unauthorized else functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@functools.cache
def gst_python() -> str | None:
    """A Python that can import GStreamer's RTSP server bindings (gi), or None."""
    candidates = [sys.executable, shutil.which("python3"), "/usr/bin/python3"]
    for python in dict.fromkeys(c for c in candidates if c and os.path.exists(c)):
        probe = subprocess.run(
            [python, "-c", "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', "
             "'1.0'); from gi.repository import Gst, GstRtspServer; Gst.init(None); "
             "assert all(Gst.ElementFactory.find(e) for e in ('qtdemux', 'h264parse', 'rtph264pay'))"],
            capture_output=True, timeout=30)
        if probe.returncode == 0:
            return python
    return None


def need_gst_rtsp_server() -> str:
    python = gst_python()
    if python is None:
        pytest.skip("GStreamer's RTSP server is not installed (Debian: gir1.2-gst-rtsp-server-1.0 python3-gi "
                    "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)")
    return python


@contextlib.contextmanager
def rtsp_server(clip: Path, *, user: str | None = None, password: str | None = None) -> Iterator[str]:
    """GStreamer's RTSP server serving an MP4's H.264 (not re-encoded) at rtsp://127.0.0.1:PORT/cam; with user
    and password it demands them (basic authentication). Skips the test where the server is not installed."""
    python = need_gst_rtsp_server()
    port = free_port()
    args = [python, str(GST_SERVER), str(clip), str(port)] + ([user, password] if user else [])
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = process.stdout.readline() if process.stdout else ""
        if "ready" not in ready:
            raise RuntimeError(f"the RTSP server did not start: {process.stderr.read() if process.stderr else ''}")
        wait_for_listener(port)
        yield f"rtsp://127.0.0.1:{port}/cam"
    finally:
        process.kill()
        process.wait(timeout=10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


@contextlib.contextmanager
def stdin_fed_with(data: bytes) -> Iterator[None]:
    """Standard input (file descriptor 0, which FFmpeg's pipe:0 reads) as a pipe that a thread fills with `data`,
    as `some-camera-tool | vidseg-run -` would; fd 0 is restored afterwards."""
    read, write = os.pipe()
    saved = os.dup(0)
    os.dup2(read, 0)
    os.close(read)

    def feed() -> None:
        with os.fdopen(write, "wb") as pipe:
            pipe.write(data)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        feeder.join(timeout=10)


def mpegts_of(clip: Path) -> bytes:
    """The clip's video packets remuxed into MPEG-TS (no re-encoding), as bytes."""
    import io

    import av

    buffer = io.BytesIO()
    with av.open(str(clip)) as source, av.open(buffer, "w", format="mpegts") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return buffer.getvalue()

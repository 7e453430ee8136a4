"""The overlay sent as a live stream (OverlayVideoSink with a URL): received over UDP and pushed RTSP on
127.0.0.1, by vidseg's own stream source; errors without secrets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vidseg.errors import InputError
from vidseg.video.sinks import OverlayVideoSink, get_palette
from vidseg.video.source import SourceOptions, open_source

from .loopback import free_port, wait_for_listener

SECRET = "Pa55-w0rd-xyzzy"
REPO = Path(__file__).resolve().parents[2]


class Receiver(threading.Thread):
    """Reads a stream in a thread until it stays silent for `timeout` seconds; keeps the frames."""

    def __init__(self, url: str, options: SourceOptions) -> None:
        super().__init__(daemon=True)
        self.url, self.options, self.frames, self.error = url, options, [], None
        self.start()

    def run(self) -> None:
        try:
            with open_source(self.url, options=self.options) as source:
                for frame in source:
                    self.frames.append(frame)
        except InputError as err:  # the sender finished: the stream stays silent, then counts as lost
            self.error = err


def send(sink: OverlayVideoSink, n: int = 30) -> None:
    labels = np.zeros((64, 96), np.uint8)
    labels[32:] = 13  # car: (0, 0, 142)
    image = np.full((64, 96, 3), 200, np.uint8)
    with sink:
        for i in range(n):
            sink.write(i, image, labels, pts=i / 25)
            time.sleep(0.02)


def check(frames) -> None:
    assert len(frames) >= 15
    middle = frames[len(frames) // 2].image.astype(int)
    car = (np.array([200, 200, 200]) + get_palette("cityscapes")[13]) / 2
    assert np.abs(middle[48, 48] - car).max() < 20 and np.abs(middle[16, 48] - (200 + 128) / 2).max() < 80


def test_the_overlay_goes_out_as_mpeg_ts_over_udp():
    port = free_port(socket.SOCK_DGRAM)
    receiver = Receiver(f"udp://127.0.0.1:{port}", SourceOptions(timeout=3.0, reconnect=0))
    time.sleep(0.3)  # the receiver binds the port
    send(OverlayVideoSink(f"udp://127.0.0.1:{port}?pkt_size=1316", fps=25))
    receiver.join(timeout=15)
    check(receiver.frames)


def test_the_overlay_is_pushed_over_rtsp(tmp_path):
    """The receiver listens in another process: PyAV holds the GIL while an RTSP handshake blocks, so sender
    and listener cannot share one."""
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/overlay"
    program = (
        "import sys, numpy as np; from vidseg.video.source import SourceOptions, open_source; from vidseg.errors "
        "import InputError\nframes = []\ntry:\n    with open_source(sys.argv[1], options=SourceOptions("
        "timeout=10, reconnect=0, ffmpeg_options={'rtsp_flags': 'listen'})) as s:\n        for f in s:\n"
        "            frames.append(f)\nexcept InputError:\n    pass\n"
        "np.save(sys.argv[2], np.stack([f.image for f in frames]))\n"
    )
    saved = tmp_path / "frames.npy"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    receiver = subprocess.Popen([sys.executable, "-c", program, url, str(saved)], env=env)
    try:
        wait_for_listener(port)
        send(OverlayVideoSink(url, fps=25))
        receiver.wait(timeout=30)
    finally:
        receiver.kill()
        receiver.wait()
    check([SimpleNamespace(image=image) for image in np.load(saved)])


def test_a_stream_that_cannot_be_sent_says_so_without_its_secrets():
    sink = OverlayVideoSink(f"rtsp://alice:{SECRET}@127.0.0.1:{free_port()}/overlay?token=tok-123456")
    with pytest.raises(InputError, match="sending the video failed: Connection refused") as caught:
        sink.write(0, np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8))
    assert SECRET not in str(caught.value) and "tok-123456" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is not None  # noqa: PT017
    with pytest.raises(InputError, match="cannot send a video over http://"):
        OverlayVideoSink("http://127.0.0.1/x")

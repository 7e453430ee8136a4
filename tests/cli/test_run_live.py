"""vidseg-run on live inputs over 127.0.0.1: RTSP (pulled from a server where GStreamer's is installed, pushed to
vidseg with PyAV alone), a stream with credentials whose secrets must appear nowhere, stdin, image folders and a
camera that is not there. The tiny model of the engine tests stands in for a registered one."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine_tiny import encode_clip, make_frames  # noqa: E402
from video.loopback import Sender, free_port, http_server, mpegts_of, rtsp_server, stdin_fed_with  # noqa: E402

from vidseg.cli import run as cli  # noqa: E402

SECRET = "Pa55-w0rd-xyzzy"
TOKEN = "tok-8c1d4e9f"


@pytest.fixture(scope="module")
def cam_clip(tmp_path_factory) -> Path:
    """2 s of 64x96 H.264 at 25 fps, an I-frame every 25 frames."""
    return encode_clip(tmp_path_factory.mktemp("live") / "cam.mp4", make_frames(50), gop=25)


ARGS = ["--model", "tiny", "--method", "arseg", "--device", "cpu", "--no-progress", "--timeout", "10"]


def check_outputs(out: Path, stem: str, frames: int) -> None:
    with av.open(str(out / f"{stem}_overlay.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == frames
    assert len(list((out / f"{stem}_labels").glob("*_trainIds.png"))) == frames


def summary_rows(printed: str) -> dict[str, str]:
    rows = {}
    for line in printed.splitlines():
        cells = [c.strip() for c in line.strip(" │┃|").split("│") if c.strip()]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    return rows


def test_rtsp_from_a_server_runs_live_with_codec_motion_driving_arseg(cam_clip, tiny, tmp_path, capsys):
    """The issue's acceptance: vidseg-run rtsp://127.0.0.1:PORT/cam --live --save overlay,labels."""
    out = tmp_path / "out"
    with rtsp_server(cam_clip) as url:
        code = cli.main([url, "--live", "--save", "overlay,labels", "--out", str(out), *ARGS])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = summary_rows(captured.out)
    frames, keyframes = int(rows["frames"].split()[0]), int(rows["frames"].split("(")[1].split()[0])
    assert frames >= 8 and frames + int(rows["dropped"]) >= 45  # (nearly) every frame arrived; a busy engine drops
    assert rows["motion"] == f"codec {frames - keyframes} non-keyframes"  # the camera's own motion vectors
    assert "p50" in rows["latency all"] and "reconnects" not in rows
    check_outputs(out, "cam", frames)


def test_a_pushed_rtsp_stream_runs_with_pyav_alone(cam_clip, tiny, tmp_path, capsys):
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/cam"
    out = tmp_path / "out"
    with Sender(cam_clip, url, "rtsp", options={"rtsp_transport": "tcp"}, connect_retry=20):
        code = cli.main([url, "--live", "--input-option", "rtsp_flags=listen", "--max-frames", "30", "--save",
                         "overlay,labels", "--out", str(out), *ARGS[:-1], "20"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = summary_rows(captured.out)
    frames = int(rows["frames"].split()[0])
    assert 0 < frames <= 30 and "codec" in rows["motion"]
    check_outputs(out, "cam", frames)


def test_credentials_appear_nowhere(cam_clip, tiny, tmp_path, capsys, caplog):
    """A URL with a password and a token: not in stdout, stderr, the summary, logs, errors, output names or the
    overlay's metadata."""
    caplog.set_level(logging.DEBUG)
    served = tmp_path / "served"
    served.mkdir()
    (served / "cam.mp4").write_bytes(cam_clip.read_bytes())
    out = tmp_path / "out"
    with http_server(served) as base:
        url = base.replace("http://", f"http://alice:{SECRET}@") + f"/cam.mp4?token={TOKEN}"
        assert cli.main([url, "--save", "overlay,labels,npz", "--out", str(out), "--json", str(out / "run.json"),
                         *ARGS]) == 0
    with http_server(served, unauthorized=True) as base:
        url = base.replace("http://", f"http://alice:{SECRET}@") + f"/cam.mp4?token={TOKEN}"
        assert cli.main([url, *ARGS]) == 2
    captured = capsys.readouterr()
    assert "authentication failed" in captured.err
    texts = [captured.out, captured.err, caplog.text]
    texts += [str(p) for p in out.rglob("*")] + [(out / "run.json").read_text()]
    with av.open(str(out / "cam_overlay.mp4")) as video:
        texts += [str(video.metadata), str(video.streams.video[0].metadata)]
    for text in texts:
        assert SECRET not in text and TOKEN not in text and "alice" not in text
    assert "http://***@127.0.0.1" in captured.out  # the summary names the stream, redacted


def test_a_stream_on_stdin(cam_clip, tiny, tmp_path, capsys):
    """some-camera-tool | vidseg-run - --live: MPEG-TS written into a pipe on standard input."""
    with stdin_fed_with(mpegts_of(cam_clip)):
        code = cli.main(["-", "--live", "--save", "labels", "--out", str(tmp_path / "out"), *ARGS])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = summary_rows(captured.out)
    frames = int(rows["frames"].split()[0])
    assert frames + int(rows["dropped"]) == 50 and "codec" in rows["motion"]
    assert len(list((tmp_path / "out" / "stdin_labels").glob("*.png"))) == frames


def test_an_image_folder_at_a_given_frame_rate(tiny, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, image in enumerate(make_frames(6)):
        Image.fromarray(image).save(folder / f"img{i}.png")  # img10 would sort after img9
    out = tmp_path / "out"
    assert cli.main([str(folder), "--fps", "10", "--save", "labels,npz", "--out", str(out), *ARGS]) == 0
    captured = capsys.readouterr()
    labels = np.load(out / "frames_labels.npz")
    assert list(labels["index"]) == list(range(6)) and labels["pts"][1] == pytest.approx(0.1)
    assert captured.err.count("note: arseg motion: no motion came with the frames") == 1


@pytest.mark.parametrize("source", ["/dev/video99", "99"])
def test_a_missing_camera_is_one_error_line(tiny, source, capsys):
    assert cli.main([source, *ARGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: /dev/video99: no such camera device")


def test_the_overlay_can_go_to_a_stream(cam_clip, tiny, tmp_path, capsys, monkeypatch):
    import socket
    import threading

    from vidseg.errors import InputError
    from vidseg.video.source import SourceOptions, open_source

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VIDSEG_OUT")
    port = free_port(socket.SOCK_DGRAM)
    received = []

    def receive():
        try:
            with open_source(f"udp://127.0.0.1:{port}", options=SourceOptions(timeout=3, reconnect=0)) as source:
                received.extend(source)
        except InputError:  # silent once vidseg-run is done
            pass

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    assert cli.main([str(cam_clip), "--live", "--save", "overlay", "--out", f"udp://127.0.0.1:{port}", *ARGS]) == 0
    receiver.join(timeout=15)
    frames = int(summary_rows(capsys.readouterr().out)["frames"].split()[0])
    assert len(received) >= frames // 2 and received[0].size == (64, 96)
    assert not (tmp_path / "vidseg-out").exists()  # nothing written to a folder

    assert cli.main([str(cam_clip), "--save", "overlay,labels", "--out", f"udp://127.0.0.1:{port}", *ARGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "streams the overlay video only" in err[0]

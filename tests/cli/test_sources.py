"""The command line's source options and output names."""

from __future__ import annotations

import argparse

import pytest

from vidseg.cli.sources import add_source_arguments, check_input, output_stem, source_options
from vidseg.errors import ConfigError, InputError
from vidseg.video.source import SourceOptions


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_source_arguments(p)
    return p.parse_args(argv)


def test_the_options_become_source_options():
    options = source_options(parse("--timeout", "3", "--reconnect", "-1", "--rtsp-transport", "udp", "--fps", "17",
                                   "--video-size", "1280x720", "--input-format", "mjpeg", "--format", "mpegts",
                                   "--input-option", "rtsp_flags=listen", "--input-option", "buffer_size=1000000"))
    assert options == SourceOptions(timeout=3, reconnect=-1, rtsp_transport="udp", fps=17, video_size="1280x720",
                                    input_format="mjpeg", format="mpegts",
                                    ffmpeg_options={"rtsp_flags": "listen", "buffer_size": "1000000"})
    assert source_options(parse()) == SourceOptions()


@pytest.mark.parametrize("argv", [["--input-option", "novalue"], ["--timeout", "0"], ["--video-size", "720p"],
                                  ["--reconnect", "-2"], ["--reconnect-delay", "5", "--reconnect-max-delay", "1"]])
def test_bad_options_are_one_line_config_errors(argv):
    with pytest.raises(ConfigError):
        source_options(parse(*argv))


@pytest.mark.parametrize(("source", "stem"), [
    ("rtsp://alice:pw@cam.local:554/Streaming/Channels/101?token=abc", "101"),
    ("rtsp://alice:pw@cam.local:554/?token=abc", "cam.local"),
    ("https://cdn/live/index.m3u8?sig=x", "index"),
    ("udp://127.0.0.1:5000", "127.0.0.1"),
    ("/dev/video0", "video0"),
    ("-", "stdin"),
    ("clips/street.mp4", "street"),
])
def test_output_stems_never_hold_a_secret(source, stem):
    assert output_stem(source) == stem


def test_check_input_passes_streams_and_devices_and_fails_missing_files_early(tmp_path):
    for text in ("rtsp://h/x", "/dev/video7", "-", "3"):
        check_input(text)
    with pytest.raises(InputError, match="no such file"):
        check_input(str(tmp_path / "missing.mp4"))
    with pytest.raises(InputError, match="no images"):
        check_input(str(tmp_path))

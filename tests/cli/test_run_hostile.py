"""vidseg-run on hostile paths and options: one `error:` line, a non-zero exit code, no traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from engine_tiny import TinyModel, encode_clip, make_frames  # noqa: E402

from vidseg.cli import run as cli  # noqa: E402


@pytest.fixture
def clip(tmp_path) -> Path:
    return encode_clip(tmp_path / "street.mp4", make_frames(4), gop=4)


@pytest.fixture
def tiny(monkeypatch):
    import vidseg.engine.engine as engine_module

    model = TinyModel()
    monkeypatch.setattr(engine_module, "load_model", lambda config: model)
    return model


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    return err[0]


def test_a_directory_is_not_called_missing(tmp_path, capsys):
    folder = tmp_path / "clips.mp4"
    folder.mkdir()
    assert cli.main([str(folder), "--device", "cpu", "--no-progress"]) == 2
    line = _one_error_line(capsys)
    assert "is a directory" in line and "no such file" not in line


@pytest.mark.parametrize("n", ["0", "-3"])
def test_max_frames_below_one_is_refused(clip, tiny, tmp_path, capsys, n):
    code = cli.main([str(clip), "--model", "tiny", "--device", "cpu", "--max-frames", n, "--no-progress"])
    assert code == 2
    assert "--max-frames must be >= 1" in _one_error_line(capsys)


def test_out_that_is_a_file_is_refused_before_any_work(clip, tiny, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("someone's file")
    code = cli.main([str(clip), "--model", "tiny", "--device", "cpu", "--save", "labels", "--out", str(out),
                     "--no-progress"])
    assert code == 2
    assert "not a directory" in _one_error_line(capsys)
    assert out.read_text() == "someone's file"


def test_save_naming_nothing_is_refused(clip, tiny, capsys):
    code = cli.main([str(clip), "--model", "tiny", "--device", "cpu", "--save", ",", "--no-progress"])
    assert code == 2
    assert "names no output" in _one_error_line(capsys)

"""vidseg-eval end to end: one-line errors and exit codes, and a small run with a registered model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidseg.cli import eval as cli


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_missing_data_path_is_a_one_line_error(tmp_path, capsys):
    code = cli.main(["--data", str(tmp_path / "nowhere"), "--dataset", "cityscapes", "--model", "swiftnet18"])
    assert code == 2
    assert "nowhere: no such file or directory" in one_line_error(capsys)


def test_wrong_layout_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "gtFine").mkdir()
    code = cli.main(["--data", str(tmp_path), "--dataset", "cityscapes", "--model", "swiftnet18", "--device", "cpu"])
    assert code == 2
    err = one_line_error(capsys)
    assert "not in the expected layout" in err and "leftImg8bit_sequence" in err


def test_unknown_model_and_bad_options(tmp_path, capsys):
    assert cli.main(["--data", str(tmp_path), "--dataset", "synthetic", "--model", "nosuchnet"]) == 2
    assert "unknown model 'nosuchnet'" in one_line_error(capsys)
    assert cli.main(["--data", str(tmp_path), "--dataset", "camvid", "--keyframe-interval", "4",
                     "--max-distance", "4"]) == 2
    assert "--max-distance 4" in one_line_error(capsys)


def test_a_json_path_under_a_file_fails_before_evaluating(tmp_path, monkeypatch, capsys):
    import vidseg.eval.evaluate as evaluate_module

    def never(*args, **kwargs):
        raise AssertionError("evaluated although --json cannot be written")

    monkeypatch.setattr(evaluate_module, "evaluate", never)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = cli.main(["--data", str(tmp_path), "--dataset", "synthetic", "--model", "swiftnet18", "--random-weights",
                     "--device", "cpu", "--json", str(blocker / "eval.json"), "--no-progress"])
    assert code == 2
    assert "--json" in one_line_error(capsys)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    from vidseg.synthetic import SceneConfig, write_clip

    root = tmp_path_factory.mktemp("synthetic")
    write_clip(root / "street.mp4", SceneConfig(height=64, width=128, seed=4), 4, gop=2)
    return root


def test_synthetic_run_with_a_registered_model_prints_and_writes_json(clip_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = cli.main(["--data", str(clip_dir), "--dataset", "synthetic", "--model", "swiftnet18", "--random-weights",
                     "--device", "cpu", "--tc", "--json", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    for word in ("mIoU d=0", "mIoU d=1", "mIoU mean over d", "mIoU avg", "mIoU min", "TC (occlusion-masked)",
                 "backward"):
        assert word in printed
    record = json.loads(out.read_text())
    results = record["results"]
    assert results["method"] == "per-frame" and results["frames"] == 4
    assert results["key_distance"]["frames"] == {"0": 2, "1": 2}
    assert set(results["temporal_consistency"]) == {"tc_bwd", "tc_noc_bwd"}
    assert record["config"]["engine"]["model"] == "swiftnet18"
    assert record["config"]["dataset"] == "synthetic"
    assert "torch" in record["environment"]["packages"]
    values = [v for v in results["key_distance"]["per_distance"].values()]
    assert all(v is None or 0.0 <= v <= 1.0 for v in values)


@pytest.mark.parametrize("command", ["run", "bench", "export", "eval", "train"])
def test_every_command_runs_as_a_module(command):
    """`python -m vidseg.cli.<command>` is the console script without installing (as the README's commands)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", f"vidseg.cli.{command}", "--help"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: vidseg-{command}"), done.stdout[:200]

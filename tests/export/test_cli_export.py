"""vidseg-export on the tiny model: the method's stages exported, validated, tabulated and listed in a manifest."""

from __future__ import annotations

import json
import sys

import pytest

from vidseg.cli.export import main
from vidseg.engine import engine


@pytest.fixture
def tiny_registry(monkeypatch, tiny_model):
    monkeypatch.setattr(engine, "load_model", lambda config: tiny_model)


def test_export_flowwarp_stages_to_onnx(tiny_registry, tmp_path, capsys):
    code = main(
        ["--model", "tiny", "--format", "onnx", "--res", "32x48", "--method", "flowwarp", "--out", str(tmp_path)]
    )
    assert code == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    rows = {row["stage"]: row for row in manifest["artifacts"]}
    assert set(rows) == {"key", "flow", "refine"} and manifest["frame_size"] == [32, 48]
    for row in rows.values():
        assert row["validation"]["passed"] and row["trt_problems"] == [] and row["exporter"] == "dynamo"
        assert (tmp_path / f"tiny-{row['stage']}-32x48.onnx").stat().st_size == row["size"]
    out = capsys.readouterr().out
    assert "vidseg-export tiny -> onnx" in out and "refine" in out and "100.00%" in out


def test_export_refuses_bad_combinations(tiny_registry, tmp_path, capsys, monkeypatch):
    assert main(["--model", "tiny", "--format", "onnx", "--precision", "fp16", "--out", str(tmp_path)]) == 2
    assert "ONNX artifacts are fp32" in capsys.readouterr().err
    assert main(["--model", "tiny", "--format", "trt", "--precision", "int8", "--out", str(tmp_path)]) == 2
    assert "--calib" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert main(["--model", "tiny", "--format", "trt", "--out", str(tmp_path)]) == 3  # BackendUnavailable
    assert "tensorrt" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx"))  # refused before any export

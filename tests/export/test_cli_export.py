"""vidseg-export on the tiny model: the method's stages exported, validated, tabulated and listed in a manifest;
refusals before any work; folders that cannot be written; a failed export leaves no half set behind."""

from __future__ import annotations

import errno
import json
import sys

import pytest

from vidseg.cli.export import main
from vidseg.engine import engine
from vidseg.export import files
from vidseg.export.formats import FORMATS


@pytest.fixture
def tiny_registry(monkeypatch, tiny_model):
    monkeypatch.setattr(engine, "load_model", lambda config: tiny_model)


def test_export_flowwarp_stages_to_onnx(tiny_registry, tmp_path, capsys):
    code = main(["--model", "tiny", "--res", "32x48", "--method", "flowwarp", "--out", str(tmp_path)])
    assert code == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["format"] == "onnx" and manifest["method"] == "flowwarp" and manifest["frame_size"] == [32, 48]
    assert set(manifest["stages"]) == {"key", "flow", "refine"}
    assert manifest["methods"] == ["per-frame", "flowwarp"]  # what these stages can run; arseg lacks nonkey
    for name, row in manifest["stages"].items():
        build = row["build"]
        assert build["validation"]["passed"] and build["trt_problems"] == [] and build["exporter"] == "dynamo"
        assert row["file"] == f"tiny-{name}-32x48-b1-fp32.onnx"
        assert (tmp_path / row["file"]).stat().st_size == row["size"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(r["file"] for r in manifest["stages"].values()),
                                                                 "manifest.json"])
    out = capsys.readouterr().out
    assert "vidseg-export tiny -> onnx" in out and "refine" in out and "100.00%" in out


def test_export_refuses_bad_combinations(tiny_registry, tmp_path, capsys, monkeypatch):
    assert main(["--model", "tiny", "--format", "onnx", "--precision", "fp16", "--out", str(tmp_path)]) == 2
    assert "onnx artifacts come in fp32" in capsys.readouterr().err
    assert main(["--model", "tiny", "--format", "trt", "--precision", "int8", "--out", str(tmp_path)]) == 2
    assert "--calib" in capsys.readouterr().err
    assert main(["--model", "tiny", "--format", "aoti", "--dynamic", "--out", str(tmp_path)]) == 2
    assert "fixed height/width" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert main(["--model", "tiny", "--format", "trt", "--out", str(tmp_path)]) == 3  # BackendUnavailable
    assert "tensorrt" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx"))  # refused before any export


def test_list_formats_prints_the_whole_table(capsys):
    assert main(["--list-formats"]) == 0
    out = capsys.readouterr().out
    for fmt in FORMATS.values():
        row = next(line for line in out.splitlines() if line.startswith(f"│ {fmt.name} "))
        assert fmt.suffix in row and fmt.dynamic in row  # one line per format: nothing folded or cut
    assert max(len(line) for line in out.splitlines()) > 80
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "tensorrt >= 10" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["under_a_file", "no_permission"])
def test_unwritable_out_folder_is_one_line(tiny_registry, tmp_path, capsys, monkeypatch, where):
    if where == "under_a_file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "deploy"
    else:  # root ignores permission bits: the refusal the file system would give, raised where it would be
        out = tmp_path / "locked" / "deploy"

        def refuse(self, *args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))

        monkeypatch.setattr(files.Path, "mkdir", refuse)
    assert main(["--model", "tiny", "--res", "32x48", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"export folder {out} cannot be created" in err and "--out" in err


def test_full_disk_leaves_no_partial_file_and_no_half_export(tiny_registry, tmp_path, capsys, monkeypatch):
    """The third stage's write fails with ENOSPC: its temporary file goes, the two finished stages are removed
    with it (no manifest, no half set), and the error is one line."""
    import onnx

    real_save = onnx.save_model
    saves = []

    def save(model, path, *args, **kwargs):
        saves.append(path)
        if len(saves) == 3:
            with open(path, "wb") as fh:
                fh.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real_save(model, path, *args, **kwargs)

    monkeypatch.setattr(onnx, "save_model", save)
    out = tmp_path / "deploy"
    assert main(["--model", "tiny", "--res", "32x48", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "No space left on device" in err and "free some space" in err
    assert list(out.iterdir()) == []

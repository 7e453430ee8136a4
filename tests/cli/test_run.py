"""vidseg-run end to end on small clips, with the engine tests' tiny model standing in for a registered one."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from engine_tiny import encode_clip, make_frames  # noqa: E402

from vidseg.cli import run as cli  # noqa: E402
from vidseg.models.registry import list_models  # noqa: E402


def test_run_writes_every_output_and_prints_the_summary(clip, tiny, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main([str(clip), "--model", "tiny", "--method", "arseg", "--keyframes", "gop", "--device", "cpu",
                     "--drift-limit", "off", "--save", "overlay,labels,npz", "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    for word in ("frames/s", "latency key", "latency non-key", "stage nonkey", "dropped", "fallbacks"):
        assert word in printed
    assert "10 (2 keyframes)" in printed
    labels = np.load(out / "street_labels.npz")
    assert list(labels["index"]) == list(range(10)) and labels["labels_000003"].shape == (64, 96)
    assert len(list((out / "street_labels").glob("*_trainIds.png"))) == 10
    import av

    with av.open(str(out / "street_overlay.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == 10


def test_overlay_keeps_the_timing_of_a_variable_frame_rate_video(tiny, tmp_path):
    """Phones and network cameras write variable frame rates: the overlay shows each frame when the source did."""
    from fractions import Fraction

    import av

    source = tmp_path / "vfr.mkv"
    steps_ms = [33, 50, 17, 100, 33, 67, 33, 33]
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for image, step in zip(make_frames(len(steps_ms)), steps_ms, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            t += step
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "out"
    assert cli.main([str(source), "--model", "tiny", "--method", "arseg", "--device", "cpu", "--save", "overlay",
                     "--out", str(out), "--no-progress"]) == 0

    def times(path):
        with av.open(str(path)) as video:
            pts = [float(f.pts * f.time_base) for f in video.decode(video=0)]
        return [p - pts[0] for p in pts]

    assert times(out / "vfr_overlay.mp4") == pytest.approx(times(source), abs=2e-3)
    assert times(source) == pytest.approx(np.cumsum([0] + steps_ms[:-1]) / 1000, abs=1e-6)


def test_method_defaults_to_the_models_keyframe_method(clip, tiny, capsys):
    assert cli.main([str(clip), "--model", "tiny", "--device", "cpu", "--keyframe-interval", "5",
                     "--no-progress"]) == 0
    printed = " ".join(capsys.readouterr().out.replace("│", " ").split())  # the table wraps long cells
    assert "arseg, LR scale 0.5 (keyframes: every 5 frames, restarting at I-frames" in printed


def test_ctrl_c_leaves_flushed_outputs(clip, tiny, tmp_path, capsys):
    calls = {"n": 0}

    def interrupt(*_):
        calls["n"] += 1
        if calls["n"] == 5:  # one warm-up call when the runner is built, then frames 0..3
            raise KeyboardInterrupt

    tiny.hr.register_forward_hook(interrupt)
    out = tmp_path / "out"
    code = cli.main([str(clip), "--model", "tiny", "--method", "per-frame", "--device", "cpu", "--save", "npz",
                     "--out", str(out), "--no-progress"])
    assert code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err
    labels = np.load(out / "street_labels.npz")  # a complete archive of the frames before Ctrl-C
    assert list(labels["index"]) == [0, 1, 2]


def test_errors_print_one_line(tmp_path, capsys):
    code = cli.main([str(tmp_path / "missing.mp4"), "--model", "bise18-camvid", "--device", "cpu"])
    assert code == 2
    assert "missing.mp4" in _one_error_line(capsys)
    assert cli.main(["--save", "gif", "--demo"]) == 2
    assert "unknown --save" in capsys.readouterr().err
    assert cli.main([]) == 2


@pytest.mark.skipif((Path(cli.__file__).parents[1] / "assets" / "demo.pt").exists(), reason="demo weights installed")
def test_without_a_model_says_the_demo_weights_are_missing(clip, capsys):
    assert cli.main([str(clip), "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "demo" in err[0] and "not installed" in err[0]


def test_list_models(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one row per model
    assert cli.main(["--list-models"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.strip().splitlines()]
    names = [row[0] for row in rows if row and row[0] in list_models()]
    assert names == list_models()
    demo = next(row for row in rows if row and row[0] == "demo")
    assert "built" in demo and "19" in demo  # built-in weights, 19 classes
    gsv = next(row for row in rows if row and row[0] == "gsvnet-swiftnet18")
    assert "cityscapes-swnet-R18.pt,gsvnet_swnet_r18.tar," in gsv  # the files --weights takes


def test_demo_renders_a_synthetic_clip_and_writes_the_overlay(tiny, tmp_path, capsys):
    pytest.importorskip("vidseg.synthetic")
    out = tmp_path / "demo"
    assert cli.main(["--demo", "--model", "tiny", "--device", "cpu", "--out", str(out), "--no-progress"]) == 0
    assert (out / "demo.mp4").exists() and (out / "demo_overlay.mp4").exists()
    assert f"{cli.DEMO_FRAMES} (" in capsys.readouterr().out


# Hostile paths and options: one `error:` line, a non-zero exit code, no traceback, nothing touched.

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


# First contact: what a new user gets without flags.

def test_without_flags_results_go_to_a_new_numbered_run_folder(clip, tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VIDSEG_OUT")
    for n in (1, 2):
        assert cli.main([str(clip), "--model", "tiny", "--device", "cpu", "--no-progress"]) == 0
        run = tmp_path / "vidseg-out" / f"run{n}"
        assert (run / "street_overlay.mp4").is_file()  # overlay and label maps by default
        assert len(list((run / "street_labels").glob("*_trainIds.png"))) == 10
        assert not (run / "street_labels.npz").exists()
        assert f"results saved to {Path('vidseg-out') / f'run{n}'}" in capsys.readouterr().err


def test_vidseg_out_moves_the_numbered_folders(clip, tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VIDSEG_OUT", str(tmp_path / "results"))
    assert cli.main([str(clip), "--model", "tiny", "--device", "cpu", "--no-progress"]) == 0
    assert (tmp_path / "results" / "run1" / "street_overlay.mp4").is_file()


def test_save_none_writes_nothing(clip, tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VIDSEG_OUT")
    assert cli.main([str(clip), "--model", "tiny", "--device", "cpu", "--save", "none", "--no-progress"]) == 0
    assert not (tmp_path / "vidseg-out").exists()
    assert "results saved" not in capsys.readouterr().err


def test_a_run_that_fails_before_writing_leaves_no_empty_numbered_folder(clip, tmp_path, monkeypatch, capsys):
    """A refused model (no weights) fails after the run folder is made: the folder goes, so the next run is run1."""
    monkeypatch.setenv("VIDSEG_OUT", str(tmp_path / "results"))
    assert cli.main([str(clip), "--model", "bise18-camvid", "--device", "cpu", "--no-progress"]) == 2
    assert "no built-in weights" in _one_error_line(capsys)
    assert list((tmp_path / "results").iterdir()) == []
    given = tmp_path / "given"
    assert cli.main([str(clip), "--model", "bise18-camvid", "--device", "cpu", "--out", str(given),
                     "--no-progress"]) == 2
    assert given.is_dir()  # a folder the user named is theirs: kept


def test_json_summary_holds_the_run(clip, tiny, tmp_path, capsys):
    import json

    path = tmp_path / "report" / "run.json"
    assert cli.main([str(clip), "--model", "tiny", "--method", "arseg", "--keyframe-interval", "5", "--device",
                     "cpu", "--drift-limit", "off", "--out", str(tmp_path / "out"), "--json", str(path),
                     "--no-progress"]) == 0
    record = json.loads(path.read_text())
    assert record["frames"] == 10 and record["keyframes"] == 2 and record["method"] == "arseg"
    assert record["stages"]["key"]["calls"] == 2 and record["stages"]["nonkey"]["calls"] == 8
    assert record["stages"]["key"]["ms_per_call"] > 0
    assert record["latency_ms"]["all"]["p50_ms"] > 0 and record["backend"].startswith("torch")
    assert abs(sum(record["class_shares"].values()) - 1.0) < 1e-6
    assert len(record["outputs"]) == 2 and record["config"]["keyframe_interval"] == 5
    printed = capsys.readouterr().out
    assert "ms per call, 2 calls" in printed and "ms per call, 8 calls" in printed


def test_a_zoo_model_without_weights_is_refused_unless_random_weights(clip, tmp_path, capsys):
    code = cli.main([str(clip), "--model", "bise18-camvid", "--device", "cpu", "--out", str(tmp_path / "o"),
                     "--no-progress"])
    assert code == 2
    line = _one_error_line(capsys)
    assert "no built-in weights" in line and "--weights" in line and "HR.pth" in line and "--random-weights" in line
    assert cli.main([str(clip), "--model", "bise18-camvid", "--random-weights", "--device", "cpu", "--save", "none",
                     "--max-frames", "2", "--no-progress"]) == 0


def test_the_library_refuses_random_weights_too():
    from vidseg.config import EngineConfig
    from vidseg.engine.engine import load_model
    from vidseg.errors import CheckpointError

    with pytest.raises(CheckpointError, match="no built-in weights"):
        load_model(EngineConfig(model="swiftnet18"))
    assert load_model(EngineConfig(model="swiftnet18", random_weights=True)) is not None


def test_a_bad_input_fails_before_the_model_loads(tmp_path, monkeypatch, capsys):
    import vidseg.engine.engine as engine_module

    def never(config):
        raise AssertionError("the model was loaded for an unreadable input")

    monkeypatch.setattr(engine_module, "load_model", never)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    assert cli.main([str(text), "--device", "cpu", "--no-progress"]) == 2
    line = _one_error_line(capsys)
    assert "notes.mp4" in line and "ffprobe" not in line


@pytest.mark.parametrize("kind", ["missing", "text", "audio"])
def test_a_bad_input_fails_without_importing_torch(kind, tmp_path):
    """The input check runs on PyAV alone: importing torch (about a second on a small CPU) comes after it."""
    import subprocess

    import av

    path = tmp_path / f"{kind}.mp4"
    if kind == "text":
        path.write_text("not a video at all")
    elif kind == "audio":
        with av.open(str(path), "w") as container:
            stream = container.add_stream("aac", rate=8000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 8000
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                container.mux(packet)
    probe = ("import sys\nfrom vidseg.cli import run\ncode = run.main(sys.argv[1:])\n"
             "print('torch imported' if 'torch' in sys.modules else 'torch not imported')\nsys.exit(code)")
    done = subprocess.run([sys.executable, "-c", probe, str(path), "--no-progress"], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stdout.strip() == "torch not imported"
    assert done.stderr.strip().startswith(f"error: {path}")


@pytest.mark.parametrize("where", ["under_a_file", "a_folder"])
def test_a_json_path_that_cannot_be_written_fails_before_the_model_loads(where, clip, tmp_path, monkeypatch, capsys):
    import vidseg.engine.engine as engine_module

    def never(config):
        raise AssertionError("the model was loaded although --json cannot be written")

    monkeypatch.setattr(engine_module, "load_model", never)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "summary.json" if where == "under_a_file" else tmp_path
    assert cli.main([str(clip), "--json", str(target), "--save", "none", "--no-progress"]) == 2
    assert "--json" in _one_error_line(capsys)


def test_the_summary_json_writer_fails_in_one_line_when_its_folder_is_a_file(tmp_path):
    from vidseg.cli.summary import write_json
    from vidseg.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot write --json"):
        write_json(blocker / "summary.json", {"frames": 1})
    assert blocker.read_text() == "x"


def test_a_damaged_file_prints_its_summary_before_the_error(tiny, tmp_path, capsys):
    import av

    good = encode_clip(tmp_path / "good.mp4", make_frames(12), gop=12)
    with av.open(str(good)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(good.read_bytes())
    pos, size = packets[6]
    data[pos:pos + size] = b"\xff" * size  # one P-frame's payload destroyed
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    code = cli.main([str(damaged), "--model", "tiny", "--device", "cpu", "--save", "none", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2
    assert "frames/s" in captured.out and "11 (" in captured.out  # the summary of the frames that decoded
    assert captured.err.strip().splitlines()[-1].startswith("error:")


def test_other_libraries_warnings_are_not_vidseg_notes(clip, tiny, tmp_path, capsys):
    import warnings

    def noisy(*_):
        warnings.warn("a third-party deprecation", UserWarning, stacklevel=1)

    tiny.hr.register_forward_hook(noisy)
    assert cli.main([str(clip), "--model", "tiny", "--device", "cpu", "--save", "none", "--no-progress"]) == 0
    assert "third-party" not in capsys.readouterr().err


def test_an_output_folder_under_a_file_is_one_line(clip, tiny, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main([str(clip), "--model", "tiny", "--device", "cpu", "--out", str(blocker / "sub"),
                     "--no-progress"]) == 2
    assert "cannot create --out" in _one_error_line(capsys)


def test_outputs_people_expect_legend_stacked_labels_probs(clip, tiny, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main([str(clip), "--model", "tiny", "--method", "arseg", "--device", "cpu", "--save",
                     "overlay,npz,probs", "--alpha", "0.3", "--out", str(out), "--no-progress"]) == 0
    assert not (out / "street_legend.png").exists()  # 5 classes: not the 19 of its palette, so no named legend
    labels = np.load(out / "street_labels.npz")
    assert labels["labels"].shape == (10, 64, 96) and labels["labels"].dtype == np.uint8
    np.testing.assert_array_equal(labels["labels"][3], labels["labels_000003"])
    probs = np.load(out / "street_probs.npz")
    p = probs["probs_000004"]
    assert p.dtype == np.float16 and p.shape[0] == tiny.spec.num_classes
    np.testing.assert_allclose(p.astype(np.float32).sum(0), 1.0, atol=2e-2)
    assert list(probs["index"]) == list(range(10)) and list(probs["frame_size"]) == [64, 96]
    printed = capsys.readouterr().out
    assert "street_probs.npz" in printed.replace("\n", "")


def test_alpha_outside_zero_one_is_refused(clip, tiny, capsys):
    assert cli.main([str(clip), "--model", "tiny", "--device", "cpu", "--alpha", "1.5", "--no-progress"]) == 2
    assert "--alpha must lie in 0..1" in _one_error_line(capsys)


def test_the_overlay_of_a_cityscapes_model_has_a_legend_beside_it(tmp_path):
    from PIL import Image

    from vidseg.classes import label_set
    from vidseg.video.save import make_sinks, sink_paths

    sinks = make_sinks(("overlay",), tmp_path, "clip", palette="cityscapes19", fps=25, num_classes=19)
    for sink in sinks:
        sink.close()
    legend = tmp_path / "clip_legend.png"
    assert legend in sink_paths(sinks)
    image = np.asarray(Image.open(legend))
    road = label_set("cityscapes19").colours[0]
    assert (image.reshape(-1, 3) == road).all(axis=1).sum() > 50  # the road swatch is drawn in road's colour


def test_a_checkpoint_that_does_not_fit_is_at_most_three_lines_and_verbose_lists_every_key(clip, tmp_path, capsys):
    import torch

    wrong = tmp_path / "other.pth"
    torch.save({f"head{i}.weight": torch.zeros(2, 2) for i in range(9)}, wrong)
    args = [str(clip), "--model", "bise18-camvid", "--weights", str(wrong), "--device", "cpu", "--no-progress"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 3 and err[0].startswith("error:") and "does not fit" in err[0]
    assert "unexpected keys: head0.weight" in err[1] and "(+4 more)" in err[1]
    assert cli.main([*args, "--verbose"]) == 2
    verbose = capsys.readouterr().err
    assert "unexpected keys (9):" in verbose and "  head8.weight" in verbose


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KB tmpfs: a disk that fills up mid-run (needs root to mount; skipped elsewhere)."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(tiny, tiny_disk, tmp_path, capsys):
    clip = encode_clip(tmp_path / "long.mp4", make_frames(60), gop=10)
    code = cli.main([str(clip), "--model", "tiny", "--device", "cpu", "--save", "overlay,labels,npz",
                     "--out", str(tiny_disk / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: cannot write") and "No space left" in err[-1] and "--out" in err[-1]
    left = [p.name for p in tiny_disk.rglob("*") if ".part" in p.name]
    assert left == []  # no partial PNG, NPZ or video
    for png in (tiny_disk / "out" / "long_labels").glob("*.png"):  # the label maps written before stay whole
        from PIL import Image

        assert Image.open(png).size == (96, 64)


def test_drift_limit_makes_keys_where_the_non_key_output_departs_and_the_summary_says_so(clip, tiny, tmp_path,
                                                                                       capsys):
    import json

    path = tmp_path / "run.json"
    base = [str(clip), "--model", "tiny", "--method", "arseg", "--keyframe-interval", "5", "--device", "cpu",
            "--save", "none", "--no-progress", "--json", str(path)]
    assert cli.main([*base, "--drift-limit", "0.01"]) == 0  # the tiny model's non-key labels drift more than 1 %
    record = json.loads(path.read_text())
    assert record["keyframes"] > 2 and any("--drift-limit" in note for note in record["fallbacks"])
    assert "drift" in capsys.readouterr().out  # the policy line says it
    with pytest.raises(SystemExit):
        cli.main([*base, "--drift-limit", "1.5"])
    assert "a share in (0, 1]" in capsys.readouterr().err

"""vidseg-run under the thread budget: the numbers reach torch, the decoder and the overlay encoder, the user's
numbers win, the summary says how much of the wall time went outside the model stages, and the labels written do
not depend on the budget."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from vidseg import threads  # noqa: E402
from vidseg.cli import run as cli  # noqa: E402


@pytest.fixture(autouse=True)
def restore():
    before, applied = torch.get_num_threads(), threads._APPLIED
    yield
    torch.set_num_threads(before)
    threads._APPLIED = applied


@pytest.fixture
def opened(monkeypatch):
    """The decoder threads each file was opened with."""
    import vidseg.video.decode as decode

    seen: list[int] = []
    original = decode.open_video

    def spy(path, *, motion=False, threads=0, cell=4):
        seen.append(threads)
        return original(path, motion=motion, threads=threads, cell=cell)

    monkeypatch.setattr(decode, "open_video", spy)
    return seen


def run(clip: Path, out: Path, *extra: str) -> dict:
    record = out.with_suffix(".json")
    code = cli.main([str(clip), "--model", "tiny", "--method", "arseg", "--keyframes", "gop", "--device", "cpu",
                     "--save", "overlay,labels,npz", "--out", str(out), "--json", str(record), "--no-progress",
                     *extra])
    assert code == 0
    return json.loads(record.read_text())


def test_the_budget_reaches_torch_the_decoder_and_the_encoder(clip, tiny, opened, tmp_path, monkeypatch):
    import vidseg.device

    monkeypatch.setattr(vidseg.device, "physical_cores", lambda: 2)
    record = run(clip, tmp_path / "a")
    assert record["threads"] == {"cores": 2, "torch": 2, "decode": 1, "encode": 1, "side_nice": threads.SIDE_NICE,
                                 "encode_preset": "superfast"}
    assert torch.get_num_threads() == 2
    assert opened[-1] == 1
    # x264 writes its settings into the stream: superfast searches motion with "dia" at subpel level 1.
    overlay = next((tmp_path / "a").glob("*_overlay.mp4")).read_bytes()
    assert b"me=dia subme=1" in overlay

    record = run(clip, tmp_path / "b", "--threads", "1", "--decode-threads", "3", "--encode-threads", "0")
    assert record["threads"]["torch"] == 1 and torch.get_num_threads() == 1
    assert opened[-1] == 3 and record["threads"]["encode"] == 0


def test_omp_num_threads_is_honoured_unless_threads_is_given(monkeypatch):
    parse = cli.build_parser().parse_args
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cli.thread_budget(parse(["x.mp4"])).torch == 1
    assert cli.thread_budget(parse(["x.mp4", "--threads", "2"])).torch == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    assert cli.thread_budget(parse(["x.mp4"])).torch == threads.ThreadBudget.for_cores().torch


def test_the_summary_gives_the_share_outside_the_model_stages(clip, tiny, tmp_path):
    record = run(clip, tmp_path / "a")
    outside = record["outside_stages"]
    stages = sum(s["total_s"] for s in record["stages"].values())
    assert outside["share"] == pytest.approx(1 - stages / record["wall_s"])
    seconds = outside["seconds"]
    assert set(seconds) == {"startup", "decode wait", "write wait", "other"}
    assert record["stages"]["labels"]["calls"] == record["frames"]  # logits -> labels: the model's last step
    assert seconds["startup"] == pytest.approx(record["startup_s"])
    assert min(seconds.values()) >= 0
    assert sum(seconds.values()) == pytest.approx(record["wall_s"] - stages, rel=1e-6, abs=1e-6)


def test_the_labels_written_do_not_depend_on_the_budget(clip, tiny, tmp_path):
    """The libraries' own thread choices (the behaviour before the budget) and the budget's write the same labels;
    the cheaper PNG compression decodes to the same label maps."""
    from PIL import Image

    a = tmp_path / "budget"
    b = tmp_path / "libraries"
    run(clip, a, "--threads", "1")
    run(clip, b, "--threads", "1", "--decode-threads", "0", "--encode-threads", "0")
    with np.load(a / "street_labels.npz") as la, np.load(b / "street_labels.npz") as lb:
        assert sorted(la.files) == sorted(lb.files)
        for name in la.files:
            np.testing.assert_array_equal(la[name], lb[name])
        for i in range(10):
            png = np.asarray(Image.open(a / "street_labels" / f"{i:06d}_trainIds.png"))
            np.testing.assert_array_equal(png, la[f"labels_{i:06d}"])
    import av

    for folder in (a, b):
        with av.open(str(folder / "street_overlay.mp4")) as video:
            assert sum(1 for _ in video.decode(video=0)) == 10


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_console_scripts_choose_passive_openmp_waits_before_torch_loads(given, expected):
    """OpenMP reads its wait policy once, when torch loads: the CLI must set it before any torch import (under
    load from another process, spinning waits made a run 18x slower), and keep what the user set."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    code = ("import os, sys\nimport vidseg.cli.run, vidseg.cli.bench, vidseg.cli.export, vidseg.cli.train\n"
            "assert 'torch' not in sys.modules, 'torch was loaded before the wait policy was set'\n"
            "print(os.environ['OMP_WAIT_POLICY'])\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected

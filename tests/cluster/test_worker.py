"""The worker without Ray: one engine, one input into staging, the record, the rename; failures it reports."""

from __future__ import annotations

import pytest
from cluster_helpers import assert_complete_once
from cluster_tiny import tiny

from vidseg.cluster.inputs import expand_inputs
from vidseg.cluster.jobs import Job
from vidseg.cluster.outputs import staging_dir
from vidseg.cluster.record import input_identity, run_options
from vidseg.cluster.worker import Worker
from vidseg.config import EngineConfig
from vidseg.errors import ConfigError


def _job(inp, out, config, attempt=1):
    options = run_options(config, save=("labels",), max_frames=None, model="cluster_tiny.tiny")
    return Job(inp, attempt, "run1", str(out), ("labels",), None, options, input_identity(inp))


def test_process_commits_complete_outputs_and_reports_a_damaged_input(make_clips, tmp_path):
    config = EngineConfig(device="cpu", backend="torch", method="per-frame")
    worker = Worker("w0", config, model_factory=tiny, threads=1)
    assert worker.info().device == "cpu"
    out = tmp_path / "out"
    good, bad = _split(make_clips)
    outcome = worker.process(_job(good, out, config, attempt=2))
    assert outcome.ok and outcome.frames == 10 and outcome.output == str(out / "good")
    failed = worker.process(_job(bad, out, config))
    assert not failed.ok and "truncated" in failed.error and "\n" not in failed.error
    assert not staging_dir(out, "bad", 1).exists() and not (out / "bad").exists()
    assert worker.stats().input is None and worker.stats().finished_frames == 10
    (out / ".staging").rmdir()  # empty: every attempt's folder was renamed or removed
    assert_complete_once(out, {"good": 10})


def _split(make_clips):
    folder = make_clips(["good"], bad=["bad"])
    found = {i.name: i for i in expand_inputs([folder])}
    return found["good"], found["bad"]


def test_an_engine_that_cannot_be_built_says_so_from_info(tmp_path):
    worker = Worker("w0", EngineConfig(model="no-such-model", device="cpu"), threads=1)
    with pytest.raises(ConfigError, match="no-such-model"):
        worker.info()


def test_a_worker_process_waits_passively_in_openmp():
    """A Ray worker is a fresh process that loads torch in Worker.__init__: the wait policy must be set first."""
    import os
    import subprocess
    import sys

    code = ("import os, sys\nfrom vidseg.cluster.worker import Worker\nfrom vidseg.config import EngineConfig\n"
            "assert 'torch' not in sys.modules\n"
            "Worker('w0', EngineConfig(model='no-such-model', device='cpu'), threads=1)\n"
            "print(os.environ['OMP_WAIT_POLICY'])\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "PASSIVE"


def test_an_error_that_quotes_the_url_loses_its_secrets():
    from vidseg.cluster.worker import _one_line

    url = "rtsp://alice:Pa55word@cam.local/live?token=T0KEN99"
    line = _one_line(RuntimeError(f"cannot read {url}\n  (user alice, Pa55word)"), url)
    assert line.startswith("RuntimeError: cannot read rtsp://***@cam.local/live?token=***")
    assert "Pa55word" not in line and "T0KEN99" not in line and "alice" not in line and "\n" not in line


def test_the_run_s_source_options_open_the_worker_s_stream(tmp_path):
    """--timeout, --reconnect, ... reach the workers: a silent stream gives up after the run's 1 s time-out."""
    import pickle
    import socket

    from vidseg.cluster.inputs import ClusterInput
    from vidseg.video.source import SourceOptions

    options = SourceOptions(timeout=1.0, reconnect=0, ffmpeg_options={"fflags": "nobuffer"})
    assert pickle.loads(pickle.dumps(options)) == options  # what crosses to a worker process
    config = EngineConfig(device="cpu", backend="torch", method="per-frame")
    worker = Worker("w0", config, model_factory=tiny, threads=1)
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never sends a byte
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        inp = ClusterInput(f"tcp://127.0.0.1:{silent.getsockname()[1]}", "cam", live=True)
        job = _job(inp, tmp_path / "out", config)
        outcome = worker.process(Job(**{**job.__dict__, "source_options": options}))
    assert not outcome.ok and "no data within 1 s (time-out)" in outcome.error, outcome.error


def test_a_live_stream_lost_for_good_keeps_its_outputs_up_to_the_loss(tmp_path):
    """Reconnects exhausted: the input fails (said once) but what came before the loss is committed, whole,
    with the error in its record, so --resume redoes it rather than skipping it."""
    import sys
    from pathlib import Path

    from cluster_helpers import encode_clip, make_frames

    from vidseg.cluster.inputs import ClusterInput
    from vidseg.cluster.record import check_record, read_record
    from vidseg.video.source import SourceOptions

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from video.loopback import tcp_sender

    clip = encode_clip(tmp_path / "cam.mp4", make_frames(25), gop=25)  # 1 s at 25 fps, sent once, then the end
    config = EngineConfig(device="cpu", backend="torch", method="per-frame")
    worker = Worker("w0", config, model_factory=tiny, threads=1)
    out = tmp_path / "out"
    options = SourceOptions(timeout=5.0, reconnect=0)
    with tcp_sender(clip, loop=False) as (url, _):
        inp = ClusterInput(f"{url}?token=T0KEN99", "cam", live=True)
        job = _job(inp, out, config)
        outcome = worker.process(Job(**{**job.__dict__, "source_options": options}))
    assert not outcome.ok and "reconnecting is off" in outcome.error and "T0KEN99" not in outcome.error
    (session,) = (out / "cam").iterdir()  # a live input's outputs: a session folder of their own
    assert outcome.output == str(session) and session.name.startswith("session-") and outcome.frames > 0
    record = read_record(session)
    assert record["frames"] == outcome.frames and record["error"] == outcome.error
    pngs = sorted((session / "cam_labels").iterdir())
    assert len(pngs) == outcome.frames and all(p.stat().st_size > 0 for p in pngs)
    assert check_record(session, record["input"], record["options"]).startswith("it ended in an error")
    assert not (out / ".staging" / "cam.1").exists()


def test_an_unexpected_error_is_logged_with_its_traceback_and_without_the_url_s_secrets(tmp_path, caplog,
                                                                                         monkeypatch):
    import logging

    from vidseg.cluster.inputs import ClusterInput

    url = "rtsp://alice:Pa55word@cam.local/live?token=T0KEN99"
    config = EngineConfig(device="cpu", backend="torch", method="per-frame")
    worker = Worker("w0", config, model_factory=tiny, threads=1)

    def broken(job, staging):
        raise RuntimeError(f"cannot handle {url}")

    monkeypatch.setattr(worker, "_run", broken)
    caplog.set_level(logging.ERROR, logger="vidseg.cluster")
    outcome = worker.process(_job(ClusterInput(url, "cam", live=True), tmp_path / "out", config))
    assert not outcome.ok and outcome.error.startswith("RuntimeError: cannot handle rtsp://***@cam.local")
    assert "Traceback" in caplog.text and "in broken" in caplog.text
    for secret in ("Pa55word", "T0KEN99", "alice"):
        assert secret not in caplog.text and secret not in outcome.error

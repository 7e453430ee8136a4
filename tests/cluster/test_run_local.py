"""Cluster runs on a real Ray instance started in this process (2 CPUs, this machine only).

One Ray instance serves the whole module (starting one takes ~20 s on 2 loaded cores); each run starts its own
workers. The cases: many inputs with a damaged one among them, a worker killed mid-input, resume, a live input
pinned to its worker, and the vidseg-run command line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from cluster_helpers import FRAMES, assert_complete_once, encode_clip, make_frames, worker_pythonpath  # noqa: E402
from cluster_tiny import slow_tiny, tiny  # noqa: E402

from vidseg.cli.run import main as run_main  # noqa: E402
from vidseg.cluster import ClusterRun, run  # noqa: E402
from vidseg.cluster.inputs import ClusterInput  # noqa: E402
from vidseg.cluster.report import REPORT_NAME  # noqa: E402
from vidseg.config import EngineConfig  # noqa: E402

CPU = EngineConfig(device="cpu", backend="torch", method="per-frame")  # workers: no conftest


@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": worker_pythonpath()}})
    yield ray
    ray.shutdown()


def test_every_input_once_and_a_damaged_one_reported_once(local_ray, make_clips, tmp_path):
    folder = make_clips(["a", "b", "c"], bad=["broken"])
    out = tmp_path / "out"
    report = run([folder], CPU, out=out, workers=2, model_factory=tiny, poll_s=0.2)
    status = {r.name: r for r in report.results}
    assert {n: r.status for n, r in status.items()} == {"a": "done", "b": "done", "broken": "failed", "c": "done"}
    broken = status["broken"]
    assert broken.attempts == 1 and not broken.retries and "truncated" in broken.error
    assert 1 <= len(report.workers) <= 2 and report.frames == 3 * FRAMES and not report.ok
    assert_complete_once(out, {"a": FRAMES, "b": FRAMES, "c": FRAMES})


def test_a_worker_killed_mid_input_loses_only_that_attempt(local_ray, make_clips, tmp_path):
    folder = make_clips(["a", "b", "c"], frames=12)
    out = tmp_path / "out"
    killed: list[str] = []

    def kill_one_busy_worker(snapshot):
        for worker in snapshot.workers:
            if not killed and worker.state == "busy" and worker.frames >= 2:
                ray.kill(ray.get_actor(f"vidseg-{job.run_id}-{worker.name}"))
                killed.append(worker.input)

    job = ClusterRun([folder], CPU, out=out, workers=2, model_factory=slow_tiny, progress=kill_one_busy_worker,
                     poll_s=0.2)
    report = job.run()
    assert len(killed) == 1, "no worker was seen mid-input"
    status = {r.name: r for r in report.results}
    assert all(r.status == "done" for r in report.results), [(r.name, r.status, r.error) for r in report.results]
    victim = status[killed[0]]
    assert victim.attempts == 2 and len(victim.retries) == 1 and "attempt 1" in victim.retries[0]
    assert all(r.attempts == 1 for r in report.results if r is not victim)
    assert report.retried == 1
    assert_complete_once(out, {"a": 12, "b": 12, "c": 12})
    assert json.loads((out / victim.name / "_vidseg_done.json").read_text())["attempt"] == 2


def test_resume_skips_what_is_done_and_redoes_a_changed_input(local_ray, make_clips, tmp_path):
    folder = make_clips(["a", "b"])
    out = tmp_path / "out"
    first = run([folder], CPU, out=out, workers=1, model_factory=tiny)
    assert [r.status for r in first.results] == ["done", "done"]
    again = run([folder], CPU, out=out, workers=1, model_factory=tiny, resume=True)
    assert [r.status for r in again.results] == ["skipped", "skipped"] and again.workers == []  # no worker needed
    encode_clip(folder / "b.mp4", make_frames(FRAMES + 2, seed=7))  # b is edited: longer, other content
    third = run([folder], CPU, out=out, workers=1, model_factory=tiny, resume=True)
    status = {r.name: r for r in third.results}
    assert status["a"].status == "skipped" and status["b"].status == "done"
    assert status["b"].note.startswith("redone: input changed")
    assert_complete_once(out, {"a": FRAMES, "b": FRAMES + 2})


def test_a_live_input_keeps_its_worker_while_offline_inputs_share_the_other(local_ray, make_clips, tmp_path):
    folder = make_clips(["a", "b", "c"])
    camera = encode_clip(tmp_path / "camera.mp4", make_frames(30, seed=5))  # read in real time: 1.2 s at 25 fps
    inputs = [ClusterInput(str(camera), "camera", live=True), folder]
    report = run(inputs, CPU, out=tmp_path / "out", workers=2, model_factory=tiny, poll_s=0.2)
    status = {r.name: r for r in report.results}
    assert all(r.status == "done" for r in report.results)
    live = status["camera"]
    assert 0 < live.frames <= 30 and live.live
    for r in report.results:
        if r is not live and r.worker == live.worker:  # the live input's worker took nothing while it ran
            assert r.finished_s <= live.started_s or r.started_s >= live.finished_s


def test_vidseg_run_cluster_command(local_ray, make_clips, tmp_path, capsys):
    folder = make_clips(["a", "b"], bad=["broken"])
    out = tmp_path / "results"
    code = run_main([str(folder), "--cluster", "local", "--save", "labels", "--out", str(out), "--device", "cpu",
                     "--no-progress", "--workers", "2", "--json", str(tmp_path / "copy.json")])
    assert code == 1  # one input failed: said in the table and the report, the others are complete
    report = json.loads((out / REPORT_NAME).read_text())
    assert json.loads((tmp_path / "copy.json").read_text()) == report  # --json PATH: the same report there
    assert (report["done"], report["failed"], report["inputs"]) == (2, 1, 3)
    assert {r["name"]: r["status"] for r in report["results"]} == {"a": "done", "b": "done", "broken": "failed"}
    printed = capsys.readouterr().out
    assert "2 done, 1 failed" in printed and "broken" in printed
    assert_complete_once(out, {"a": FRAMES, "b": FRAMES})
    code = run_main([str(folder), "--cluster", "--resume", "--out", str(out), "--device", "cpu", "--save", "labels",
                     "--no-progress"])
    assert code == 1 and json.loads((out / REPORT_NAME).read_text())["skipped"] == 2


def test_stopping_the_run_keeps_the_live_stream_and_discards_unfinished_files(local_ray, make_clips, tmp_path):
    from vidseg.cluster.record import check_record, read_record

    camera = encode_clip(tmp_path / "camera.mp4", make_frames(100, seed=5))  # 4 s in real time
    folder = make_clips(["a", "b", "c"], frames=30)
    out = tmp_path / "out"

    def ctrl_c(snapshot):
        if any(w.input == "camera" and w.frames >= 3 for w in snapshot.workers):
            raise KeyboardInterrupt

    job = ClusterRun([ClusterInput(str(camera), "camera", live=True), folder], CPU, out=out, workers=2,
                     model_factory=slow_tiny, progress=ctrl_c, poll_s=0.2)
    with pytest.raises(KeyboardInterrupt):
        job.run()
    report = job.report()
    status = {r.name: r for r in report.results}
    assert report.interrupted and status["camera"].status == "done" and "stopped" in status["camera"].note
    (session,) = status["camera"].sessions
    assert session.ended == "stopped" and session.folder == status["camera"].output
    folder = out / "camera" / Path(session.folder).name
    record = read_record(folder)
    assert record["stopped"] and check_record(folder, record["input"], record["options"]) is None
    assert len(list((folder / "camera_labels").iterdir())) == record["frames"] == session.frames >= 3
    unfinished = [n for n, r in status.items() if r.status == "interrupted"]
    assert unfinished, "every file finished before the stop: nothing was left to discard"
    assert not (out / ".staging").exists() and not any((out / n).exists() for n in unfinished)


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_live_input_gets_a_session_per_run_and_resume_never_skips_or_deletes_one(local_ray, make_clips, tmp_path):
    from vidseg.cluster.record import check_record, read_record

    camera = encode_clip(tmp_path / "camera.mp4", make_frames(12, seed=5))  # 0.5 s in real time
    inputs = [ClusterInput(str(camera), "camera", live=True), make_clips(["a"])]
    out = tmp_path / "out"
    sessions, kept = [], {}
    for resume in (False, False, True):
        if resume:  # as a run whose driver was killed leaves it: one whole PNG, one being written
            left = out / ".staging" / "camera.1" / "camera_labels"
            left.mkdir(parents=True)
            (left / "000000_trainIds.png").write_bytes(b"png0")
            (left / "000001_trainIds.png.part").write_bytes(b"half")
        report = run(inputs, CPU, out=out, workers=2, model_factory=tiny, poll_s=0.2, resume=resume)
        status = {r.name: r for r in report.results}
        assert status["a"].status == ("skipped" if resume else "done")  # offline inputs: resume as before
        assert status["camera"].status == "done" and not status["camera"].note
        *leftover, session = status["camera"].sessions
        if resume:
            (leftover,) = leftover
            assert (leftover.attempt, leftover.frames, leftover.ended) == (0, 1, "lost: left by an earlier run")
            assert sorted(p.name for p in Path(leftover.folder).rglob("*.png")) == ["000000_trainIds.png"]
            sessions.append(Path(leftover.folder).name)
        assert session.ended == "ended" and session.folder == status["camera"].output
        for folder, files in kept.items():  # every earlier session is still there, byte for byte
            assert _files(folder) == files
        folder = Path(session.folder)
        record = read_record(folder)
        assert check_record(folder, record["input"], record["options"]) is None
        assert len(list((folder / "camera_labels").iterdir())) == record["frames"] == session.frames > 0
        kept[folder] = _files(folder)
        sessions.append(folder.name)
    assert "each live input starts a new session" in " ".join(report.notes)
    assert sorted(p.name for p in (out / "camera").iterdir()) == sorted(sessions) and len(set(sessions)) == 4
    assert not (out / ".staging").exists() and not list(out.rglob("*.part*"))


def test_a_worker_killed_mid_stream_keeps_its_finished_outputs_as_a_session(local_ray, tmp_path):
    from vidseg.cluster.record import check_record, read_record

    camera = encode_clip(tmp_path / "camera.mp4", make_frames(40, seed=5))  # 1.6 s in real time
    out = tmp_path / "out"
    killed: list[str] = []

    def kill_the_stream_s_worker(snapshot):
        for worker in snapshot.workers:
            if not killed and worker.state == "busy" and worker.frames >= 3:
                ray.kill(ray.get_actor(f"vidseg-{job.run_id}-{worker.name}"))
                killed.append(worker.name)

    job = ClusterRun([ClusterInput(str(camera), "camera", live=True)], CPU, out=out, save=("labels", "overlay"),
                     model_factory=slow_tiny, progress=kill_the_stream_s_worker, poll_s=0.2)
    report = job.run()
    assert len(killed) == 1, "the stream's worker was not seen mid-stream"
    (result,) = report.results
    assert result.status == "done" and result.attempts == 2, (result.status, result.error, result.retries)
    lost, ended = result.sessions
    assert (lost.attempt, lost.worker, ended.attempt) == (1, killed[0], 2) and ended.worker != killed[0]
    assert lost.ended.startswith("lost: the worker") and ended.ended == "ended" and lost.frames >= 1
    assert result.retries == [f"attempt 1 on {killed[0]} lost: {lost.ended[6:]}; its {lost.frames} finished "
                              f"frames kept in {Path(lost.folder).name}"]
    kept = Path(lost.folder)
    assert kept.parent == Path(ended.folder).parent == out / "camera" and kept != Path(ended.folder)
    files = sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*") if p.is_file())
    assert files[0] == "_vidseg_done.json" and len(files) == 1 + lost.frames  # live: frames are dropped, so
    assert all(re.fullmatch(r"camera_labels/\d{6}_trainIds\.png", f) for f in files[1:])  # indices have gaps
    record = read_record(kept)  # the unfinished overlay (and its legend) are gone; every PNG is whole
    assert record["frames"] == lost.frames and record["error"].startswith("attempt 1 lost: the worker")
    assert check_record(kept, record["input"], record["options"]).startswith("it ended in an error")
    whole = read_record(Path(ended.folder))
    assert check_record(Path(ended.folder), whole["input"], whole["options"]) is None
    assert (Path(ended.folder) / "camera_overlay.mp4").stat().st_size > 0
    assert not (out / ".staging").exists() and not list(out.rglob("*.part*"))
    saved = report.to_dict()["results"][0]["sessions"]  # the JSON report names both sessions
    assert [(s["attempt"], s["frames"], Path(s["folder"]).name) for s in saved] == [
        (1, lost.frames, kept.name), (2, ended.frames, Path(ended.folder).name)]

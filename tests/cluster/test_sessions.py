"""Live inputs' session folders without Ray: a commit never replaces an earlier session, and a dead attempt's
staging folder keeps only what was finished (no file under a temporary name, no unfinished overlay)."""

from __future__ import annotations

from vidseg.cluster.outputs import staging_dir
from vidseg.cluster.record import check_record, read_record
from vidseg.cluster.sessions import commit_session, find_session, keep_leftovers, keep_lost_attempt, session_name

IDENTITY = {"source": "rtsp://cam/live", "live": True}
OPTIONS = {"save": ["labels", "overlay"], "max_frames": None}
SESSION = "session-20261207T131414Z"


def _dead_attempt(out, name, attempt, pngs):
    """A staging folder as a worker killed mid-stream leaves it: whole PNGs, one mid-write, an unfinished
    overlay and NPZ (temporary names), and the overlay's legend."""
    staging = staging_dir(out, name, attempt)
    (staging / f"{name}_labels").mkdir(parents=True)
    for i in range(pngs):
        (staging / f"{name}_labels" / f"{i:06d}_trainIds.png").write_bytes(b"png%d" % i)
    (staging / f"{name}_labels" / f"{pngs:06d}_trainIds.png.part").write_bytes(b"half")
    (staging / f"{name}_overlay.part.mp4").write_bytes(b"no moov yet")
    (staging / f"{name}_labels.npz.part").write_bytes(b"PK")
    (staging / f"{name}_legend.png").write_bytes(b"legend")
    return staging


def test_a_dead_attempt_keeps_its_whole_label_pngs_as_a_session_and_nothing_half_written(tmp_path):
    out = tmp_path / "out"
    staging = _dead_attempt(out, "cam", 1, pngs=3)
    folder, frames = keep_lost_attempt(out, "cam", 1, SESSION, identity=IDENTITY, options=OPTIONS,
                                       extra={"run_id": "r1", "attempt": 1, "error": "attempt 1 lost: died"})
    assert folder == out / "cam" / SESSION and frames == 3 and not staging.exists()
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == ["_vidseg_done.json", *(f"cam_labels/{i:06d}_trainIds.png" for i in range(3))]
    record = read_record(folder)
    assert record["frames"] == 3 and record["kept"] and record["error"] == "attempt 1 lost: died"
    assert check_record(folder, IDENTITY, OPTIONS).startswith("it ended in an error")  # never read as whole
    assert find_session(out / "cam", SESSION, "r1", 1) == folder and find_session(out / "cam", SESSION, "r1", 2) is None


def test_a_second_session_with_the_same_name_never_replaces_the_first(tmp_path):
    out = tmp_path / "out"
    _dead_attempt(out, "cam", 1, pngs=1)
    first, _ = keep_lost_attempt(out, "cam", 1, SESSION, identity=IDENTITY, options=OPTIONS,
                                 extra={"run_id": "r1", "attempt": 1})
    before = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    second = staging_dir(out, "cam", 2)
    second.mkdir(parents=True)
    (second / "x.png").write_bytes(b"second")
    assert commit_session(second, out / "cam", SESSION) == out / "cam" / f"{SESSION}-2"
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()} == before


def test_an_attempt_that_finished_nothing_leaves_no_session(tmp_path):
    out = tmp_path / "out"
    staging = _dead_attempt(out, "cam", 1, pngs=0)
    assert keep_lost_attempt(out, "cam", 1, SESSION, identity=IDENTITY, options=OPTIONS, extra={}) is None
    assert not staging.exists() and not (out / "cam").exists()
    assert keep_lost_attempt(out, "cam", 2, SESSION, identity=IDENTITY, options=OPTIONS, extra={}) is None


def test_session_names_are_utc_and_sort_by_time():
    import datetime as dt

    east = dt.timezone(dt.timedelta(hours=2))
    assert session_name(dt.datetime(2026, 12, 7, 15, 14, 14, tzinfo=east)) == SESSION
    assert session_name() > SESSION


def test_an_earlier_run_s_unfinished_sessions_are_kept_when_a_new_run_starts(tmp_path):
    out = tmp_path / "out"
    _dead_attempt(out, "cam", 1, pngs=2)
    _dead_attempt(out, "cam", 2, pngs=0)  # nothing whole: nothing kept
    _dead_attempt(out, "cam-b", 1, pngs=1)  # another input's: left alone
    ((folder, frames),) = keep_leftovers(out, "cam", identity=IDENTITY, options=OPTIONS)
    assert folder.parent == out / "cam" and folder.name.startswith("session-") and frames == 2
    assert "earlier run" in read_record(folder)["error"]
    assert sorted(p.name for p in (out / ".staging").iterdir()) == ["cam-b.1"]


def test_the_table_and_the_json_report_name_every_session(monkeypatch, capsys):
    import json

    from vidseg.cluster.report import ClusterReport, InputResult, Session, print_report

    monkeypatch.setenv("COLUMNS", "300")
    sessions = [Session(f"/o/cam/{SESSION}", 1, "w0", 5, "lost: the worker process died (ActorDiedError)"),
                Session(f"/o/cam/{SESSION}-2", 2, "w1", 30, "ended")]
    result = InputResult("cam", "rtsp://cam/live", True, "done", 2, "w1", 30, 1.5, sessions[1].folder,
                         sessions=sessions)
    report = ClusterReport([result], [], "local", "/o", 3.0, 1.0)
    print_report(report)
    assert f"sessions: {SESSION} (5 frames, lost), {SESSION}-2 (30 frames, ended)" in capsys.readouterr().out
    saved = json.loads(json.dumps(report.to_dict()))["results"][0]["sessions"]
    assert [(s["folder"], s["attempt"], s["worker"], s["frames"]) for s in saved] == [
        (f"/o/cam/{SESSION}", 1, "w0", 5), (f"/o/cam/{SESSION}-2", 2, "w1", 30)]

"""The progress view off a terminal: one headline now and then, with the numbers of the snapshot."""

from __future__ import annotations

from vidseg.cluster.progress import ProgressDisplay, Snapshot, WorkerView


def test_headline_lines_off_a_terminal(capsys):
    workers = (WorkerView("w0", "host-a", "n0", "cuda", "busy", "drive3", 120, 61.5),
               WorkerView("w1", "host-b", "n1", "cuda", "idle"))
    snap = Snapshot(total=10, done=4, skipped=2, failed=1, retried=1, running=1, frames=900, fps=88.25,
                    elapsed_s=12.0, workers=workers)
    with ProgressDisplay(every_s=3600.0) as show:
        show(snap)
        show(snap)  # within every_s: not repeated
    err = capsys.readouterr().err.splitlines()
    assert err == ["[    12 s] inputs 6/10 done (2 skipped), 1 failed, 1 retried; 1/2 workers busy; 900 frames, "
                   "88.2 frames/s"]
    with ProgressDisplay(enabled=False) as show:
        show(snap)
    assert capsys.readouterr().err == ""

"""Many videos and cameras across GPUs and hosts, on Ray (the optional ``cluster`` extra).

    from vidseg.cluster import run
    report = run(["clips/", "rtsp://cam-7/stream"], EngineConfig(), out="results", save=("labels",),
                 address="auto", resume=True)
    for r in report.results:                   # InputResult: name, status, attempts, worker, frames, error, ...
        ...

Modules, one job each: inputs (expanding files, folders, globs, manifests, URLs), naming (credential-free
names), record (completion records and --resume), outputs (staging folders, the atomic rename), jobs
(what crosses the driver/worker boundary), worker (one Engine per actor), connect (Ray, imported lazily),
driver (scheduling, retries), progress, report, cli.
"""

from __future__ import annotations

# Nothing below imports Ray or torch: they are imported when a run starts (connect.py) and by workers.
from vidseg.cluster.driver import ClusterRun, run
from vidseg.cluster.inputs import ClusterInput, expand_inputs
from vidseg.cluster.report import ClusterReport, InputResult

__all__ = ["run", "ClusterRun", "ClusterInput", "expand_inputs", "InputResult", "ClusterReport"]

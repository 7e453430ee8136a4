"""Many videos and cameras across GPUs and hosts, on Ray (the optional ``cluster`` extra).

    from vidseg.cluster import run
    report = run(["clips/", "rtsp://cam-7/stream"], EngineConfig(), out="results", save=("labels",),
                 address="auto", resume=True)
    for r in report.results:                   # InputResult: name, status, attempts, worker, frames, error, ...
        ...

Modules, one job each: inputs (expanding files, folders, globs, manifests, URLs), naming (credential-free
names), record (completion records and --resume), outputs (staging folders, the atomic rename, sinks), jobs
(what crosses the driver/worker boundary), worker (one Engine per actor), connect (Ray, imported lazily),
driver (scheduling, retries), progress, report, cli. Ray is imported only when a run starts.
"""

from __future__ import annotations

import importlib

__all__ = ["run", "ClusterRun", "ClusterInput", "expand_inputs", "InputResult", "ClusterReport"]

_LAZY = {
    "run": ("vidseg.cluster.driver", "run"),
    "ClusterRun": ("vidseg.cluster.driver", "ClusterRun"),
    "ClusterInput": ("vidseg.cluster.inputs", "ClusterInput"),
    "expand_inputs": ("vidseg.cluster.inputs", "expand_inputs"),
    "InputResult": ("vidseg.cluster.report", "InputResult"),
    "ClusterReport": ("vidseg.cluster.report", "ClusterReport"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'vidseg.cluster' has no attribute {name!r}")

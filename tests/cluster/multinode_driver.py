"""The driver of test_multinode, run in a process of its own (as `vidseg-run --cluster HOST:PORT` would be):
joins the two-node cluster, runs every clip of a folder with one worker per node, kills the second node once its
worker is mid-input (every process of it at once, as when a host is lost: the `ray start` process group and
every process descended from it, the workers included), and writes the report, with what it killed, as JSON.

    python multinode_driver.py ADDRESS FOLDER OUT NODE_PGID REPORT
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import ray
from cluster_tiny import slow_tiny

from vidseg.cluster import ClusterRun
from vidseg.config import EngineConfig


def main(address: str, folder: str, out: str, node_pgid: int, report_path: str) -> None:
    ray.init(address=address, log_to_driver=False)
    deadline = time.monotonic() + 180
    while sum(n["Alive"] for n in ray.nodes()) < 2:
        if time.monotonic() > deadline:
            raise TimeoutError("the second node did not join within 180 s")
        time.sleep(0.5)
    head = ray.get_runtime_context().get_node_id()
    second = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] != head)
    killed: list[str] = []

    def kill_the_second_node(snapshot) -> None:
        for worker in snapshot.workers:
            if not killed and worker.state == "busy" and worker.node == second and worker.frames >= 2:
                for pid in _node_processes(node_pgid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                killed.append(worker.input)

    config = EngineConfig(device="cpu", backend="torch", method="per-frame")
    report = ClusterRun([folder], config, out=out, workers=2, model_factory=slow_tiny,
                        progress=kill_the_second_node, poll_s=0.2).run()
    Path(report_path).write_text(json.dumps({**report.to_dict(), "killed": killed, "second_node": second}))


def _node_processes(pgid: int) -> set[int]:
    """The processes of process group pgid and all their descendants (workers start their own groups)."""
    parent, group = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parent[int(entry.name)], group[int(entry.name)] = int(fields[1]), int(fields[2])
    found = {pid for pid, g in group.items() if g == pgid}
    while True:
        more = {pid for pid, ppid in parent.items() if ppid in found} - found
        if not more:
            return found
        found |= more


if __name__ == "__main__":
    address, folder, out, pgid, path = sys.argv[1:]
    main(address, folder, out, int(pgid), path)

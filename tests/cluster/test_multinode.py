"""A real two-node Ray cluster on this machine: a head (`ray start --head`) and a second node (`ray start
--address`), one CPU each, one worker on each. The second node is killed mid-input; its input must be finished
by the other node, exactly once.

The nodes are separate process trees started here with a token of their own; teardown ends exactly those
processes (found by that token in their environment), never other Ray instances on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

ray = pytest.importorskip("ray")

from cluster_helpers import assert_complete_once, worker_pythonpath  # noqa: E402

pytestmark = pytest.mark.slow
START_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        time.sleep(0.5)


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _pids_with(token: str) -> list[int]:
    """Processes whose environment holds our token: every process of this test's cluster, and only those."""
    pids = []
    needle = f"RAY_AUTH_TOKEN={token}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
    return pids


def _end(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.fixture
def two_nodes():
    token, port = uuid.uuid4().hex, _free_port()
    temp = Path(tempfile.mkdtemp(prefix="vsray-", dir="/tmp"))  # short: Ray's socket paths must stay < 108 chars
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "PYTHONPATH": worker_pythonpath()}
    log = open(temp / "nodes.log", "w")  # noqa: SIM115 - closed in teardown
    common = {"env": env, "start_new_session": True, "stdout": log, "stderr": subprocess.STDOUT}
    procs = [subprocess.Popen(["ray", "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                               "--num-cpus", "1", "--include-dashboard=false", "--temp-dir", str(temp), "--block"],
                              **common)]
    try:
        _wait(lambda: _port_open(port), START_TIMEOUT_S, "the head node did not start")
        procs.append(subprocess.Popen(["ray", "start", "--address", f"127.0.0.1:{port}", "--node-ip-address",
                                       "127.0.0.1", "--num-cpus", "1", "--block"], **common))
        yield SimpleNamespace(address=f"127.0.0.1:{port}", env=env, node=procs[1], log=temp / "nodes.log")
    finally:
        for proc in reversed(procs):
            _end(proc)
        for pid in _pids_with(token):  # workers live in process groups of their own
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_a_node_killed_mid_input_loses_only_that_attempt(two_nodes, make_clips, tmp_path):
    names = [f"drive{i}" for i in range(6)]
    folder, out, path = make_clips(names, frames=20), tmp_path / "out", tmp_path / "report.json"
    driver = subprocess.run([sys.executable, str(Path(__file__).with_name("multinode_driver.py")),
                             two_nodes.address, str(folder), str(out), str(two_nodes.node.pid), str(path)],
                            env=two_nodes.env, capture_output=True, text=True, timeout=420)
    assert driver.returncode == 0, driver.stderr[-3000:]
    report = json.loads(path.read_text())
    assert report["killed"], "the second node's worker was never seen mid-input"
    assert len({w["node_id"] for w in report["workers"]}) == 2  # one worker on each node
    status = {r["name"]: r for r in report["results"]}
    assert {r["status"] for r in status.values()} == {"done"}, [(r["name"], r["error"]) for r in status.values()]
    victim = status[report["killed"][0]]
    assert victim["attempts"] == 2 and len(victim["retries"]) == 1, victim
    assert all(r["attempts"] == 1 for name, r in status.items() if name != victim["name"])
    assert_complete_once(out, {name: 20 for name in names})

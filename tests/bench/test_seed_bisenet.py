"""benchmarks/seed_bisenet.py runs end to end: the seed in a process of its own, vidseg's torch engine beside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_small_run_writes_its_record(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "seed_bisenet.py"), "--res", "64x128", "--frames",
                    "1", "--rounds", "2", "--engines", "torch", "--out", str(tmp_path), "--stem", "s"],
                   check=True, env=env, cwd=tmp_path, timeout=600, capture_output=True)
    record = json.loads((tmp_path / "s.json").read_text())
    rows = {row["engine"]: row for row in record["rows"]}
    assert set(rows) == {"seed", "torch"}
    assert rows["torch"]["labels_same_as_seed_fp32"] == 1.0  # same weights, same labels
    assert rows["seed"]["ms_p50"] > 0 and rows["torch"]["ms_p50"] > 0
    assert "seed / engine" in (tmp_path / "s.md").read_text()

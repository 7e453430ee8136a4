"""benchmarks/kernels.py runs end to end (CPU interpreter smoke mode) and writes its JSON and markdown."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "kernels.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmarks_kernels", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_writes_results(bench, kernels, device, tmp_path):
    if device != "cpu":
        pytest.skip("the smoke mode is the CPU interpreter")
    report = bench.main(["--device", "cpu", "--interpret", "--iters", "1", "--out", str(tmp_path / "k.json")])
    on_disk = json.loads((tmp_path / "k.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert on_disk["environment"]["smoke"] is True
    assert {row["op"] for row in on_disk["rows"]} == {"warp", "creff"}
    for row in on_disk["rows"]:
        assert "target" not in row  # no targets judged on interpreter timings
        impls = {"reference", "fused"} | ({"unfold"} if row["op"] == "creff" else set())
        assert set(row["results"]) == impls
        for res in row["results"].values():
            assert res["status"] == "ok" and res["median_ms"] > 0 and res["max_abs_err"] < 1e-5
    markdown = (tmp_path / "k.md").read_text()
    assert "Smoke run" in markdown and "| creff | smoke" in markdown


def test_unfold_composition_is_creff(bench):
    import torch

    from vidseg.kernels import reference

    q, k, v, r = torch.randn(4, 2, 3, 7, 9).unbind(0)
    torch.testing.assert_close(bench.unfold_creff(q, k, v, r, 5), reference.creff(q, k, v, r, 5))


def test_cpu_needs_the_interpreter(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--device", "cpu"])

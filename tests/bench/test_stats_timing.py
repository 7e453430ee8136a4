import pytest
import torch

from vidseg.bench.stats import paired_ratio, summarize
from vidseg.bench.timing import interleave, time_calls, warm_up


def test_summarize_quantiles_and_empty():
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s.n == 5 and s.p50 == 3.0 and s.min == 1.0 and s.max == 5.0
    assert s.q20 == pytest.approx(1.8) and s.p99 == pytest.approx(4.96)
    assert summarize([]).n == 0


def test_paired_ratio_uses_rounds_not_means():
    # B is exactly twice as fast in every round although absolute times drift 10x.
    a = [1.0, 2.0, 10.0]
    b = [0.5, 1.0, 5.0]
    r = paired_ratio(a, b)
    assert r.median == pytest.approx(2.0) and r.q20 == pytest.approx(2.0) and r.rounds == 3
    assert "2.00x" in str(r)


def test_interleave_alternates():
    order = []
    out = interleave({"a": lambda: order.append("a") or 1.0, "b": lambda: order.append("b") or 2.0}, 3)
    assert order == ["a", "b"] * 3 and out == {"a": [1.0] * 3, "b": [2.0] * 3}


def test_warm_up_stops_when_stable():
    times = iter([5.0, 3.0, 1.0, 1.01, 1.0, 1.0])
    assert warm_up(lambda: next(times), tol=0.05) == 4


def test_time_calls_cpu_measures_each_call():
    per_call, wall = time_calls([lambda: sum(range(1000)), lambda: torch.ones(10).sum()], torch.device("cpu"))
    assert len(per_call) == 2 and all(t >= 0 for t in per_call) and wall >= sum(per_call) * 0.5

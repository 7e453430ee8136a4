import pytest

from vidseg.bench.harness import BenchCase, Comparison, ModelOnly, compare, gmacs_per_frame
from vidseg.bench.suites import SUITES, custom_cases, derive_comparisons, get_suite
from vidseg.errors import ConfigError


@pytest.mark.parametrize("name", list(SUITES))
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_suites_are_consistent(name, device):
    suite = get_suite(name, device)
    names = [c.name for c in suite.cases]
    assert len(names) == len(set(names)), "case names must be unique"
    for case in suite.cases:
        if case.method != "per-frame":
            assert suite.round_frames % case.keyframe_interval == 0, case.name  # whole GOPs per round
    for ref in (*suite.e2e, *suite.accuracy, *(t.case for t in suite.targets),
                *(t.baseline for t in suite.targets if t.baseline)):
        assert ref in names, ref
    for comp in suite.comparisons:
        assert comp.baseline in names and comp.case in names and comp.baseline != comp.case


def test_default_cuda_suite_covers_engines_and_precisions():
    suite = get_suite("default", "cuda")
    assert suite.res == (1024, 2048)
    assert {c.backend for c in suite.cases} >= {"torch", "compile", "onnx"}
    whats = " ".join(c.what for c in suite.comparisons)
    for expected in ("arseg over per-frame", "flowwarp over per-frame", "compiled over eager", "fp16 over fp32"):
        assert expected in whats


def test_derive_comparisons_pairs_one_difference():
    pf, ar = BenchCase("demo"), BenchCase("demo", "arseg")
    pf16 = BenchCase("demo", precision="fp16")
    comps = {(c.baseline, c.case) for c in derive_comparisons([pf, ar, pf16])}
    assert comps == {(pf.name, ar.name), (pf.name, pf16.name)}


def test_custom_cases_adds_baselines_and_skips_unsupported_methods():
    cases = custom_cases(["gsvnet-swiftnet18"], ["arseg", "flowwarp"], ["onnx"], ["fp32"])
    names = {c.name for c in cases}
    assert "gsvnet-swiftnet18 flowwarp onnx fp32 L3 s0.5" in names  # what was asked
    assert "gsvnet-swiftnet18 per-frame onnx fp32" in names  # its per-frame baseline
    assert "gsvnet-swiftnet18 flowwarp torch fp32 L3 s0.5" in names  # its eager twin
    assert not any(c.method == "arseg" for c in cases)
    with pytest.raises(ConfigError):
        custom_cases(["swiftnet18"], ["arseg"], ["torch"], ["fp32"])


def test_arseg_psp18_gmacs_saving_matches_the_seed():
    # AR-Seg: ~67 % fewer GMACs than per-frame PSPNet-18 at L=12, scale 0.5 (counted on the meta device).
    pf = gmacs_per_frame(BenchCase("arseg-psp18-cityscapes"), (1024, 2048), 12)
    ar = gmacs_per_frame(BenchCase("arseg-psp18-cityscapes", "arseg"), (1024, 2048), 12)
    assert pf == pytest.approx(540.0, abs=0.1)
    assert 1 - ar / pf == pytest.approx(0.67, abs=0.02)


def test_compare_uses_paired_rounds_not_totals():
    base, case = BenchCase("a"), BenchCase("b", "arseg")
    a, b = ModelOnly(base, round_s=[1.0, 1.0, 10.0], gmacs=4.0), ModelOnly(case, round_s=[0.5, 0.5, 9.0], gmacs=1.0)
    (row,) = compare({base.name: a, case.name: b}, [Comparison(base.name, case.name, "b over a")])
    # per-round ratios 2, 2, 1.11 -> median 2; the ratio of totals would be 12 / 10 = 1.2
    assert row["speedup"]["median"] == pytest.approx(2.0)
    assert row["gmacs_predicted"] == pytest.approx(4.0) and row["realised"] == pytest.approx(0.5)


def test_random_weights_are_the_same_in_every_run_so_artifacts_are_reused():
    import torch

    from vidseg.bench.harness import build_bench_model
    from vidseg.export.cache import stage_fingerprint

    case = BenchCase("psp18-camvid")
    torch.manual_seed(1)
    first, notes = build_bench_model(case)
    torch.manual_seed(2)  # another caller state: the bench's weights must not depend on it
    second, _ = build_bench_model(case)
    assert "random weights" in notes[0]
    assert stage_fingerprint(first.stages()["key"]) == stage_fingerprint(second.stages()["key"])
    assert torch.initial_seed() == 2  # the caller's generator is left as it was


def test_a_model_whose_weights_do_not_load_is_timed_with_random_weights(monkeypatch):
    import vidseg.engine.engine as engine_module
    from vidseg.bench.harness import build_bench_model
    from vidseg.errors import CheckpointError

    def broken(config):
        raise CheckpointError("demo.pt: missing keys")

    monkeypatch.setattr(engine_module, "load_model", broken)
    model, notes = build_bench_model(BenchCase("psp18-camvid"))  # its builder takes no `pretrained`
    assert model.spec.name == "psp18-camvid" and not model.training
    assert "random weights" in notes[0] and "missing keys" in notes[0]

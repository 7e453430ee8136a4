"""AOTInductor: one tiny stage compiled (about 40 s on 2 cores), run by the runner and by a bare process."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import pytest
import torch

from vidseg.config import EngineConfig
from vidseg.engine.backends.base import runner_class
from vidseg.errors import ConfigError
from vidseg.export.builder import ArtifactBuilder, BuildRequest
from vidseg.export.cache import ArtifactCache
from vidseg.export.validate import validation_frames

H, W = 32, 48


@pytest.mark.slow
def test_aoti_package_runs_in_the_runner_and_without_vidseg(tiny_stages, tmp_path):
    config = EngineConfig(backend="aoti", device="cpu", cache_dir=str(tmp_path))
    runner = runner_class("aoti")({"nonkey": tiny_stages["nonkey"]}, config, (H, W), torch.device("cpu"))
    image = validation_frames(H, W, count=1)
    feats = torch.randn(1, 8, H // 4, W // 4)
    motion = torch.randn(1, 2, H // 4, W // 4)
    out = runner.run("nonkey", {"image": image, "key_features": feats, "motion": motion})
    with torch.no_grad():
        want_logits, want_feats = tiny_stages["nonkey"](image, feats, motion)
    torch.testing.assert_close(out["logits"], want_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out["features"], want_feats, atol=1e-4, rtol=1e-4)
    assert "AOTInductor" in runner.describe()

    # Cached: a second request is a hit, no compilation.
    lines = []
    request = BuildRequest("aoti", (H, W), model_name="demo")
    artifact = ArtifactBuilder(request, ArtifactCache(tmp_path, log=lines.append)).build(tiny_stages, ["nonkey"])
    path = artifact["nonkey"].path
    assert artifact["nonkey"].details is None and lines == [f"cache: using {path}"]

    # A portable package needs no vidseg code: a fresh interpreter loads and runs it with torch alone.
    request = dataclasses.replace(request, portable=True)
    path = ArtifactBuilder(request, ArtifactCache(tmp_path)).build(tiny_stages, ["nonkey"])["nonkey"].path
    torch.save((image, feats, motion), tmp_path / "inputs.pt")
    script = textwrap.dedent(f"""
        import sys, torch
        package = torch._inductor.aoti_load_package({str(path)!r})
        logits, features = package(*torch.load({str(tmp_path / "inputs.pt")!r}))
        assert not [m for m in sys.modules if m.startswith("vidseg")]
        torch.save(logits, {str(tmp_path / "logits.pt")!r})
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, timeout=300)
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), want_logits, atol=1e-4, rtol=1e-4)


def test_aoti_refuses_reduced_precision_on_cpu(tiny_stages, tmp_path):
    config = EngineConfig(backend="aoti", device="cpu", precision="fp16", cache_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        runner_class("aoti")({"key": tiny_stages["key"]}, config, (H, W), torch.device("cpu"))
    with pytest.raises(ConfigError, match="int8"):
        runner_class("aoti")({"key": tiny_stages["key"]}, config.replace(precision="int8"), (H, W), torch.device("cpu"))


@pytest.mark.slow  # one AOTInductor compilation
def test_cpu_package_computes_3x3_convolutions_by_winograd_and_matches_the_direct_stage(tiny_stages, tmp_path,
                                                                                        monkeypatch):
    from vidseg.export.aoti import compile_aoti, load_aoti
    from vidseg.kernels import winograd

    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)  # the tiny model's layers are narrower than pays

    stage = tiny_stages["refine"]  # its `mix` is a 3x3 stride-1 convolution
    lines = []
    report = compile_aoti(stage, tmp_path / "refine.pt2", H, W, stage_name="refine", log=lines.append)
    assert any("Winograd F(4x4, 3x3)" in line for line in lines)
    assert report.validation.passed  # against the direct convolution of the unmodified stage
    inputs = [torch.randn(s) if d.is_floating_point else validation_frames(H, W, count=1)
              for s, d in stage.input_shapes(H, W).values()]
    with torch.no_grad():
        (want,) = stage(*inputs)
    (got,) = load_aoti(tmp_path / "refine.pt2")(*inputs)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert type(stage.mix) is torch.nn.Conv2d  # the caller's stage is left as it was


def test_cpu_packages_are_keyed_by_their_convolution_algorithm_and_creff_lowering(tiny_stages, tmp_path):
    cache = ArtifactCache(tmp_path)
    cpu = ArtifactBuilder(BuildRequest("aoti", (H, W), model_name="demo"), cache)._key("refine", tiny_stages["refine"],
                                                                                         "aoti")
    assert cpu.fields["conv"] == "winograd-f4x4-c128-realize_reads_threshold=1"  # the Inductor options too
    assert cpu.fields["creff"] == "cpu-kernels"  # packages built from the composition are not reused
    portable = ArtifactBuilder(BuildRequest("aoti", (H, W), model_name="demo", portable=True), cache)
    assert portable._key("refine", tiny_stages["refine"], "aoti").fields["creff"] == "channels-last"
    onnx = ArtifactBuilder(BuildRequest("onnx", (H, W), model_name="demo"), cache)._key("refine",
                                                                                         tiny_stages["refine"], "onnx")
    assert onnx.fields["creff"] == "channels-last"


def test_cpu_packages_call_the_cpu_kernels_with_channels_last_inputs(tiny_stages):
    """What a default CPU package is compiled from: the graph keeps vidseg::warp and vidseg::creff, each fed
    channels-last tensors (the layout its CPU kernel reads fast), while a portable one decomposes them."""
    from vidseg.export.program import export_stage, remaining_custom_ops
    from vidseg.kernels.layout import memory_format_of

    stage = tiny_stages["nonkey"].eval()
    kept = export_stage(stage, H, W, kernel_ops=True)
    calls = [n for n in kept.graph.nodes if n.op == "call_function" and getattr(n.target, "namespace", "") == "vidseg"]
    assert sorted(str(n.target) for n in calls) == ["vidseg.creff.default", "vidseg.warp.default"]
    for node in calls:
        features = node.args[:1] if "warp" in str(node.target) else node.args[:4]
        assert all(memory_format_of(a.meta["val"]) == torch.channels_last for a in features), node
    assert remaining_custom_ops(export_stage(stage, H, W)) == []
    args = stage.example_inputs(H, W)
    with torch.no_grad():
        for got, want in zip(kept.module()(*args), stage(*args), strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)

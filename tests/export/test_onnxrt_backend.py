"""The onnx backend on CPU: same labels as the PyTorch stages, explicit providers, checked bindings."""

from __future__ import annotations

import pytest
import torch

from vidseg.config import EngineConfig
from vidseg.engine.backends.base import runner_class
from vidseg.engine.backends.onnxrt import OnnxRuntimeRunner
from vidseg.errors import BackendUnavailable, ConfigError, ShapeError
from vidseg.export.cache import ArtifactCache
from vidseg.export.validate import validation_frames

H, W = 32, 48
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_stages(tiny_model_class):
    """One model for the module (its four stages are exported once, into one cache)."""
    torch.manual_seed(0)
    return {name: stage.eval() for name, stage in tiny_model_class().eval().stages().items()}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def runner(tiny_stages, cache_dir):
    config = EngineConfig(backend="onnx", device="cpu", cache_dir=str(cache_dir))
    r = runner_class("onnx")(tiny_stages, config, (H, W), CPU)
    yield r
    r.close()


def _labels_agree(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.argmax(1) == b.argmax(1)).float().mean().item()


def test_runner_matches_torch_stages_through_a_keyframe_cycle(runner, tiny_stages):
    assert isinstance(runner, OnnxRuntimeRunner)
    frames = validation_frames(H, W, count=3)
    key = runner.run("key", {"image": frames[:1]})
    with torch.no_grad():
        want_logits, want_feats = tiny_stages["key"](frames[:1])
    assert _labels_agree(key["logits"], want_logits) >= 0.999
    torch.testing.assert_close(key["features"], want_feats, atol=1e-4, rtol=1e-4)

    motion = torch.randn(1, 2, H // 4, W // 4)  # outputs of one stage feed the next, by name
    nonkey = runner.run("nonkey", {"image": frames[1:2], "key_features": key["features"], "motion": motion})
    flow = runner.run("flow", {"image": frames[2:3], "ref_image": frames[1:2]})
    refine = runner.run("refine", {"image": frames[2:3], "prev_logits": nonkey["logits"], "flow": flow["flow"]})
    with torch.no_grad():
        want_nonkey = tiny_stages["nonkey"](frames[1:2], key["features"], motion)
        want_flow = tiny_stages["flow"](frames[2:3], frames[1:2])
        want_refine = tiny_stages["refine"](frames[2:3], nonkey["logits"], flow["flow"])
    assert _labels_agree(nonkey["logits"], want_nonkey[0]) >= 0.999
    assert _labels_agree(refine["logits"], want_refine[0]) >= 0.999
    torch.testing.assert_close(flow["flow"], want_flow[0], atol=1e-4, rtol=1e-4)
    assert set(refine) == {"logits"} and refine["logits"].dtype == torch.float32


def test_describe_names_the_provider_actually_used(runner):
    assert runner.active_providers == ["CPUExecutionProvider"]
    assert "providers CPUExecutionProvider" in runner.describe()


def test_second_runner_reuses_cached_artifacts(tiny_stages, cache_dir, runner):
    lines = []
    cache = ArtifactCache(runner.cache.root, log=lines.append)
    config = EngineConfig(backend="onnx", device="cpu", cache_dir=str(cache_dir))
    OnnxRuntimeRunner(tiny_stages, config, (H, W), CPU, cache=cache)
    assert lines and all(line.startswith("cache: using") for line in lines)


def test_dynamic_batch_runner(tiny_stages, cache_dir):
    config = EngineConfig(backend="onnx", device="cpu", cache_dir=str(cache_dir), batch=2)
    r = OnnxRuntimeRunner({"key": tiny_stages["key"]}, config, (H, W), CPU)
    frames = validation_frames(H, W, count=2)
    for n in (2, 1):
        out = r.run("key", {"image": frames[:n]})
        assert out["logits"].shape == (n, 5, H // 4, W // 4)


def test_wrong_input_dtype_or_missing_input_is_refused(runner):
    with pytest.raises(ShapeError, match="must be uint8"):
        runner.run("key", {"image": torch.zeros(1, 3, H, W)})
    with pytest.raises(ShapeError, match="was built for"):
        runner.run("key", {"image": torch.zeros(1, 3, H * 2, W, dtype=torch.uint8)})
    with pytest.raises(ShapeError, match="needs input 'ref_image'"):
        runner.run("flow", {"image": torch.zeros(1, 3, H, W, dtype=torch.uint8)})


def test_unavailable_or_mismatched_providers_are_errors_not_fallbacks(tiny_stages, tmp_path):
    config = EngineConfig(backend="onnx", device="cpu", cache_dir=str(tmp_path))
    with pytest.raises(BackendUnavailable, match="has no TensorrtExecutionProvider"):
        OnnxRuntimeRunner(tiny_stages, config, (H, W), CPU, providers=["TensorrtExecutionProvider"])
    with pytest.raises(ConfigError, match="needs the TensorRT execution provider"):
        OnnxRuntimeRunner(tiny_stages, config.replace(precision="fp16"), (H, W), CPU)
    with pytest.raises(ConfigError, match="int8"):
        OnnxRuntimeRunner(tiny_stages, config.replace(precision="int8"), (H, W), CPU)


def test_artifact_with_other_bindings_is_refused(tiny_stages, cache_dir, runner, monkeypatch):
    """A cached graph whose bindings differ from the stage's declared names fails at load, by name."""
    stage = tiny_stages["flow"]
    monkeypatch.setattr(type(stage), "output_names", ("motion",))  # the cached graph still says "flow"
    config = EngineConfig(backend="onnx", device="cpu", cache_dir=str(cache_dir))
    with pytest.raises(ShapeError, match="declares"):
        OnnxRuntimeRunner({"flow": stage}, config, (H, W), CPU)


def test_cpu_sessions_take_no_more_threads_than_torch_may_use():
    # The process's compute budget (vidseg-run's thread budget, vidseg-bench --threads) is torch's thread count;
    # ONNX Runtime must not run on more cores than that (nor on more than the physical cores).
    from vidseg.device import physical_cores
    from vidseg.export.ort_session import session_options

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert session_options(on_cpu=True).intra_op_num_threads == 1
        torch.set_num_threads(physical_cores() + 3)
        assert session_options(on_cpu=True).intra_op_num_threads == physical_cores()
    finally:
        torch.set_num_threads(before)

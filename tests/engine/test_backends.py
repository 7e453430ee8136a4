"""Backends: eager precisions and layouts, torch.compile, backend selection; CUDA checks marked `cuda`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_tiny import TinyModel, make_frames

from vidseg.config import EngineConfig
from vidseg.device import resolve_device
from vidseg.engine.backends import auto_candidates, build_runner
from vidseg.engine.backends.base import runner_class
from vidseg.engine.backends.eager import EagerRunner
from vidseg.engine.engine import Engine
from vidseg.errors import BackendUnavailable, ConfigError


def labels_of(method: str, frames, **config) -> list[np.ndarray]:
    config = {"method": method, "device": "cpu", "keyframe_interval": 4, "channels_last": False, **config}
    return [r.labels for r in Engine(EngineConfig(**config), model=TinyModel()).run(frames)]


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([np.mean(x == y) for x, y in zip(a, b, strict=True)]))


def test_eager_keeps_uint8_images_and_names():
    model = TinyModel()
    stages = model.stages()
    runner = EagerRunner(stages, EngineConfig(device="cpu", channels_last=False), (64, 96), torch.device("cpu"))
    image = torch.from_numpy(make_frames(1)[0]).permute(2, 0, 1)[None].contiguous()
    out = runner.run("key", {"image": image})
    assert set(out) == {"logits", "features"} and out["logits"].dtype == torch.float32
    assert "torch on cpu (fp32)" == runner.describe()


@pytest.mark.parametrize("method", ["per-frame", "arseg", "flowwarp"])
def test_channels_last_gives_the_same_labels(method):
    frames = make_frames(6)
    assert agreement(labels_of(method, frames), labels_of(method, frames, channels_last=True)) > 0.999


def test_bf16_autocast_on_cpu_agrees_with_fp32():
    frames = make_frames(6)
    assert agreement(labels_of("flowwarp", frames), labels_of("flowwarp", frames, precision="bf16")) > 0.95


def test_int8_is_refused_outside_tensorrt():
    with pytest.raises(ConfigError, match="TensorRT"):
        EagerRunner(TinyModel().stages(), EngineConfig(precision="int8", device="cpu"), (64, 96), torch.device("cpu"))


@pytest.mark.auto_backend
def test_auto_measures_the_engines_here_keeps_the_fastest_and_caches_the_decision(tmp_path):
    assert auto_candidates(torch.device("cpu")) == ("torch", "onnx", "aoti")
    assert auto_candidates(torch.device("cuda"))[:3] == ("trt", "compile", "torch")
    config = EngineConfig(backend="auto", device="cpu", cache_dir=str(tmp_path))
    stages = TinyModel().stages()
    mix = {"key": 0.25, "nonkey": 0.75}
    # A first run starts at once: ONNX and AOTInductor, minutes to build on a CPU, are tried once built.
    first = build_runner(config, stages, (64, 96), torch.device("cpu"), mix=mix)
    assert first.runner.name == "torch" and first.choice.ms_per_frame == {}  # the only one ready: not timed
    assert "the only engine ready" in first.choice.describe()
    assert any(s.startswith("onnx: its artifacts") and "--engine onnx" in s for s in first.choice.skipped)
    build_runner(config.replace(backend="onnx"), stages, (64, 96), torch.device("cpu")).runner.close()
    built = build_runner(config, stages, (64, 96), torch.device("cpu"), mix=mix)
    choice = built.choice
    assert set(choice.ms_per_frame) == {"torch", "onnx"} and not choice.cached
    assert built.runner.name == choice.backend == min(choice.ms_per_frame, key=choice.ms_per_frame.get)
    assert "auto chose" in choice.describe() and "measured now" in choice.describe()
    again = build_runner(config, stages, (64, 96), torch.device("cpu"), mix=mix)
    assert again.choice.cached and again.runner.name == choice.backend
    assert again.choice.ms_per_frame == pytest.approx(choice.ms_per_frame)


@pytest.mark.auto_backend
def test_auto_picks_the_faster_engine_and_skips_one_that_fails(tmp_path, monkeypatch):
    """Stand-in engines with known speeds: the choice follows the timing, not a fixed order."""
    import time

    from vidseg.engine.backends import auto
    from vidseg.engine.backends.base import Runner
    from vidseg.errors import BackendUnavailable

    def engine(name: str, delay: float):
        class Stub(Runner):
            def run(self, stage, inputs):
                time.sleep(delay)
                return {}

        Stub.name = name
        return Stub

    class Broken(Runner):
        def __init__(self, *args, **kwargs):
            raise BackendUnavailable("this engine is not installed")

        def run(self, stage, inputs):
            raise AssertionError("never built")

    classes = {"torch": engine("torch", 0.02), "onnx": engine("onnx", 0.002), "compile": Broken}
    monkeypatch.setattr(auto, "runner_class", classes.__getitem__)
    runner, choice = auto.choose_runner(EngineConfig(device="cpu", cache_dir=str(tmp_path)), TinyModel().stages(),
                                        (64, 96), torch.device("cpu"), {"key": 1.0},
                                        candidates=("torch", "compile", "onnx"))
    assert runner.name == choice.backend == "onnx"  # the faster one, though torch comes first in the order
    assert choice.ms_per_frame["torch"] > choice.ms_per_frame["onnx"]
    assert choice.skipped == ("compile: this engine is not installed",)


def test_named_backends_go_through_runner_class():
    assert runner_class("torch") is EagerRunner
    with pytest.raises(ConfigError, match="unknown backend"):
        runner_class("tflite")


def test_cuda_without_a_gpu_is_unavailable(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.slow
def test_a_bare_cuda_device_names_the_current_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert resolve_device("cuda") == resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)


def test_a_compile_failure_leaves_the_shared_weights_as_they_were(monkeypatch):
    """The compile backend casts the (shared) stage weights for fp16; when compiling then fails, --engine auto
    goes on to the next backend, which must get the fp32 weights back, bit for bit."""
    from vidseg.engine.backends.compiled import CompiledRunner

    def fail(self):
        raise BackendUnavailable("compiler failed (test)")

    monkeypatch.setattr(CompiledRunner, "warm_up", fail)
    model = TinyModel()
    stages = model.stages()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = EngineConfig(method="arseg", device="cpu", precision="fp16", backend="compile")
    with pytest.raises(BackendUnavailable, match="compiler failed"):
        CompiledRunner(stages, config, (64, 96), torch.device("cpu"), cast=True)
    after = model.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())


def test_compile_backend_matches_eager():
    """The one torch.compile run (~45 s on 2 cores): the per-frame key stage of the tiny model."""
    frames = make_frames(3)
    try:
        compiled = labels_of("per-frame", frames, backend="compile")
    except BackendUnavailable as err:
        pytest.skip(f"torch.compile unavailable here: {err}")
    eager = labels_of("per-frame", frames)
    assert agreement(compiled, eager) > 0.999


# --- CUDA -----------------------------------------------------------------------------------------------------
@pytest.mark.cuda
def test_cuda_fp16_agrees_with_fp32():
    frames = make_frames(8, height=128, width=192)
    fp32 = labels_of("arseg", frames, device="cuda")
    fp16 = labels_of("arseg", frames, device="cuda", precision="fp16")
    assert agreement(fp32, fp16) >= 0.995


@pytest.mark.cuda
@pytest.mark.parametrize("method", ["per-frame", "arseg", "flowwarp"])
def test_cuda_stream_pipeline_matches_a_synchronous_loop(method):
    """The streamed pipeline (copy stream, compute stream, async label copies) gives the labels of a plain
    synchronous loop over the same CUDA stages."""
    frames = make_frames(10, height=128, width=192)
    model = TinyModel()
    engine = Engine(EngineConfig(method=method, device="cuda", keyframe_interval=4, channels_last=False), model=model)
    piped = [r.labels for r in engine.run(frames)]
    sync = []
    engine.reset()
    for image in frames:
        sync.append(engine.process_frame(image).labels)
        torch.cuda.synchronize()
    assert agreement(piped, sync) == 1.0


@pytest.mark.cuda
def test_cuda_compile_with_cuda_graphs_keeps_state_outputs():
    frames = make_frames(6, height=128, width=192)
    eager = labels_of("flowwarp", frames, device="cuda")
    graphs = labels_of("flowwarp", frames, device="cuda", backend="compile")
    assert agreement(eager, graphs) > 0.99


@pytest.mark.slow
def test_onnx_backend_through_the_engine_matches_eager(tmp_path):
    """The engine drives another team's Runner by name only: the onnx runner (all four stages exported once,
    ~35 s on 2 cores) gives the eager labels for every method."""
    pytest.importorskip("onnxruntime")
    frames = make_frames(6)
    for method in ("per-frame", "arseg", "flowwarp"):
        onnx = labels_of(method, frames, backend="onnx", cache_dir=str(tmp_path))
        assert agreement(onnx, labels_of(method, frames)) > 0.999, method


def test_eager_runner_warms_every_stage_up_at_build():
    """One-time costs are paid when the runner is built, not on a stream's first frames."""
    stages = TinyModel().eval().stages()
    calls = {name: 0 for name in stages}
    for name, stage in stages.items():
        stage.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    EagerRunner(stages, EngineConfig(), (32, 48), torch.device("cpu"))
    assert calls == {name: 1 for name in stages}
    EagerRunner(stages, EngineConfig(), (32, 48), torch.device("cpu"), warmup=False)
    assert calls == {name: 1 for name in stages}


@pytest.mark.slow
def test_aoti_backend_through_the_engine_matches_eager(tmp_path):
    """--engine aoti: every stage compiled once into an AOTInductor package (cached, ~40 s each on 2 cores),
    then all three methods give the eager labels."""
    frames = make_frames(6)
    for method in ("per-frame", "arseg", "flowwarp"):
        aoti = labels_of(method, frames, backend="aoti", cache_dir=str(tmp_path))
        assert agreement(aoti, labels_of(method, frames)) > 0.999, method

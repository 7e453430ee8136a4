"""The artifact builder on the tiny model: one place exports, validates and stores every format's artifacts, in
the cache (keyed, reused, rebuilt on any change) or an export folder (readable names, always built)."""

from __future__ import annotations

import pytest
import torch

from vidseg.config import EngineConfig
from vidseg.engine.backends.onnxrt import OnnxRuntimeRunner
from vidseg.errors import ConfigError, ExportError
from vidseg.export.builder import ArtifactBuilder, BuildRequest, Calibration
from vidseg.export.cache import ArtifactCache
from vidseg.export.files import ExportFolder

H, W = 32, 48
GPU = ("NVIDIA Fake GPU", "sm_90")


@pytest.fixture
def cache(tmp_path):
    lines = []
    c = ArtifactCache(tmp_path / "cache", log=lines.append)
    c.lines = lines
    return c


def test_onnx_artifacts_are_cached_by_stage_fingerprint(tiny_model, cache):
    stages = tiny_model.stages()
    builder = ArtifactBuilder(BuildRequest("onnx", (H, W), model_name="tiny"), cache)
    built = builder.build(stages, ["flow"])["flow"]
    assert built.path.name.startswith("tiny-flow-32x48-b1-fp32-") and built.details["validation"]["passed"]
    assert built.io.inputs[0].shape == (1, 3, H, W) and built.io.outputs[0].shape == (1, 2, H // 4, W // 4)
    again = builder.build(stages, ["flow"])["flow"]
    assert again.path == built.path and again.details is None and cache.lines[-1] == f"cache: using {built.path}"
    assert again.io.input_names == built.io.input_names and again.io.inputs == built.io.inputs
    with torch.no_grad():
        tiny_model.flow_net[1].weight.mul_(1.5)
    changed = builder.build(stages, ["flow"])["flow"]
    assert changed.path != built.path and changed.details is not None


def test_dynamic_size_is_its_own_artifact(tiny_model, cache):
    request = BuildRequest("onnx", (H, W), model_name="tiny", dynamic_size=True)
    art = ArtifactBuilder(request, cache).build(tiny_model.stages(), ["key"])["key"]
    assert "-32x48-dynhw-" in art.path.name
    assert art.io.inputs[0].shape == (1, 3, "height", "width")
    assert art.details["validation"]["sizes"] == [[H, W], [H + 32, W + 64]]
    hit = ArtifactBuilder(request, cache).build(tiny_model.stages(), ["key"])["key"]
    assert hit.details is None and hit.io.inputs[0].shape == (1, 3, "height", "width")  # declared without a report


def test_export_folder_gets_readable_names_and_always_builds(tiny_model, tmp_path):
    folder = ExportFolder(tmp_path / "out", log=lambda line: None)
    builder = ArtifactBuilder(BuildRequest("onnx", (H, W), model_name="tiny"), folder)
    first = builder.build(tiny_model.stages(), ["key"])["key"]
    assert first.path == tmp_path / "out" / "tiny-key-32x48-b1-fp32.onnx" and first.details is not None
    assert builder.build(tiny_model.stages(), ["key"])["key"].details is not None  # no reuse in a folder
    assert folder.written == [first.path, first.path]
    folder.discard()
    assert list((tmp_path / "out").iterdir()) == []


def test_requests_the_builder_cannot_honour_are_refused_up_front(tiny_model, cache):
    with pytest.raises(ConfigError, match="onnx artifacts come in fp32, not fp16"):
        BuildRequest("onnx", (H, W), precision="fp16")
    with pytest.raises(ConfigError, match="fixed height/width"):
        BuildRequest("trt", (H, W), dynamic_size=True)
    with pytest.raises(ConfigError, match="int8 needs calibration frames"):
        BuildRequest("trt", (H, W), precision="int8")
    with pytest.raises(ConfigError, match="unknown export format 'tflite'"):
        BuildRequest("tflite", (H, W))
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        ArtifactBuilder(BuildRequest("aoti", (H, W), precision="fp16"), cache).build(tiny_model.stages(), ["key"])
    with pytest.raises(ConfigError, match="no stages"):
        ArtifactBuilder(BuildRequest("onnx", (H, W)), cache).build(tiny_model.stages(), ["decoder"])


def test_unwritable_cache_folder_is_one_line_before_any_export(tiny_model, tmp_path):
    (tmp_path / "file").write_text("x")
    config = EngineConfig(backend="onnx", device="cpu", cache_dir=str(tmp_path / "file" / "cache"))
    with pytest.raises(ConfigError) as err:
        OnnxRuntimeRunner(tiny_model.stages(), config, (H, W), torch.device("cpu"))
    message = str(err.value)
    assert "artifact cache folder" in message and "file" in message and "cache_dir" in message
    assert "\n" not in message


# -- TensorRT through the builder, with a stand-in tensorrt module ---------------------------------------------


def test_engines_are_cached_and_rebuilt_on_any_change(tiny_model, cache, fake_trt):
    stages = tiny_model.stages()

    def get(precision="fp16", trt=fake_trt, gpu=GPU, **extra):
        request = BuildRequest("trt", (H, W), precision=precision, model_name="tiny", **extra)
        return ArtifactBuilder(request, cache, trt=trt, gpu=gpu).build(stages, ["key"])["key"]

    first = get()
    assert first.path.name.startswith("tiny-key-32x48-b1-fp16-sm_90-") and first.onnx.suffix == ".onnx"
    assert first.details["tensorrt"] == "10.15.1" and first.io.input_names == ("image",)
    assert get().details is None  # hit
    builds = fake_trt.names().count("build_serialized_network")
    assert get(precision="fp32").details is not None
    assert get(gpu=("NVIDIA Other", "sm_87")).details is not None
    assert get(trt=type(fake_trt)("10.16.0")).details is not None
    assert fake_trt.names().count("build_serialized_network") == builds + 2  # the 10.16 build used its own fake
    first.path.write_bytes(b"PLAN-corrupted")
    assert get().details is not None  # checksum mismatch -> rebuilt, not loaded
    assert len(list((cache.root / "trt").glob("timing-*.cache"))) == 3  # one per (TensorRT, GPU)
    assert ("set_shape", "image", (1, 3, H, W), (1, 3, H, W), (1, 3, H, W)) not in fake_trt.calls  # static


def test_int8_engine_calibrates_on_video_frames_through_the_stage_inputs(tiny_model, cache, fake_trt, gradient_video):
    video = gradient_video(count=8, step=25)
    request = BuildRequest("trt", (H, W), precision="int8", batch=2, model_name="tiny",
                           calibration=Calibration(video, frames=6, stride=1))
    art = ArtifactBuilder(request, cache, trt=fake_trt, gpu=GPU).build(tiny_model.stages(), ["nonkey"])["nonkey"]
    assert fake_trt.calibration_batches == 2 == art.details["calibration_batches"]  # 5 samples -> 2 batches of 2
    assert ("set_flag", "INT8") in fake_trt.calls
    assert ("set_shape", "motion", (1, 2, H // 4, W // 4), (2, 2, H // 4, W // 4), (2, 2, H // 4, W // 4)) in (
        fake_trt.calls
    )
    assert len(list((cache.root / "trt").glob("calib-*.cache"))) == 1
    # another calibration video is another engine
    other = BuildRequest("trt", (H, W), precision="int8", batch=2, model_name="tiny",
                         calibration=Calibration(video, frames=4, stride=1))
    assert ArtifactBuilder(other, cache, trt=fake_trt, gpu=GPU).build(tiny_model.stages(), ["nonkey"])[
        "nonkey"].path != art.path


def test_trt_build_refuses_graphs_tensorrt_cannot_parse(tiny_model, cache, fake_trt, monkeypatch):
    from vidseg.export import trt_check

    monkeypatch.setattr(trt_check, "check_trt_ops", lambda model: ["Unique: not supported by TensorRT 10.15"])
    request = BuildRequest("trt", (H, W), model_name="tiny")
    with pytest.raises(ExportError, match="TensorRT cannot parse: Unique"):
        ArtifactBuilder(request, cache, trt=fake_trt, gpu=GPU).build(tiny_model.stages(), ["key"])
    assert "build_serialized_network" not in fake_trt.names()

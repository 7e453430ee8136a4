"""TensorRT export and runtime, checked here without TensorRT: a stand-in module records the API calls.

Real TensorRT (tests marked cuda + importorskip) runs only where `tensorrt` and a GPU are present.
"""

from __future__ import annotations

import pytest
import torch

from vidseg.config import EngineConfig
from vidseg.engine.backends.base import runner_class
from vidseg.errors import BackendUnavailable, ConfigError, ExportError, ShapeError
from vidseg.export import tensorrt as vtrt
from vidseg.export.onnx import export_onnx
from vidseg.export.tensorrt import CalibrationBatcher, ShapeProfile
from vidseg.export.trt_engine import TrtEngine
from vidseg.export.validate import validation_frames

H, W = 32, 48
GPU = ("NVIDIA Fake GPU", "sm_90")


@pytest.fixture(scope="module")
def key_onnx(tmp_path_factory, tiny_model_class):
    """The tiny key stage as ONNX: static batch 1, and dynamic batch."""
    torch.manual_seed(0)
    model = tiny_model_class().eval()
    stage = model.stages()["key"].eval()
    out = tmp_path_factory.mktemp("trt")
    static = export_onnx(stage, out / "key.onnx", H, W, stage_name="key", validate=False).path
    dynamic = export_onnx(stage, out / "key_dyn.onnx", H, W, batch=2, dynamic_batch=True, validate=False).path
    return model, stage, static, dynamic


def _sub(calls, *names):
    """The calls whose names are in `names`, in order."""
    return [c for c in calls if c[0] in names]


def test_fp16_build_follows_the_tensorrt10_sequence(key_onnx, tmp_path, fake_trt):
    _, _, onnx_path, _ = key_onnx
    lines = []
    report = vtrt.build_engine(
        onnx_path,
        tmp_path / "k.engine",
        precision="fp16",
        timing_cache=tmp_path / "timing.cache",
        workspace_bytes=1 << 30,
        trt=fake_trt,
        log=lines.append,
    )
    order = [
        "Logger",
        "Builder",
        "create_network",
        "OnnxParser",
        "parse_from_file",
        "create_builder_config",
        "set_memory_pool_limit",
        "set_flag",
        "create_timing_cache",
        "set_timing_cache",
        "IProgressMonitor.__init__",
        "build_serialized_network",
        "timing_cache.serialize",
    ]
    assert fake_trt.names() == order
    assert ("create_network", 0) in fake_trt.calls  # explicit batch is TensorRT 10's only mode
    assert ("set_flag", "FP16") in fake_trt.calls and ("set_timing_cache", False) in fake_trt.calls
    assert "create_optimization_profile" not in fake_trt.names()  # static shapes need no profile
    assert report.engine.read_bytes().startswith(b"PLAN") and report.size_bytes == report.engine.stat().st_size
    assert (tmp_path / "timing.cache").read_bytes() == b"+timing"
    assert any("Building engine (2 steps)" in line for line in lines)  # progress is printed
    assert any(line.startswith("tensorrt: built") for line in lines)


def test_timing_cache_is_read_back_by_the_next_build(key_onnx, tmp_path, fake_trt):
    _, _, onnx_path, _ = key_onnx
    timing = tmp_path / "timing.cache"
    timing.write_bytes(b"previous")
    vtrt.build_engine(
        onnx_path, tmp_path / "k.engine", precision="fp32", timing_cache=timing, trt=fake_trt, log=lambda s: None
    )
    assert ("create_timing_cache", b"previous") in fake_trt.calls
    assert timing.read_bytes() == b"previous+timing"
    assert not _sub(fake_trt.calls, "set_flag")  # fp32: no precision flag


def test_int8_dynamic_batch_build_calibrates_on_frames(key_onnx, tmp_path, fake_trt):
    _, stage, _, onnx_dyn = key_onnx
    frames = validation_frames(H, W, count=7)
    batches = CalibrationBatcher(({"image": f} for f in frames), ["image"], batch_size=2)
    calib_cache = tmp_path / "calib.cache"
    calibrator = vtrt.make_entropy_calibrator(fake_trt, batches, torch.device("cpu"), calib_cache, log=lambda s: None)
    profiles = {"image": ShapeProfile.batch((2, 3, H, W), 2)}
    report = vtrt.build_engine(
        onnx_dyn,
        tmp_path / "k8.engine",
        precision="int8",
        profiles=profiles,
        calibrator=calibrator,
        trt=fake_trt,
        log=lambda s: None,
    )
    assert ("set_flag", "INT8") in fake_trt.calls and ("set_flag", "FP16") in fake_trt.calls
    assert ("set_shape", "image", (1, 3, H, W), (2, 3, H, W), (2, 3, H, W)) in fake_trt.calls
    names = fake_trt.names()
    assert names.index("add_optimization_profile") < names.index("set_calibration_profile")
    assert fake_trt.calibration_batches == 3 == report.calibration_batches  # 7 frames -> 3 full batches of 2
    assert calib_cache.read_bytes() == b"calibration-table"

    # A second build reads the calibration table instead of calibrating again.
    again = vtrt.make_entropy_calibrator(
        fake_trt, CalibrationBatcher([], ["image"], 2), torch.device("cpu"), calib_cache, log=lambda s: None
    )
    vtrt.build_engine(
        onnx_dyn,
        tmp_path / "k8b.engine",
        precision="int8",
        profiles=profiles,
        calibrator=again,
        trt=fake_trt,
        log=lambda s: None,
    )
    assert fake_trt.calibration_batches == 0


def test_build_refuses_what_it_cannot_do(key_onnx, tmp_path, fake_trt):
    _, _, onnx_path, onnx_dyn = key_onnx
    with pytest.raises(ConfigError, match="calibration"):
        vtrt.build_engine(onnx_path, tmp_path / "e", precision="int8", trt=fake_trt)
    with pytest.raises(ConfigError, match="unknown TensorRT precision"):
        vtrt.build_engine(onnx_path, tmp_path / "e", precision="fp8", trt=fake_trt)
    with pytest.raises(ExportError, match="dynamic dimensions"):
        vtrt.build_engine(onnx_dyn, tmp_path / "e", precision="fp16", trt=fake_trt, log=lambda s: None)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ExportError, match="parser rejected"):
        vtrt.build_engine(bad, tmp_path / "e", precision="fp16", trt=fake_trt, log=lambda s: None)


def test_calibration_batcher_makes_full_batches():
    samples = [
        {"image": torch.full((3, 2, 2), i, dtype=torch.uint8), "motion": torch.zeros(1, 2, 1, 1)} for i in range(7)
    ]
    batches = list(CalibrationBatcher(samples, ["image", "motion"], batch_size=3))
    assert len(batches) == 2  # the 7th sample would make an incomplete batch
    assert batches[0]["image"].shape == (3, 3, 2, 2) and batches[1]["motion"].shape == (3, 2, 1, 1)
    assert batches[1]["image"][:, 0, 0, 0].tolist() == [3, 4, 5]
    assert batches[0]["image"].is_contiguous()
    limited = CalibrationBatcher(samples, ["image", "motion"], batch_size=2, max_batches=2)
    assert len(list(limited)) == 2 and limited.produced == 2
    batched = [{"image": torch.zeros(2, 3, 2, 2, dtype=torch.uint8)}] * 3  # batched samples count per frame
    assert len(list(CalibrationBatcher(batched, ["image"], batch_size=3))) == 2
    with pytest.raises(ExportError, match="lacks inputs"):
        list(CalibrationBatcher([{"image": torch.zeros(3, 2, 2)}], ["image", "motion"], 1))


def test_calibration_samples_derive_state_inputs_from_the_model(tiny_stages):
    frames = list(validation_frames(H, W, count=3))
    nonkey = list(vtrt.calibration_samples(tiny_stages, "nonkey", frames, (H, W)))
    assert len(nonkey) == 2  # the first frame is only a reference
    with torch.no_grad():
        _, feats = tiny_stages["key"](frames[0][None])
        flow = tiny_stages["flow"](frames[1][None], frames[0][None])[0]
    torch.testing.assert_close(nonkey[0]["key_features"], feats)
    torch.testing.assert_close(nonkey[0]["motion"], flow)  # the flow stage's grid matches the motion input
    refine = next(vtrt.calibration_samples(tiny_stages, "refine", frames, (H, W)))
    assert refine["prev_logits"].shape == (1, 5, H // 4, W // 4)
    key = list(vtrt.calibration_samples(tiny_stages, "key", frames, (H, W)))
    assert len(key) == 3 and key[0]["image"].shape == (1, 3, H, W)


def test_calibration_frames_read_and_resize_a_video(gradient_video):
    path = gradient_video()
    frames = list(vtrt.calibration_frames(path, (H, W), count=3, stride=4))
    assert len(frames) == 3 and all(f.shape == (3, H, W) and f.dtype == torch.uint8 for f in frames)
    assert frames[0].float().mean() < frames[1].float().mean() < frames[2].float().mean()  # frames 0, 4, 8


def test_trt_engine_binds_torch_buffers_and_enqueues_on_the_stream(key_onnx, tmp_path, fake_trt):
    _, stage, _, onnx_dyn = key_onnx
    profiles = {"image": ShapeProfile.batch((2, 3, H, W), 2)}
    vtrt.build_engine(
        onnx_dyn, tmp_path / "k.engine", precision="fp16", profiles=profiles, trt=fake_trt, log=lambda s: None
    )
    engine = TrtEngine(fake_trt, (tmp_path / "k.engine").read_bytes(), label="key engine")
    engine.check_bindings(stage, "key")
    assert engine.inputs == ["image"] and engine.outputs == ["logits", "features"]
    assert engine.dtypes["image"] == torch.uint8 and engine.dynamic == {"image"}
    fake_trt.calls.clear()
    out = engine.run({"image": validation_frames(H, W, count=2)}, stream=1234, device=torch.device("cpu"))
    assert fake_trt.names() == [
        "set_input_shape",
        "set_tensor_address",
        "set_tensor_address",
        "set_tensor_address",
        "execute_async_v3",
    ]
    assert ("execute_async_v3", 1234) in fake_trt.calls
    assert out["logits"].shape == (2, 5, H // 4, W // 4) and out["features"].shape == (2, 8, H // 4, W // 4)
    pattern = torch.tensor([fake_trt.FILL] * 4, dtype=torch.uint8).view(torch.float32).item()
    assert torch.all(out["logits"] == pattern) and torch.all(out["features"] == pattern)
    with pytest.raises(ShapeError, match="must be torch.uint8"):
        engine.run({"image": torch.zeros(1, 3, H, W)}, stream=0, device=torch.device("cpu"))
    with pytest.raises(ShapeError, match="declares"):
        engine.check_bindings(type("S", (), {"input_names": ("image",), "output_names": ("logits",)})(), "key")
    with pytest.raises(ExportError, match="could not deserialize"):
        TrtEngine(fake_trt, b"garbage", label="x")


def test_trt_runner_without_tensorrt_is_unavailable(tiny_stages, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ModuleNotFoundError
    cls = runner_class("trt")
    with pytest.raises(BackendUnavailable, match="tensorrt"):
        cls(tiny_stages, EngineConfig(backend="trt"), (H, W), torch.device("cpu"))


@pytest.mark.cuda
def test_real_tensorrt_engine_matches_pytorch(tiny_stages, tmp_path):
    pytest.importorskip("tensorrt")
    device = torch.device("cuda")
    config = EngineConfig(backend="trt", device="cuda", precision="fp32", cache_dir=str(tmp_path))
    runner = runner_class("trt")({"key": tiny_stages["key"]}, config, (H, W), device)
    frames = validation_frames(H, W, count=1)
    out = runner.run("key", {"image": frames.to(device)})
    torch.cuda.synchronize()
    with torch.no_grad():
        want, _ = tiny_stages["key"](frames)
    assert (out["logits"].cpu().argmax(1) == want.argmax(1)).float().mean() >= 0.999
    assert "TensorRT" in runner.describe()

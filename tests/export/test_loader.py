"""Export folders that run on their own: vidseg-export writes one, `load_export` reads it back and its runner
runs every stage through ONNX Runtime, matching the PyTorch stages, with no model rebuilt; a folder that is
missing, of another version, edited by hand or changed since export is a one-line error."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from vidseg.cli.export import main
from vidseg.engine import engine
from vidseg.engine.backends.onnxrt import OnnxRuntimeRunner
from vidseg.errors import ConfigError, ExportError, InputError, ShapeError
from vidseg.export import load_export
from vidseg.export.builder import ArtifactBuilder, BuildRequest
from vidseg.export.files import ExportFolder
from vidseg.export.validate import validation_frames

H, W = 32, 48


def _export(tmp_path_factory, model_class, name: str, *args: str):
    torch.manual_seed(0)
    model = model_class().eval()
    out = tmp_path_factory.mktemp(name)
    patch = pytest.MonkeyPatch()
    patch.setattr(engine, "load_model", lambda config: model)
    try:
        assert main(["--model", "tiny", "--res", f"{H}x{W}", "--out", str(out), *args]) == 0
    finally:
        patch.undo()
    return model, out


@pytest.fixture(scope="module")
def arseg_export(tmp_path_factory, tiny_model_class):
    """key, nonkey, flow at a fixed size (the tiny model's default method)."""
    return _export(tmp_path_factory, tiny_model_class, "arseg")


@pytest.fixture(scope="module")
def flowwarp_export(tmp_path_factory, tiny_model_class):
    """key, flow, refine with dynamic height/width."""
    return _export(tmp_path_factory, tiny_model_class, "flowwarp", "--method", "flowwarp", "--dynamic")


def _close(got: dict, want: tuple, names) -> None:
    for name, w in zip(names, want, strict=True):
        torch.testing.assert_close(got[name], w, atol=1e-4, rtol=1e-4)


def test_default_method_and_its_stages_are_exported(arseg_export):
    _, folder = arseg_export
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["method"] == "arseg"  # TinyModel's methods: per-frame, arseg, flowwarp
    assert list(manifest["stages"]) == ["key", "nonkey", "flow"]  # arseg's flow stage: motion without codec MVs
    assert manifest["motion"] == {"warp_convention": "exact"}
    spec = manifest["spec"]
    assert spec["num_classes"] == 5 and spec["feature_stride"] == 4 and spec["lr_scale"] == 0.5
    assert manifest["stages"]["nonkey"]["inputs"][1] == {"name": "key_features", "dtype": "float32",
                                                          "shape": [1, 8, 8, 12]}


def test_loaded_export_describes_the_model_without_it(arseg_export):
    model, folder = arseg_export
    exported = load_export(folder)
    assert exported.method == "arseg" and exported.format == "onnx" and exported.precision == "fp32"
    assert exported.spec.num_classes == model.spec.num_classes and exported.spec.mean == model.spec.mean
    assert exported.spec.feature_stride == 4 and exported.spec.logits_align_corners is True
    assert exported.methods == ("per-frame", "arseg") and exported.warp_convention == "exact"
    assert list(exported.stages) == ["key", "nonkey", "flow"]
    assert exported.stages["nonkey"].input_names == ("image", "key_features", "motion")
    assert exported.stages["key"].outputs[0].shape == (1, 5, H // 4, W // 4)


def test_every_stage_runs_from_the_folder_and_matches_pytorch(arseg_export, monkeypatch):
    model, folder = arseg_export
    stages = model.stages()
    runner = load_export(folder).build_runner("cpu")
    # no PyTorch model is rebuilt: the runner holds sessions only, and building a model would fail here
    monkeypatch.setattr(engine, "load_model", lambda config: pytest.fail("load_model called"))
    assert isinstance(runner, OnnxRuntimeRunner) and runner.stages == {}
    frames = validation_frames(H, W, count=2)
    key = runner.run("key", {"image": frames[:1]})
    flow = runner.run("flow", {"image": frames[1:], "ref_image": frames[:1]})
    nonkey = runner.run("nonkey", {"image": frames[1:], "key_features": key["features"], "motion": flow["flow"]})
    with torch.no_grad():
        _close(key, stages["key"](frames[:1]), ("logits", "features"))
        _close(flow, stages["flow"](frames[1:], frames[:1]), ("flow",))
        _close(nonkey, stages["nonkey"](frames[1:], key["features"], flow["flow"]), ("logits", "features"))
    assert "CPUExecutionProvider" in runner.describe()
    with pytest.raises(ShapeError, match="was built for"):
        runner.run("key", {"image": validation_frames(H + 8, W, count=1)})  # a fixed-size export


def test_dynamic_export_runs_two_sizes_and_matches_pytorch(flowwarp_export):
    model, folder = flowwarp_export
    exported = load_export(folder)
    assert exported.dynamic_size and list(exported.stages) == ["key", "flow", "refine"]
    assert exported.stages["key"].input("image").shape == (1, 3, "height", "width")
    assert exported.stages["refine"].input("prev_logits").shape == (1, 5, "prev_logits_height", "prev_logits_width")
    sizes = exported.manifest["stages"]["key"]["build"]["validation"]["sizes"]
    assert sizes == [[H, W], [H + 32, W + 64]]
    runner = exported.build_runner("cpu")
    stages = model.stages()
    for h, w in ((H, W), (72, 100), (H, W)):  # back to the first size: learnt output shapes are per input shape
        frames = validation_frames(h, w, count=2)
        key = runner.run("key", {"image": frames[:1]})
        flow = runner.run("flow", {"image": frames[1:], "ref_image": frames[:1]})
        refine = runner.run("refine", {"image": frames[1:], "prev_logits": key["logits"], "flow": flow["flow"]})
        assert key["logits"].shape == (1, 5, (h + 3) // 4, (w + 3) // 4)
        with torch.no_grad():
            _close(key, stages["key"](frames[:1]), ("logits", "features"))
            _close(flow, stages["flow"](frames[1:], frames[:1]), ("flow",))
            _close(refine, stages["refine"](frames[1:], key["logits"], flow["flow"]), ("logits",))


@pytest.mark.slow  # torch.export reasons about int(H * 0.5) for ~30 s on 2 cores
def test_a_stage_that_fixes_its_size_is_refused_not_faked(tmp_path, monkeypatch, tiny_model):
    """A stage whose code turns the frame size into a constant exports, but the second validation size shows it:
    the builder says which stage cannot be dynamic, and leaves no file."""
    nonkey = type(tiny_model.stages()["nonkey"])
    original = nonkey.forward

    def fixed_lr_size(self, image, key_features, motion):
        size = (int(image.shape[-2] * 0.5), int(image.shape[-1] * 0.5))  # exported as a constant
        image = torch.nn.functional.interpolate(image.float(), size=size).round().to(torch.uint8)
        image = torch.nn.functional.interpolate(image.float(), scale_factor=2.0).round().to(torch.uint8)
        return original(self, image, key_features, motion)

    monkeypatch.setattr(nonkey, "forward", fixed_lr_size)
    folder = ExportFolder(tmp_path / "deploy", log=lambda line: None)
    builder = ArtifactBuilder(BuildRequest("onnx", (H, W), dynamic_size=True), folder)
    with pytest.raises(ExportError, match="stage 'nonkey' cannot take a dynamic height/width") as err:
        builder.build(tiny_model.stages(), ["nonkey"])
    assert "without --dynamic" in str(err.value) and "\n" not in str(err.value)
    assert list(folder.root.iterdir()) == []


@pytest.fixture
def copy_of(arseg_export, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(arseg_export[1], folder)
    return folder


def _edit(folder, change) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(vidseg_export=2), "manifest version 2; this vidseg reads version 1"),
        (lambda d: d.update(format="tflite"), "unknown format 'tflite'"),
        (lambda d: d["spec"].update(num_classes="five"), "spec.num_classes is 'five', expected an integer"),
        (lambda d: d.update(frame_size=[32]), "frame_size is [32], expected [height, width]"),
        (lambda d: d["stages"]["key"]["inputs"][0].update(dtype="float64"), "stages.key inputs/outputs"),
        (lambda d: d["stages"]["key"].update(file="../elsewhere.onnx"), "outside"),
        (lambda d: d.update(precision="int8"), "precision 'int8' is not one of onnx's"),
    ],
)
def test_hand_edited_manifest_is_one_line_error(copy_of, change, message):
    _edit(copy_of, change)
    with pytest.raises(InputError, match="re-export|outside") as err:
        load_export(copy_of)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_or_changed_files_are_one_line_errors(copy_of, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_export(tmp_path / "nowhere")
    with pytest.raises(InputError, match="has no manifest.json: it is not a vidseg export folder"):
        load_export(tmp_path)
    key = copy_of / json.loads((copy_of / "manifest.json").read_text())["stages"]["key"]["file"]
    data = bytearray(key.read_bytes())
    data[-1] ^= 0xFF
    key.write_bytes(bytes(data))
    with pytest.raises(InputError, match="differs from the one the manifest records"):
        load_export(copy_of)
    key.unlink()
    with pytest.raises(InputError, match="named by the manifest is missing"):
        load_export(copy_of)
    (copy_of / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_export(copy_of)


def test_a_folder_without_a_manifest_given_as_the_model_says_so(tmp_path, monkeypatch):
    """--model FOLDER where the folder is not an export (the wrong folder, an export that did not finish): the
    error names what it lacks, not "unknown model"; a registered name wins over a folder of that name."""
    from vidseg.config import EngineConfig
    from vidseg.engine.loading import load_model

    (tmp_path / "weights").mkdir()
    with pytest.raises(InputError, match="has no manifest.json: it is not a vidseg export folder"):
        load_model(EngineConfig(model=str(tmp_path / "weights")))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    assert load_model(EngineConfig(model="demo")).spec.name == "demo"


def test_weights_given_with_an_export_folder_are_refused_not_ignored(arseg_export, tmp_path):
    from vidseg.config import EngineConfig
    from vidseg.engine.loading import load_model

    _, folder = arseg_export
    weights = tmp_path / "other.pt"
    torch.save({}, weights)
    with pytest.raises(ConfigError, match="cannot apply to the export folder"):
        load_model(EngineConfig(model=str(folder), weights=str(weights)))
    assert load_model(EngineConfig(model=str(folder))).method == "arseg"


def test_runner_requests_that_do_not_fit_the_folder_are_refused(arseg_export):
    from vidseg.config import EngineConfig

    exported = load_export(arseg_export[1])
    with pytest.raises(ConfigError, match="run them with backend onnx or auto, not trt"):
        exported.build_runner(config=EngineConfig(backend="trt", device="cpu"))
    runner = exported.build_runner(config=EngineConfig(backend="auto", device="cpu"))
    assert runner.describe().startswith("onnx on cpu (fp32")


def test_engine_folder_records_its_tensorrt_and_refuses_another(tiny_model, tmp_path, fake_trt, monkeypatch):
    """A TensorRT export (stand-in tensorrt): the manifest lists each engine with the ONNX it came from and the
    TensorRT that built it; a runtime of another version is refused before deserialising anything."""
    from vidseg.errors import BackendUnavailable
    from vidseg.export import tensorrt as vtrt
    from vidseg.export.manifest import build_manifest, write_manifest

    folder = ExportFolder(tmp_path / "deploy", log=lambda line: None)
    request = BuildRequest("trt", (H, W), precision="fp16", model_name="tiny")  # cpu: nothing real to validate
    stages = tiny_model.stages()
    artifacts = ArtifactBuilder(request, folder, trt=fake_trt, gpu=("NVIDIA Fake GPU", "sm_90")).build(
        stages, ["key", "flow"])
    write_manifest(folder.root, build_manifest(folder.root, tiny_model, model_name="tiny", weights=None,
                                               method="per-frame", methods=["per-frame"], request=request,
                                               artifacts=artifacts, lr_scale=0.5))
    exported = load_export(folder.root)
    assert exported.format == "trt" and exported.precision == "fp16"
    assert exported.artifacts["key"].path.name == "tiny-key-32x48-b1-fp16-sm_90.engine"
    assert exported.artifacts["key"].onnx.name == "tiny-key-32x48-b1-fp32.onnx"
    assert exported.manifest["versions"]["tensorrt"] == "10.15.1"
    monkeypatch.setattr(vtrt, "import_tensorrt", lambda: type(fake_trt)("10.16.0"))
    with pytest.raises(BackendUnavailable, match="built with TensorRT 10.15.1; this is TensorRT 10.16.0"):
        exported.build_runner("cpu")
    from vidseg.config import EngineConfig

    with pytest.raises(ConfigError, match="built for fp16, not fp32"):
        exported.build_runner(config=EngineConfig(backend="trt", precision="fp32", device="cpu"))


@pytest.mark.slow  # one AOTInductor compilation: about a minute on 2 cores
def test_aoti_folder_runs_without_the_model(tmp_path_factory, tiny_model_class):
    model, folder = _export(tmp_path_factory, tiny_model_class, "aoti", "--format", "aoti", "--method", "per-frame",
                            "--device", "cpu")
    exported = load_export(folder)
    assert list(exported.stages) == ["key"] and exported.manifest["device"] == "cpu"
    assert exported.stages["key"].outputs[1].shape == (1, 8, H // 4, W // 4)
    runner = exported.build_runner("cpu")
    frames = validation_frames(H, W, count=1)
    with torch.no_grad():
        _close(runner.run("key", {"image": frames}), model.stages()["key"](frames), ("logits", "features"))
    assert "AOTInductor" in runner.describe()


def _frames(n: int, size: tuple[int, int]):
    gen = torch.Generator().manual_seed(3)
    base = torch.randint(0, 256, (size[0], size[1] + 4 * n, 3), generator=gen, dtype=torch.uint8).numpy()
    return [base[:, 4 * i: 4 * i + size[1]].copy() for i in range(n)]  # a scene panning left


def test_the_engine_runs_an_export_folder_as_the_model_itself(arseg_export):
    """vidseg-run --model DIR / Engine(model=DIR): the folder's artifacts, no PyTorch model rebuilt."""
    import numpy as np

    from vidseg.config import EngineConfig
    from vidseg.engine.engine import Engine

    model, folder = arseg_export
    frames = _frames(6, (H, W))
    config = EngineConfig(method="arseg", keyframe_interval=3, device="cpu", channels_last=False)
    from_folder = Engine(config.replace(model=str(folder)))
    assert from_folder.stages == {} and from_folder.method.name == "arseg"
    exported = list(from_folder.run(frames))
    reference = list(Engine(config.replace(backend="torch"), model=model).run(frames))
    assert from_folder.runner.name == "onnx" and [r.is_key for r in exported] == [r.is_key for r in reference]
    agree = np.mean([np.mean(a.labels == b.labels) for a, b in zip(exported, reference, strict=True)])
    assert agree > 0.99


def test_frames_of_another_size_are_resized_to_a_fixed_size_export(arseg_export):
    from vidseg.config import EngineConfig
    from vidseg.engine.engine import Engine

    _, folder = arseg_export
    engine = Engine(EngineConfig(model=str(folder), device="cpu"))
    with pytest.warns(RuntimeWarning, match=f"resized to {H}x{W}"):
        results = list(engine.run(_frames(4, (2 * H, 2 * W))))
    assert results[0].labels.shape == (2 * H, 2 * W)


def test_vidseg_run_takes_an_export_folder_as_its_model(flowwarp_export, tmp_path, capsys):
    import av
    import numpy as np

    from vidseg.cli import run

    _, folder = flowwarp_export
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 2 * W, 2 * H, "yuv420p"
        for image in _frames(6, (2 * H, 2 * W)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert run.main([str(clip), "--model", str(folder), "--device", "cpu", "--save", "labels",
                     "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "flowwarp" in printed and "onnx" in printed  # the folder's method and format, dynamic: no resize
    assert len(list((tmp_path / "out" / "clip_labels").glob("*.png"))) == 6

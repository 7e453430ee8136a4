"""Stage -> ONNX on the tiny four-stage model: bindings, standard operators, validation, TensorRT op check."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from vidseg.errors import ExportError
from vidseg.export import onnx as vonnx
from vidseg.export import trt_onnx_ops
from vidseg.export import validate as vval
from vidseg.export.program import export_stage, remaining_custom_ops
from vidseg.export.trt_check import check_trt_ops, graph_operators

H, W = 32, 48


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model_class):
    """All four stages of one tiny model exported once (dynamo exporter), with their reports."""
    torch.manual_seed(0)
    model = tiny_model_class().eval()
    out = tmp_path_factory.mktemp("onnx")
    reports = {}
    for name, stage in model.stages().items():
        reports[name] = vonnx.export_onnx(stage.eval(), out / f"{name}.onnx", H, W, stage_name=name)
    return model, reports


@pytest.mark.parametrize("stage", ["key", "nonkey", "flow", "refine"])
def test_every_stage_exports_with_dynamo_and_validates(exported, stage):
    model, reports = exported
    report = reports[stage]
    module = model.stages()[stage]
    assert report.exporter == "dynamo" and report.fallback_reason == ""
    assert report.opset == vonnx.DEFAULT_OPSET >= 17
    assert list(report.inputs) == list(module.input_names)
    assert list(report.outputs) == list(module.output_names)
    assert report.inputs["image"] == ((1, 3, H, W), "uint8")  # raw frames in, normalisation inside
    v = report.validation
    assert v is not None and v.passed and v.frames == 2
    assert all(d <= vval.LOGIT_TOLERANCE for d in v.max_abs_diff.values())
    if "logits" in module.output_names:
        assert v.argmax_agreement["logits"] >= vval.MIN_ARGMAX_AGREEMENT


def test_every_operator_of_every_graph_is_in_tensorrts_table(exported):
    _, reports = exported
    for name, report in reports.items():
        model = onnx.load(str(report.path))
        ops = graph_operators(model)
        assert ops <= set(trt_onnx_ops.SUPPORTED), (name, ops - set(trt_onnx_ops.SUPPORTED))
        assert report.trt_problems == (), (name, report.trt_problems)
        assert check_trt_ops(model) == []


def test_custom_ops_lower_to_gridsample_and_local_attention_composition(exported):
    _, reports = exported
    nonkey = onnx.load(str(reports["nonkey"].path))
    refine = onnx.load(str(reports["refine"].path))
    assert {"GridSample", "Pad", "Slice", "Mul", "ReduceSum", "Softmax"} <= graph_operators(nonkey)

    def align(model):
        return [
            helper.get_attribute_value(a)
            for n in model.graph.node
            if n.op_type == "GridSample"
            for a in n.attribute
            if a.name == "align_corners"
        ]

    assert align(nonkey) == [0]  # "arseg" convention: (W-1) normalisation sampled with align_corners=False
    assert align(refine) == [1]  # "gsvnet" convention: align_corners=True


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning", "ignore::UserWarning")
def test_ops_route_to_reference_under_every_exporter(tiny_stages, tmp_path):
    """vidseg.kernels.ops: the custom ops never reach an ONNX graph, whichever exporter traces them."""
    stage = tiny_stages["nonkey"].eval()
    args = stage.example_inputs(H, W)
    with torch.no_grad():
        plain = torch.export.export(stage, args, strict=False)
    assert remaining_custom_ops(plain)  # torch.export alone keeps the opaque op ...
    assert remaining_custom_ops(export_stage(stage, H, W)) == []  # ... which export_stage decomposes
    for dynamo in (True, False):
        path = tmp_path / f"plain-{dynamo}.onnx"
        with torch.no_grad():
            torch.onnx.export(stage, args, str(path), dynamo=dynamo, opset_version=vonnx.DEFAULT_OPSET)
        ops = graph_operators(onnx.load(str(path)))
        assert "GridSample" in ops and not any("::" in op for op in ops)


def test_torchscript_fallback_is_recorded(tiny_stages, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("dynamo says no")

    monkeypatch.setattr(vonnx, "_export_dynamo", broken)
    lines = []
    report = vonnx.export_onnx(tiny_stages["refine"], tmp_path / "r.onnx", H, W, stage_name="refine", log=lines.append)
    assert report.exporter == "torchscript"
    assert "dynamo says no" in report.fallback_reason and "TorchScript" in lines[0]
    assert report.validation.passed and report.trt_problems == ()
    with pytest.raises(ExportError, match="dynamo says no"):
        vonnx.export_onnx(tiny_stages["refine"], tmp_path / "r2.onnx", H, W, exporter="dynamo")


def test_validation_detects_a_graph_that_differs_from_pytorch(exported):
    model, reports = exported
    stage = model.stages()["key"]
    inputs = vval.validation_inputs(stage, H, W)
    assert vval.validate_onnx(reports["key"].path, stage, inputs).passed
    with torch.no_grad():
        model.head.bias.add_(0.01)
    try:
        result = vval.validate_onnx(reports["key"].path, stage, inputs)
    finally:
        with torch.no_grad():
            model.head.bias.sub_(0.01)
    assert not result.passed and result.max_abs_diff["logits"] > vval.LOGIT_TOLERANCE
    assert "FAILED" in result.summary()


def test_dynamic_batch_export_runs_any_batch(tiny_stages, tmp_path):
    stage = tiny_stages["key"]
    report = vonnx.export_onnx(stage, tmp_path / "k.onnx", H, W, batch=2, dynamic_batch=True)
    assert report.inputs["image"][0] == ("batch", 3, H, W)
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    for n in (1, 3):
        frames = vval.validation_frames(H, W, count=n)
        logits, _ = session.run(None, {"image": frames.numpy()})
        with torch.no_grad():
            want, _ = stage(frames)
        np.testing.assert_allclose(logits, want.numpy(), atol=vval.LOGIT_TOLERANCE)


def test_validation_frames_are_textured_and_move():
    frames = vval.validation_frames(64, 96, count=2)
    assert frames.dtype == torch.uint8 and frames.shape == (2, 3, 64, 96)
    assert frames.float().std() > 30  # not flat
    assert not torch.equal(frames[0], frames[1])


# -- the TensorRT operator check on hand-made graphs -------------------------------------------------------


def _graph(nodes, inputs, outputs, initializers=(), opset=20):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def test_trt_check_accepts_a_uint8_input_feeding_a_cast():
    model = _graph(
        [helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT), helper.make_node("Relu", ["x"], ["y"])],
        [_vi("image", TensorProto.UINT8, [1, 3, 4, 4])],
        [_vi("y", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    assert check_trt_ops(model) == []


def test_trt_check_flags_what_tensorrt_cannot_parse():
    axes = helper.make_tensor("axes_const", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Add", ["image", "image"], ["sum_u8"]),  # uint8 used inside the network
        helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Resize", ["x", "", "scales"], ["r"], mode="cubic"),
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Slice", ["shape", "one", "two"], ["dyn_axes"]),
        helper.make_node("ReduceSum", ["x", "dyn_axes"], ["s"]),  # axes computed at run time
        helper.make_node("ReduceSum", ["x", "axes_const"], ["s2"]),  # fine: an initializer
        helper.make_node("Unique", ["x"], ["u"]),
        helper.make_node("Warp", ["x"], ["w"], domain="vidseg"),
    ]
    inits = [
        axes,
        helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2]),
        helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        helper.make_tensor("two", TensorProto.INT64, [1], [2]),
    ]
    model = _graph(
        nodes,
        [_vi("image", TensorProto.UINT8, [1, 3, 4, 4])],
        [_vi(n, TensorProto.FLOAT, None) for n in ("r", "s", "s2", "u", "w")]
        + [_vi("sum_u8", TensorProto.UINT8, None)],
        inits,
    )
    problems = "\n".join(check_trt_ops(model))
    assert "Add: consumes uint8 tensor 'image'" in problems
    assert "uint8 output 'sum_u8' must be produced by a Cast" in problems
    assert "Resize: mode 'cubic'" in problems
    assert "ReduceSum: input 1 ('dyn_axes') must be a build-time constant" in problems
    assert "axes_const" not in problems
    assert "Unique: not supported" in problems
    assert "custom domain 'vidseg'" in problems
    assert "opset" in "\n".join(check_trt_ops(_graph([], [], [], opset=25)))

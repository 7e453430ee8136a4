"""The TensorRT operator check: what TensorRT's ONNX parser would refuse in a graph, before a GPU is involved.

`check_trt_ops` compares a graph with `vidseg.export.trt_onnx_ops` (TensorRT 10.15's table) and the restrictions
that can bite a segmentation graph; every export reports its result, and the TensorRT build refuses a graph with
problems instead of failing deep inside the parser.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from vidseg.export import trt_onnx_ops

__all__ = ["check_trt_ops", "graph_operators", "opset_of"]


def opset_of(model: onnx.ModelProto) -> int:
    """The default-domain opset the graph imports (0 if none)."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


_RESIZE_COORD_MODES = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
_RESIZE_NEAREST_MODES = {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}
_CONSTANT_INPUT = {  # op -> index of an input that TensorRT needs as a build-time constant
    **{op: 1 for op in trt_onnx_ops.SUPPORTED if op.startswith("Reduce")},
    "Squeeze": 1,
    "Unsqueeze": 1,
    "CumSum": 1,
}


def graph_operators(model: onnx.ModelProto) -> set[str]:
    """Operator types in the graph, its subgraphs and local functions; non-standard ones as "domain::Op"."""
    ops: set[str] = set()
    for node in _walk_nodes(model.graph, model.functions):
        ops.add(node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}")
    return ops


def check_trt_ops(model: onnx.ModelProto) -> list[str]:
    """Problems TensorRT's ONNX parser would have with `model` (empty list: none we know of).

    Checks, against `vidseg.export.trt_onnx_ops` (TensorRT 10.15's table): the opset range; every operator
    supported; Resize modes; GridSample on 4D input; constant axes where TensorRT needs them; UINT8 only at the
    network boundary (a uint8 input may feed only Cast nodes, a uint8 output must come from a Cast).
    """
    problems: list[str] = []
    opset = opset_of(model)
    if not trt_onnx_ops.OPSET_MIN <= opset <= trt_onnx_ops.OPSET_MAX:
        problems.append(f"opset {opset} outside TensorRT's {trt_onnx_ops.OPSET_MIN}-{trt_onnx_ops.OPSET_MAX}")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # inference is best effort here; the checker already passed
        inferred = model
    types = _value_types(inferred)
    constants = {init.name for init in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    uint8_inputs = {i.name for i in model.graph.input if i.type.tensor_type.elem_type == onnx.TensorProto.UINT8}

    for node in _walk_nodes(model.graph, model.functions):
        where = f"{node.op_type} {node.name!r}" if node.name else node.op_type
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where}: custom domain {node.domain!r} needs a TensorRT plugin")
            continue
        if node.op_type not in trt_onnx_ops.SUPPORTED:
            problems.append(f"{where}: not supported by TensorRT {trt_onnx_ops.TENSORRT_VERSION}")
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Resize":
            problems += _check_resize(where, attrs)
        if node.op_type == "GridSample":
            rank = types.get(node.input[0], (None, None))[1]
            if rank is not None and rank != 4:
                problems.append(f"{where}: input of rank {rank}; TensorRT needs 4D")
        index = _CONSTANT_INPUT.get(node.op_type)
        if index is not None and len(node.input) > index and node.input[index] and node.input[index] not in constants:
            problems.append(f"{where}: input {index} ({node.input[index]!r}) must be a build-time constant")
        if node.op_type != "Cast":
            for name in node.input:
                if name and (name in uint8_inputs or types.get(name, (None, None))[0] == onnx.TensorProto.UINT8):
                    problems.append(f"{where}: consumes uint8 tensor {name!r}; TensorRT has UINT8 only at I/O")
    for out in model.graph.output:
        if out.type.tensor_type.elem_type == onnx.TensorProto.UINT8:
            producer = next((n for n in model.graph.node if out.name in n.output), None)
            if producer is None or producer.op_type != "Cast":
                problems.append(f"uint8 output {out.name!r} must be produced by a Cast")
    return problems


def _check_resize(where: str, attrs: dict) -> list[str]:
    problems = []

    def text(key: str, default: str) -> str:
        value = attrs.get(key, default)
        return value.decode() if isinstance(value, bytes) else str(value)

    mode = text("mode", "nearest")
    if mode not in ("nearest", "linear"):
        problems.append(f"{where}: mode {mode!r}; TensorRT supports nearest and linear")
    coord = text("coordinate_transformation_mode", "half_pixel")
    if coord not in _RESIZE_COORD_MODES:
        problems.append(f"{where}: coordinate_transformation_mode {coord!r} not supported")
    if mode == "nearest" and text("nearest_mode", "round_prefer_floor") not in _RESIZE_NEAREST_MODES:
        problems.append(f"{where}: nearest_mode {text('nearest_mode', '')!r} not supported")
    if int(attrs.get("antialias", 0)):
        problems.append(f"{where}: antialiasing is not supported")
    if text("keep_aspect_ratio_policy", "stretch") != "stretch":
        problems.append(f"{where}: keep_aspect_ratio_policy must be stretch")
    return problems


def _value_types(model: onnx.ModelProto) -> dict[str, tuple[int, int | None]]:
    """tensor name -> (elem_type, rank or None) from inputs, outputs, value_info and initializers."""
    types: dict[str, tuple[int, int | None]] = {}
    for v in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        t = v.type.tensor_type
        types[v.name] = (t.elem_type, len(t.shape.dim) if t.HasField("shape") else None)
    for init in model.graph.initializer:
        types[init.name] = (init.data_type, len(init.dims))
    return types


def _walk_nodes(graph: onnx.GraphProto, functions: Sequence[onnx.FunctionProto] = ()):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _walk_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _walk_nodes(g)
    for fn in functions:
        yield from fn.node

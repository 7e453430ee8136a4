"""Stage -> ONNX: export, check, validate against PyTorch, and check against TensorRT's operator set.

An artifact is one stage at one frame size: inputs are uint8 RGB frames (normalised inside the graph) and float
maps, binding names are the stage's `input_names`/`output_names`, spatial sizes are fixed, and the batch is
fixed or dynamic (dimension name "batch").

Export path: `vidseg.export.program.export_stage` (torch.export, vidseg's custom ops decomposed to their
reference composition) -> `torch.onnx.export(program, dynamo=True)` with the exporter's ONNX optimiser on
(onnxscript: constant folding, BatchNorm folded into Conv, dead code removed). onnxsim/onnxslim are not
dependencies and are not used; the optimised graphs already hold only Conv/pointwise/Resize/GridSample/
attention-composition nodes. Should that fail, the TorchScript exporter is tried once, on the module itself (there,
`vidseg.kernels.ops` sees `torch.onnx.is_in_onnx_export()` and calls the reference composition); which
exporter produced the file, and why the first failed, are recorded in the report. The warp becomes a standard
`GridSample` (align_corners 0 for the "exact"/"arseg" conventions, 1 for "gsvnet"), CReFF becomes
Pad/Slice/Mul/ReduceSum/Softmax: no custom domain, no plugin.

Every export is then checked with `onnx.checker` (full check, with shape inference), its bindings compared with
the stage's declared names, and validated on textured frames with ONNX Runtime (CPU) against the PyTorch stage:
max |difference| <= 1e-3 on every float output and >= 99.9 % argmax agreement on logits, in fp32.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import Tensor

from vidseg.device import physical_cores
from vidseg.errors import ExportError
from vidseg.export import trt_onnx_ops
from vidseg.export.cache import ArtifactCache, stage_key
from vidseg.export.program import BATCH_DIM_NAME, example_inputs, export_stage
from vidseg.models.base import Stage

__all__ = [
    "DEFAULT_OPSET",
    "LOGIT_TOLERANCE",
    "MIN_ARGMAX_AGREEMENT",
    "OnnxExport",
    "ValidationReport",
    "export_onnx",
    "onnx_artifact",
    "validate_onnx",
    "validation_frames",
    "validation_inputs",
    "check_trt_ops",
    "graph_operators",
]

DEFAULT_OPSET = 20  # TensorRT 10.0 parses opsets 9-20, 10.15 up to 24
LOGIT_TOLERANCE = 1e-3  # max |onnx - torch| on float outputs, fp32
MIN_ARGMAX_AGREEMENT = 0.999  # fraction of logits pixels whose argmax must agree

_NP_TO_TORCH = {
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float16): torch.float16,
    np.dtype(np.int64): torch.int64,
    np.dtype(np.int32): torch.int32,
}


@dataclass(frozen=True)
class ValidationReport:
    """ONNX Runtime vs PyTorch on the same inputs."""

    frames: int
    max_abs_diff: dict[str, float]  # output name -> max |onnx - torch| over all frames
    argmax_agreement: dict[str, float]  # logits output name -> fraction of pixels with the same argmax
    tolerance: float = LOGIT_TOLERANCE
    min_agreement: float = MIN_ARGMAX_AGREEMENT

    @property
    def passed(self) -> bool:
        return all(d <= self.tolerance for d in self.max_abs_diff.values()) and all(
            a >= self.min_agreement for a in self.argmax_agreement.values()
        )

    def summary(self) -> str:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in self.max_abs_diff.items())
        agree = ", ".join(f"{k} {100 * v:.3f}%" for k, v in self.argmax_agreement.items())
        verdict = "ok" if self.passed else "FAILED"
        return f"{verdict}: max|diff| {diffs}" + (f"; argmax agreement {agree}" if agree else "")


@dataclass(frozen=True)
class OnnxExport:
    """What was exported, how, and how it validated."""

    stage: str
    path: Path
    exporter: str  # "dynamo" or "torchscript"
    opset: int
    inputs: dict[str, tuple[tuple[int | str, ...], str]]  # name -> (shape, dtype); "batch" for a dynamic dim
    outputs: dict[str, tuple[tuple[int | str, ...], str]]
    operators: tuple[str, ...]
    trt_problems: tuple[str, ...]
    seconds: float
    validation: ValidationReport | None = None
    fallback_reason: str = ""  # why the dynamo exporter was not used, when it was not

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


# -- export ----------------------------------------------------------------------------------------------------


def export_onnx(
    stage: Stage,
    path: str | os.PathLike,
    height: int,
    width: int,
    *,
    stage_name: str = "",
    batch: int = 1,
    dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET,
    exporter: str = "auto",
    validate: bool = True,
    frames: Tensor | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> OnnxExport:
    """Export `stage` to `path` as ONNX; check it, validate it, and report.

    exporter: "auto" (dynamo, TorchScript if dynamo fails), "dynamo" or "torchscript".
    frames: uint8 [N,3,H,W] frames for validation (default: `validation_frames`).
    Raises ExportError if no exporter succeeds, the checker rejects the graph, its bindings differ from the
    stage's names, a vidseg custom op survived, or validation fails the tolerances.
    """
    if exporter not in ("auto", "dynamo", "torchscript"):
        raise ExportError(f"unknown ONNX exporter {exporter!r}; choose auto, dynamo or torchscript")
    path = Path(path)
    name = stage_name or type(stage).__name__
    stage = stage.eval()
    start = time.perf_counter()
    fallback_reason = ""
    used = exporter
    if exporter in ("auto", "dynamo"):
        try:
            _export_dynamo(stage, path, height, width, batch, dynamic_batch, opset)
            used = "dynamo"
        except Exception as err:
            if exporter == "dynamo":
                raise _as_export_error(err, f"dynamo ONNX export of stage {name!r}") from err
            fallback_reason = f"{type(err).__name__}: {_first_line(err)}"
            log(f"onnx: dynamo exporter failed for stage {name!r} ({fallback_reason}); trying TorchScript")
            used = "torchscript"
    if used == "torchscript":
        try:
            _export_torchscript(stage, path, height, width, batch, dynamic_batch, opset)
        except Exception as err:
            raise _as_export_error(err, f"TorchScript ONNX export of stage {name!r}") from err
    seconds = time.perf_counter() - start

    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"onnx.checker rejected the export of stage {name!r}: {_first_line(err)}") from err
    _check_bindings(model, stage, name)
    operators = graph_operators(model)
    custom = sorted(op for op in operators if "::" in op)
    if custom:
        raise ExportError(f"stage {name!r} exported with non-standard operators {custom}; they need a plugin")
    report = OnnxExport(
        stage=name,
        path=path,
        exporter=used,
        opset=_default_opset(model),
        inputs=_bindings(model.graph.input),
        outputs=_bindings(model.graph.output),
        operators=tuple(sorted(operators)),
        trt_problems=tuple(check_trt_ops(model)),
        seconds=seconds,
        fallback_reason=fallback_reason,
    )
    if validate:
        frames = frames if frames is not None else validation_frames(height, width, count=max(2, batch))
        inputs = validation_inputs(stage, height, width, batch=batch, frames=frames)
        result = validate_onnx(path, stage, inputs)
        report = _replace(report, validation=result)
        if not result.passed:
            raise ExportError(f"ONNX export of stage {name!r} does not match PyTorch: {result.summary()}")
    return report


def _export_dynamo(stage: Stage, path: Path, height: int, width: int, batch: int, dynamic: bool, opset: int) -> None:
    program = export_stage(stage, height, width, batch=batch, dynamic_batch=dynamic)
    with _quiet_registration():
        onnx_program = _translate(program, stage, opset)
    model = onnx_program.model_proto
    if dynamic:
        _rename_batch_dim(model)
    onnx.save_model(model, str(path), save_as_external_data=False)


@contextlib.contextmanager
def _quiet_registration():
    """The exporter warns once per missing torchvision op it could translate; we use none of them."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _translate(program: torch.export.ExportedProgram, stage: Stage, opset: int):
    return torch.onnx.export(
        program,
        (),
        dynamo=True,
        input_names=list(stage.input_names),
        output_names=list(stage.output_names),
        opset_version=opset,
        optimize=True,
        verbose=False,
    )


def _export_torchscript(
    stage: Stage, path: Path, height: int, width: int, batch: int, dynamic: bool, opset: int
) -> None:
    args = example_inputs(stage, height, width, batch)
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {n: {0: BATCH_DIM_NAME} for n in (*stage.input_names, *stage.output_names)}
    # The legacy exporter warns about itself and about every Python-level shape check it traces.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        torch.onnx.export(
            stage,
            args,
            str(path),
            dynamo=False,
            input_names=list(stage.input_names),
            output_names=list(stage.output_names),
            opset_version=opset,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )


def _rename_batch_dim(model: onnx.ModelProto) -> None:
    """The dynamo exporter names the batch symbol s0, s12...; rename it "batch" everywhere."""
    first = model.graph.input[0].type.tensor_type.shape.dim[0]
    symbol = first.dim_param
    if not symbol:
        return
    for info in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        for dim in info.type.tensor_type.shape.dim:
            if dim.dim_param == symbol:
                dim.dim_param = BATCH_DIM_NAME


def _check_bindings(model: onnx.ModelProto, stage: Stage, name: str) -> None:
    got_in = [i.name for i in model.graph.input]
    got_out = [o.name for o in model.graph.output]
    if got_in != list(stage.input_names) or got_out != list(stage.output_names):
        raise ExportError(
            f"ONNX bindings of stage {name!r} are inputs {got_in}, outputs {got_out}; the stage declares "
            f"{list(stage.input_names)}, {list(stage.output_names)}"
        )


def _bindings(values: Sequence[onnx.ValueInfoProto]) -> dict[str, tuple[tuple[int | str, ...], str]]:
    out = {}
    for v in values:
        t = v.type.tensor_type
        shape = tuple(d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim)
        out[v.name] = (shape, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name)
    return out


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


# -- validation ------------------------------------------------------------------------------------------------


def validation_frames(height: int, width: int, count: int = 2, seed: int = 0) -> Tensor:
    """Textured uint8 RGB frames [count,3,H,W]: smooth gradients, hard-edged regions and fine noise.

    Natural-image statistics matter for validation: on uniform noise a segmentation net's logits sit near
    decision boundaries everywhere, on a flat image nowhere. Consecutive frames are the scene shifted a few
    pixels, as in video.
    """
    gen = torch.Generator().manual_seed(seed)
    ys = torch.linspace(0, 1, height).view(height, 1)
    xs = torch.linspace(0, 1, width + 4 * count).view(1, -1)
    channels = []
    for c in range(3):
        phase = torch.rand(3, generator=gen) * 2 * math.pi
        base = 0.5 + 0.25 * torch.sin(2 * math.pi * (1.5 + c) * xs + phase[0]) * torch.cos(
            2 * math.pi * (1 + 0.5 * c) * ys + phase[1]
        )
        blocks = (torch.sin(9 * xs + phase[2]) > 0).float() * (torch.cos(7 * ys) > 0.3).float()
        channels.append(base + 0.3 * blocks)
    scene = torch.stack(channels)  # [3, H, W + 4*count]
    frames = []
    for i in range(count):
        view = scene[:, :, 4 * i : 4 * i + width]
        noise = 0.03 * torch.randn(view.shape, generator=gen)
        frames.append(((view + noise).clamp(0, 1) * 255).round().to(torch.uint8))
    return torch.stack(frames)


def validation_inputs(
    stage: Stage, height: int, width: int, *, batch: int = 1, frames: Tensor | None = None, seed: int = 0
) -> list[tuple[Tensor, ...]]:
    """Input sets (input_names order) for validation: real frames for images, seeded maps for the rest.

    One set per `batch` frames; `ref_image` is the frame after `image` (wrapping), as a flow stage sees.
    """
    frames = frames if frames is not None else validation_frames(height, width, count=max(2, batch))
    if frames.dtype != torch.uint8 or tuple(frames.shape[1:]) != (3, height, width):
        raise ExportError(
            f"validation frames must be uint8 [N,3,{height},{width}], got {frames.dtype} {tuple(frames.shape)}"
        )
    count = max(1, frames.shape[0] // batch)
    sets = []
    for i in range(count):
        idx = torch.arange(i * batch, (i + 1) * batch) % frames.shape[0]
        randoms = example_inputs(stage, height, width, batch, seed=seed + i)
        inputs = []
        for name, default in zip(stage.input_names, randoms, strict=True):
            if name == "image":
                inputs.append(frames[idx].contiguous())
            elif name == "ref_image":
                inputs.append(frames[(idx + 1) % frames.shape[0]].contiguous())
            else:
                inputs.append(default)
        sets.append(tuple(inputs))
    return sets


def validate_onnx(path: str | os.PathLike, stage: Stage, input_sets: Sequence[tuple[Tensor, ...]]) -> ValidationReport:
    """Run the ONNX graph (ONNX Runtime, CPU) and the PyTorch stage on the same inputs and compare."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = physical_cores()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    max_diff: dict[str, float] = {n: 0.0 for n in stage.output_names}
    agree_count: dict[str, int] = {}
    total: dict[str, int] = {}
    stage = stage.eval()
    for inputs in input_sets:
        feed = {n: t.numpy() for n, t in zip(stage.input_names, inputs, strict=True)}
        got = session.run(list(stage.output_names), feed)
        with torch.no_grad():
            want = stage(*inputs)
        for name, g, w in zip(stage.output_names, got, want, strict=True):
            w = w.float()
            g = torch.from_numpy(g).float()
            if g.shape != w.shape:
                raise ExportError(f"ONNX output {name!r} has shape {tuple(g.shape)}, PyTorch {tuple(w.shape)}")
            max_diff[name] = max(max_diff[name], (g - w).abs().max().item())
            if "logits" in name:
                agree_count[name] = agree_count.get(name, 0) + int((g.argmax(1) == w.argmax(1)).sum())
                total[name] = total.get(name, 0) + g.argmax(1).numel()
    agreement = {n: agree_count[n] / total[n] for n in agree_count}
    return ValidationReport(frames=len(input_sets), max_abs_diff=max_diff, argmax_agreement=agreement)


# -- TensorRT operator check -----------------------------------------------------------------------------------

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
    opset = _default_opset(model)
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


# -- cached artifacts ------------------------------------------------------------------------------------------


def onnx_artifact(
    stage: Stage,
    height: int,
    width: int,
    *,
    stage_name: str,
    model_name: str = "model",
    batch: int = 1,
    dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET,
    cache: ArtifactCache | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Path, OnnxExport | None]:
    """The validated fp32 ONNX file for this stage and shape, from the cache or exported into it.

    Returns (path, report) where report is None on a cache hit. The key covers the stage's code, weights and
    attributes (`stage_fingerprint`), the shapes, the opset, and the torch/onnx/onnxscript versions.
    """
    import onnxscript

    cache = cache if cache is not None else ArtifactCache(log=log)
    key = stage_key(
        "onnx",
        stage,
        stage_name=stage_name,
        model_name=model_name,
        height=height,
        width=width,
        batch=batch,
        dynamic_batch=dynamic_batch,
        precision="fp32",
        opset=opset,
        onnx=onnx.__version__,
        onnxscript=onnxscript.__version__,
    )
    say = log if log is not None else cache.log

    def build(tmp: Path) -> OnnxExport:
        report = export_onnx(
            stage,
            tmp,
            height,
            width,
            stage_name=stage_name,
            batch=batch,
            dynamic_batch=dynamic_batch,
            opset=opset,
            log=say,
        )
        say(
            f"onnx: {stage_name} exported with {report.exporter} in {report.seconds:.1f}s; "
            f"validation {report.validation.summary() if report.validation else 'skipped'}"
        )
        return report

    path, report = cache.get_or_build(key, ".onnx", build)
    if report is not None:
        report = _replace(report, path=path)
    return path, report


# -- helpers ---------------------------------------------------------------------------------------------------


def _replace(report: OnnxExport, **changes) -> OnnxExport:
    return dataclasses.replace(report, **changes)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else ""


def _as_export_error(err: Exception, what: str) -> ExportError:
    if isinstance(err, ExportError):
        return err
    return ExportError(f"{what} failed: {type(err).__name__}: {_first_line(err)}")


def np_to_torch_dtype(dtype: np.dtype) -> torch.dtype:
    """numpy dtype (as ONNX Runtime reports it) -> torch dtype."""
    try:
        return _NP_TO_TORCH[np.dtype(dtype)]
    except KeyError:
        raise ExportError(f"no torch dtype for numpy {dtype}") from None

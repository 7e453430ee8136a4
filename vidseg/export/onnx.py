"""Stage -> ONNX: export, check, and validate against PyTorch.

An artifact is one stage: inputs are uint8 RGB frames (normalised inside the graph) and float maps, binding
names are the stage's `input_names`/`output_names`. Spatial sizes are fixed, or dynamic with `dynamic_size`
(dimension names "height"/"width" on frames, "<input>_height"/"<input>_width" on other maps); the batch is fixed
or dynamic (dimension name "batch").

Export path: `vidseg.export.program.export_stage` (torch.export, vidseg's custom ops decomposed to their
reference composition) -> `torch.onnx.export(program, dynamo=True)` with the exporter's ONNX optimiser on
(onnxscript: constant folding, BatchNorm folded into Conv, dead code removed). onnxsim/onnxslim are not
dependencies and are not used; the optimised graphs already hold only Conv/pointwise/Resize/GridSample/
attention-composition nodes. Should that fail, the TorchScript exporter is tried once, on the module itself (there,
`vidseg.kernels.ops` sees `torch.onnx.is_in_onnx_export()` and calls the reference composition); which
exporter produced the file, and why the first failed, are recorded in the report. The warp becomes a standard
`GridSample` (align_corners 0 for the "exact"/"arseg" conventions, 1 for "gsvnet"), CReFF becomes
Pad/Transpose/Slice/Mul/ReduceSum/Softmax, summed over contiguous channels: no custom domain, no plugin.

Every export is then checked with `onnx.checker` (full check, with shape inference), its bindings compared with
the stage's declared names, checked against TensorRT's operator set (`vidseg.export.trt_check`), and validated
on textured frames with ONNX Runtime (CPU) against the PyTorch stage (`vidseg.export.validate`): max |difference|
<= 1e-3 on every float output and >= 99.9 % argmax agreement on logits, in fp32. A dynamic-size export is
validated at the traced size and at a second, larger one, so a graph that secretly fixed a size fails here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import Tensor

from vidseg.errors import ExportError
from vidseg.export.files import is_write_error
from vidseg.export.formats import DEFAULT_OPSET
from vidseg.export.program import BATCH_DIM_NAME, example_inputs, export_stage
from vidseg.export.stageio import axis_name
from vidseg.export.trt_check import check_trt_ops, graph_operators, opset_of
from vidseg.export.validate import ValidationReport, validate_onnx, validation_frames, validation_inputs
from vidseg.models.base import Stage

__all__ = ["DEFAULT_OPSET", "DYNAMIC_CHECK_GROWTH", "OnnxExport", "export_onnx", "second_size"]

DYNAMIC_CHECK_GROWTH = (32, 64)  # a dynamic-size export is also validated at (H + 32, W + 64)


def second_size(height: int, width: int) -> tuple[int, int]:
    """The other frame size a dynamic-size export is validated at."""
    return height + DYNAMIC_CHECK_GROWTH[0], width + DYNAMIC_CHECK_GROWTH[1]


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
    dynamic_size: bool = False,
    opset: int = DEFAULT_OPSET,
    exporter: str = "auto",
    validate: bool = True,
    frames: Tensor | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> OnnxExport:
    """Export `stage` to `path` as ONNX; check it, validate it, and report.

    exporter: "auto" (dynamo, TorchScript if dynamo fails), "dynamo" or "torchscript".
    dynamic_size: dynamic height/width (see the module docstring); validated at two sizes.
    frames: uint8 [N,3,H,W] frames for validation (default: `validation_frames`).
    Raises ExportError if no exporter succeeds, the checker rejects the graph, its bindings differ from the
    stage's names, a vidseg custom op survived, a size stayed fixed under dynamic_size, or validation fails.
    """
    if exporter not in ("auto", "dynamo", "torchscript"):
        raise ExportError(f"unknown ONNX exporter {exporter!r}; choose auto, dynamo or torchscript")
    path = Path(path)
    name = stage_name or type(stage).__name__
    stage = stage.eval()
    shape = _Shape(height, width, batch, dynamic_batch, dynamic_size)
    start = time.perf_counter()
    fallback_reason = ""
    used = exporter
    if exporter in ("auto", "dynamo"):
        try:
            _export_dynamo(stage, path, shape, opset)
            used = "dynamo"
        except Exception as err:
            if is_write_error(err):  # a full disk is not the exporter's fault: no fallback, the caller reports it
                raise
            if exporter == "dynamo":
                raise _as_export_error(err, f"dynamo ONNX export of stage {name!r}") from err
            fallback_reason = f"{type(err).__name__}: {_first_line(err)}"
            log(f"onnx: dynamo exporter failed for stage {name!r} ({fallback_reason}); trying TorchScript")
            used = "torchscript"
    if used == "torchscript":
        try:
            _export_torchscript(stage, path, shape, opset)
        except Exception as err:
            if is_write_error(err):
                raise
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
    inputs = _bindings(model.graph.input)
    if dynamic_size:
        _check_dynamic(inputs, name)
    report = OnnxExport(
        stage=name,
        path=path,
        exporter=used,
        opset=opset_of(model),
        inputs=inputs,
        outputs=_bindings(model.graph.output),
        operators=tuple(sorted(operators)),
        trt_problems=tuple(check_trt_ops(model)),
        seconds=seconds,
        fallback_reason=fallback_reason,
    )
    if validate:
        result = _validate(path, stage, name, shape, frames)
        report = dataclasses.replace(report, validation=result)
    return report


@dataclass(frozen=True)
class _Shape:
    height: int
    width: int
    batch: int
    dynamic_batch: bool
    dynamic_size: bool


def _validate(path: Path, stage: Stage, name: str, shape: _Shape, frames: Tensor | None) -> ValidationReport:
    """Validate at the traced size; a dynamic-size export also at `second_size`, where a graph that baked a size
    in (e.g. from `int(H * scale)`, which the exporter may turn into a constant) is caught and named."""
    first = validate_onnx(path, stage, _inputs(stage, shape.height, shape.width, shape.batch, frames),
                          sizes=[(shape.height, shape.width)])
    if not first.passed:
        raise ExportError(f"ONNX export of stage {name!r} does not match PyTorch: {first.summary()}")
    if not shape.dynamic_size:
        return first
    h2, w2 = second_size(shape.height, shape.width)
    second = validate_onnx(path, stage, _inputs(stage, h2, w2, shape.batch, None), sizes=[(h2, w2)])
    if not second.passed:
        raise ExportError(
            f"stage {name!r} cannot take a dynamic height/width: its graph matches PyTorch at "
            f"{shape.height}x{shape.width} but not at {h2}x{w2} ({second.summary()}); its code fixes a size the "
            "exporter could not follow; export it at a fixed size (without --dynamic)"
        )
    return ValidationReport(
        frames=first.frames + second.frames,
        max_abs_diff={k: max(v, second.max_abs_diff[k]) for k, v in first.max_abs_diff.items()},
        argmax_agreement={k: min(v, second.argmax_agreement[k]) for k, v in first.argmax_agreement.items()},
        sizes=(*first.sizes, *second.sizes),
    )


def _inputs(stage: Stage, height: int, width: int, batch: int, frames: Tensor | None) -> list[tuple[Tensor, ...]]:
    if frames is None or tuple(frames.shape[-2:]) != (height, width):
        frames = validation_frames(height, width, count=max(2, batch))
    return validation_inputs(stage, height, width, batch=batch, frames=frames)


def _export_dynamo(stage: Stage, path: Path, shape: _Shape, opset: int) -> None:
    program = export_stage(
        stage,
        shape.height,
        shape.width,
        batch=shape.batch,
        dynamic_batch=shape.dynamic_batch,
        dynamic_size=shape.dynamic_size,
    )
    with _quiet_registration():
        onnx_program = _translate(program, stage, opset)
    model = onnx_program.model_proto
    if shape.dynamic_batch or shape.dynamic_size:
        _name_dims(model)
    onnx.save_model(model, str(path), save_as_external_data=False)


@contextlib.contextmanager
def _quiet_registration():
    """The exporter warns once per missing torchvision op it could translate; we use none of them."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)  # torch-internal
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


def _export_torchscript(stage: Stage, path: Path, shape: _Shape, opset: int) -> None:
    args = example_inputs(stage, shape.height, shape.width, shape.batch)
    dynamic_axes = None
    if shape.dynamic_batch or shape.dynamic_size:
        dynamic_axes = {n: _axis_names(n, t.dim(), shape) for n, t in zip(stage.input_names, args, strict=True)}
        dynamic_axes.update({n: {0: BATCH_DIM_NAME} for n in stage.output_names if shape.dynamic_batch})
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


def _axis_names(name: str, rank: int, shape: _Shape) -> dict[int, str]:
    """Names of an input's dynamic axes (`vidseg.export.stageio.axis_name`)."""
    axes = [0] if shape.dynamic_batch else []
    axes += [2, 3] if shape.dynamic_size and rank == 4 else []
    return {axis: axis_name(name, axis) for axis in axes}


def _name_dims(model: onnx.ModelProto) -> None:
    """The dynamo exporter names symbols s0, s12...; rename them after the inputs they come from, everywhere
    (an output's "((s73 - 1)//4) + 1" becomes "((height - 1)//4) + 1")."""
    names: dict[str, str] = {}
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if dim.dim_param and dim.dim_param not in names:
                known = axis == 0 or (axis in (2, 3) and len(dims) == 4)
                names[dim.dim_param] = axis_name(value.name, axis) if known else f"{value.name}_{axis}"
    token = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = token.sub(lambda m: names.get(m.group(0), m.group(0)), dim.dim_param)


def _check_dynamic(inputs: dict[str, tuple[tuple[int | str, ...], str]], name: str) -> None:
    fixed = [f"{n} {shape}" for n, (shape, _) in inputs.items() if len(shape) == 4 and not all(
        isinstance(d, str) for d in shape[2:])]
    if fixed:
        raise ExportError(
            f"stage {name!r} cannot take a dynamic height/width: the exported graph fixes {'; '.join(fixed)}; "
            "export it at a fixed size (without --dynamic)"
        )


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


# -- helpers ---------------------------------------------------------------------------------------------------


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else ""


def _as_export_error(err: Exception, what: str) -> ExportError:
    if isinstance(err, ExportError):
        return err
    return ExportError(f"{what} failed: {type(err).__name__}: {_first_line(err)}")

"""Stage -> AOTInductor package (`.pt2`): torch.export, then `torch._inductor.aoti_compile_and_package`.

The package holds the compiled kernels and the weights; `torch._inductor.aoti_load_package` runs it with no
model code. vidseg's custom ops are decomposed to their reference composition before compilation
(`vidseg.export.program.export_stage`): a package that kept `vidseg::warp` / `vidseg::creff` calls would need
`vidseg.kernels.ops` imported (the op registrations) in every process that loads it, which defeats the point of
a self-contained artifact. Inductor fuses the composition into its own kernels instead.

Precision: fp32 on any device; fp16/bf16 on CUDA (the stage is exported with its weights and float inputs in
that dtype; uint8 frames stay uint8). A package is compiled for one device type and fixed frame size, and a
dynamic batch if asked for.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from vidseg.errors import ConfigError, ExportError
from vidseg.export.cache import ArtifactCache, stage_key
from vidseg.export.onnx import LOGIT_TOLERANCE, MIN_ARGMAX_AGREEMENT, ValidationReport, validation_inputs
from vidseg.export.program import export_stage
from vidseg.models.base import Stage

__all__ = ["AOTI_DTYPES", "AotiExport", "aoti_artifact", "compile_aoti", "load_aoti", "validate_aoti"]

AOTI_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# fp16 / bf16 round every layer; their tolerance is a label-level one
_REDUCED_TOLERANCE = 5e-2


@dataclass(frozen=True)
class AotiExport:
    stage: str
    path: Path
    device: str
    precision: str
    seconds: float
    validation: ValidationReport | None

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def _check_precision(precision: str, device: torch.device) -> torch.dtype:
    if precision not in AOTI_DTYPES:
        raise ConfigError(f"precision {precision!r} is not available for AOTInductor; use fp32, fp16 or bf16")
    if precision != "fp32" and device.type != "cuda":
        raise ConfigError(f"AOTInductor {precision} needs a CUDA device; use fp32 on {device}")
    return AOTI_DTYPES[precision]


def compile_aoti(
    stage: Stage,
    path: str | os.PathLike,
    height: int,
    width: int,
    *,
    stage_name: str = "",
    batch: int = 1,
    dynamic_batch: bool = False,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    validate: bool = True,
    log: Callable[[str], None] = lambda line: None,
) -> AotiExport:
    """Export and compile `stage` into an AOTInductor package at `path`; validate it against the stage."""
    device = torch.device(device)
    dtype = _check_precision(precision, device)
    name = stage_name or type(stage).__name__
    target = copy.deepcopy(stage).eval().to(device=device, dtype=dtype)
    start = time.perf_counter()
    program = export_stage(target, height, width, batch=batch, dynamic_batch=dynamic_batch, device=device, dtype=dtype)
    log(f"aoti: compiling stage {name!r} for {device} ({precision}); this takes a while")
    try:
        out = torch._inductor.aoti_compile_and_package(program, package_path=str(path))
    except Exception as err:
        raise ExportError(f"AOTInductor could not compile stage {name!r}: {type(err).__name__}: {err}") from err
    seconds = time.perf_counter() - start
    if Path(out) != Path(path):
        os.replace(out, path)
    report = AotiExport(name, Path(path), str(device), precision, seconds, None)
    if validate:
        inputs = validation_inputs(stage, height, width, batch=batch)
        result = validate_aoti(path, target, inputs, device=device, dtype=dtype)
        if not result.passed:
            raise ExportError(f"AOTInductor package of stage {name!r} does not match PyTorch: {result.summary()}")
        report = AotiExport(name, Path(path), str(device), precision, seconds, result)
    return report


def load_aoti(path: str | os.PathLike, device: torch.device | str = "cpu") -> Callable[..., Sequence[Tensor]]:
    """Load a package; the returned callable takes the stage's inputs positionally and returns its outputs."""
    device = torch.device(device)
    index = device.index if device.index is not None else (0 if device.type == "cuda" else -1)
    try:
        return torch._inductor.aoti_load_package(str(path), device_index=index)
    except Exception as err:
        raise ExportError(f"could not load AOTInductor package {path}: {type(err).__name__}: {err}") from err


def validate_aoti(
    path: str | os.PathLike,
    stage: Stage,
    input_sets: Sequence[tuple[Tensor, ...]],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> ValidationReport:
    """Package vs eager stage (same device and dtype) on the same inputs."""
    device = torch.device(device)
    package = load_aoti(path, device)
    max_diff = {n: 0.0 for n in stage.output_names}
    agree: dict[str, list[float]] = {}
    for inputs in input_sets:
        args = [(t.to(dtype) if t.is_floating_point() else t).to(device) for t in inputs]
        with torch.no_grad():
            want = stage(*args)
            got = package(*args)
        for name, g, w in zip(stage.output_names, got, want, strict=True):
            max_diff[name] = max(max_diff[name], (g.float() - w.float()).abs().max().item())
            if "logits" in name:
                agree.setdefault(name, []).append((g.argmax(1) == w.argmax(1)).float().mean().item())
    tolerance = LOGIT_TOLERANCE if dtype == torch.float32 else _REDUCED_TOLERANCE
    return ValidationReport(
        frames=len(input_sets),
        max_abs_diff=max_diff,
        argmax_agreement={n: sum(v) / len(v) for n, v in agree.items()},
        tolerance=tolerance,
        min_agreement=MIN_ARGMAX_AGREEMENT,
    )


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"cuda:{props.name}:sm_{props.major}{props.minor}"
    return "cpu"


def aoti_artifact(
    stage: Stage,
    height: int,
    width: int,
    *,
    stage_name: str,
    model_name: str = "model",
    batch: int = 1,
    dynamic_batch: bool = False,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    cache: ArtifactCache | None = None,
) -> tuple[Path, AotiExport | None]:
    """The validated package for this stage, shape, precision and device: from the cache or compiled into it."""
    device = torch.device(device)
    _check_precision(precision, device)
    cache = cache if cache is not None else ArtifactCache()
    key = stage_key(
        "aoti",
        stage,
        stage_name=stage_name,
        model_name=model_name,
        height=height,
        width=width,
        batch=batch,
        dynamic_batch=dynamic_batch,
        precision=precision,
        device=device_label(device),
    )

    def build(tmp: Path) -> AotiExport:
        named = tmp.with_suffix(".pt2")  # aoti_compile_and_package insists on a .pt2 name
        try:
            report = compile_aoti(
                stage,
                named,
                height,
                width,
                stage_name=stage_name,
                batch=batch,
                dynamic_batch=dynamic_batch,
                device=device,
                precision=precision,
                log=cache.log,
            )
            os.replace(named, tmp)
        finally:
            named.unlink(missing_ok=True)
        return report

    path, report = cache.get_or_build(key, ".pt2", build)
    if report is not None:
        report = AotiExport(report.stage, path, report.device, report.precision, report.seconds, report.validation)
    return path, report

"""Stage -> AOTInductor package (`.pt2`): torch.export, then `torch._inductor.aoti_compile_and_package`.

The package holds the compiled kernels and the weights; `torch._inductor.aoti_load_package` runs it with no
model code. vidseg's custom ops (`vidseg::warp`, `vidseg::creff`) go in one of two ways (`op_lowering`):
- CUDA packages, and CPU packages built `portable`: decomposed to their reference composition
  (`vidseg.export.program.export_stage`), which Inductor fuses into its own kernels. The package then runs with
  torch alone.
- CPU packages by default: kept as calls to vidseg's CPU kernels (fed channels-last), which AOTInductor makes
  through the dispatcher. Why: Inductor's code for the composition ran them ~3x slower (arseg-bise18's non-key
  package at 512x1024, one thread: warp 21 -> 3 ms, CReFF with its convolutions 70 -> 35 ms; the stage ~12 %
  faster). Such a package needs `vidseg.kernels.ops` imported (the op registrations) in the process that loads it,
  as `load_aoti` does.

Precision: fp32 on any device; fp16/bf16 on CUDA (the stage is exported with its weights and float inputs in
that dtype; uint8 frames stay uint8). A package is compiled for one device type and fixed frame size, and a
dynamic batch if asked for. `vidseg.export.builder` caches packages and writes them into export folders.

On a CPU in fp32 the stage's 3x3 stride-1 convolutions with at least `MIN_CHANNELS` input and output channels
are compiled as Winograd F(4x4, 3x3) (`vidseg.kernels.winograd`, `CPU_CONV_ALGORITHM`): 4x fewer multiply-adds in
those layers, validated against the direct convolution of the original stage. GPUs keep the direct convolution
(cuDNN picks its own algorithms).
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
from vidseg.export.program import CREFF_LOWERING, export_stage
from vidseg.export.validate import (
    LOGIT_TOLERANCE,
    REDUCED_TOLERANCE,
    ValidationReport,
    compare_outputs,
    validation_inputs,
)
from vidseg.models.base import Stage

__all__ = ["AOTI_DTYPES", "AotiExport", "check_precision", "compile_aoti", "device_label", "load_aoti", "op_lowering",
           "validate_aoti"]

AOTI_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# With its layer rule and Inductor options, part of the packages' cache key: a change rebuilds them.
CPU_CONV_ALGORITHM = "winograd-f4x4"


def conv_algorithm(device: torch.device, dtype: torch.dtype) -> str:
    """How a package on device computes 3x3 stride-1 convolutions: Winograd on a CPU in fp32, else direct."""
    if device.type != "cpu" or dtype != torch.float32:
        return "direct"
    from vidseg.kernels.winograd import INDUCTOR_OPTIONS, MIN_CHANNELS

    options = "".join(f"-{name}={value}" for name, value in sorted(INDUCTOR_OPTIONS.items()))
    return f"{CPU_CONV_ALGORITHM}-c{MIN_CHANNELS}{options}"


# How a package computes vidseg's ops when it keeps them (part of the packages' cache key, like CREFF_LOWERING).
CPU_KERNEL_LOWERING = "cpu-kernels"


def op_lowering(device: torch.device, portable: bool = False) -> str:
    """How a package on `device` computes vidseg's ops: vidseg's CPU kernels, unless portable or not a CPU."""
    return CREFF_LOWERING if portable or device.type != "cpu" else CPU_KERNEL_LOWERING


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


def check_precision(precision: str, device: torch.device) -> torch.dtype:
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
    portable: bool = False,
    validate: bool = True,
    log: Callable[[str], None] = lambda line: None,
) -> AotiExport:
    """Export and compile `stage` into an AOTInductor package at `path`; validate it against the stage.

    portable: a CPU package that runs with torch alone (vidseg's ops decomposed; see the module docstring)."""
    device = torch.device(device)
    dtype = check_precision(precision, device)
    name = stage_name or type(stage).__name__
    target = copy.deepcopy(stage).eval().to(device=device, dtype=dtype)
    compiled, options = target, {}
    if conv_algorithm(device, dtype) != "direct":
        from vidseg.kernels.winograd import INDUCTOR_OPTIONS, use_winograd

        compiled = copy.deepcopy(target)
        if use_winograd(compiled):
            log(f"aoti: stage {name!r}: 3x3 convolutions as Winograd F(4x4, 3x3)")
            options = INDUCTOR_OPTIONS
    start = time.perf_counter()
    program = export_stage(compiled, height, width, batch=batch, dynamic_batch=dynamic_batch, device=device,
                           dtype=dtype, kernel_ops=op_lowering(device, portable) == CPU_KERNEL_LOWERING)
    log(f"aoti: compiling stage {name!r} for {device} ({precision}); this takes a while")
    try:
        # A copy: aoti_compile_and_package adds its own entries to the dict it is given, and INDUCTOR_OPTIONS is
        # also part of the packages' cache key.
        out = torch._inductor.aoti_compile_and_package(program, package_path=str(path),
                                                       inductor_configs=dict(options))
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

    def on_device(inputs: Sequence[Tensor]) -> list[Tensor]:
        return [(t.to(dtype) if t.is_floating_point() else t).to(device) for t in inputs]

    return compare_outputs(
        lambda *inputs: stage(*on_device(inputs)),
        lambda *inputs: package(*on_device(inputs)),
        stage.output_names,
        input_sets,
        tolerance=LOGIT_TOLERANCE if dtype == torch.float32 else REDUCED_TOLERANCE,
    )


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"cuda:{props.name}:sm_{props.major}{props.minor}"
    return "cpu"

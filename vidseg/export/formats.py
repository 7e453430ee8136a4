"""The export formats, in one table that the builder, the runners, `vidseg-export --list-formats` and the README
read: what each format writes, what it needs, where it runs, which shapes may vary and at which precisions.

Each format is run by the backend of the same name (`vidseg.config.BACKENDS`).
"""

from __future__ import annotations

from dataclasses import dataclass

from vidseg.errors import ConfigError

__all__ = ["DEFAULT_OPSET", "FORMATS", "ExportFormat", "format_table", "get_format", "print_formats", "print_table"]

DEFAULT_OPSET = 20  # the ONNX opset exported: TensorRT 10.0 parses opsets 9-20, 10.15 up to 24


@dataclass(frozen=True)
class ExportFormat:
    name: str  # --format value; also the backend (runner) that runs it
    suffix: str  # the artifact file's suffix
    needs: str  # packages (and hardware) it needs
    device: str  # where an artifact runs
    dynamic_size: bool  # height/width may vary at run time (the batch may in every format)
    precisions: tuple[str, ...]
    notes: str = ""

    @property
    def dynamic(self) -> str:
        return "batch, height/width" if self.dynamic_size else "batch"


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "onnx", ".onnx", "onnxruntime (CPU); onnxruntime-gpu (CUDA)", "CPU, CUDA", True, ("fp32",),
            "fp16 at run time via ONNX Runtime's TensorRT provider",
        ),
        ExportFormat(
            "trt", ".engine (+ its .onnx)", "tensorrt >= 10, an NVIDIA GPU", "the GPU and TensorRT it was built on",
            False, ("fp32", "fp16", "bf16", "int8"), "int8 calibrates on a video (--calib)",
        ),
        ExportFormat(
            "aoti", ".pt2", "torch (same version); on a CPU also vidseg, unless --portable; a C++ compiler to build",
            "the device type it was built for",
            False, ("fp32", "fp16", "bf16"), "fp16/bf16 on CUDA only",
        ),
    )
}


def get_format(name: str) -> ExportFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"unknown export format {name!r}; choose one of {', '.join(FORMATS)}") from None


def format_table():
    """The table as a rich Table (columns: format, file, needs, device, dynamic shapes, precisions, notes)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="vidseg export formats")
    for column in ("format", "file", "needs", "device", "dynamic shapes", "precisions", "notes"):
        table.add_column(column, overflow="fold")
    for f in FORMATS.values():
        cells = (f.name, f.suffix, f.needs, f.device, f.dynamic, ", ".join(f.precisions), f.notes)
        table.add_row(*(escape(c) for c in cells))
    return table


def print_formats(file=None) -> None:
    """Print the format table (see `print_table`)."""
    print_table(format_table(), file)


def print_table(table, file=None) -> None:
    """Print a rich table whole: as wide as it needs, whatever the terminal's width (never cut at 80 columns)."""
    from rich.console import Console

    width = Console(width=1000).measure(table).maximum
    Console(file=file, width=max(width, 80)).print(table)

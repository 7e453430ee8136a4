"""vidseg-export: turn a model's stages into deployable artifacts (ONNX, TensorRT engines, AOTInductor packages).

    vidseg-export --model psp18-cityscapes --weights psp.pth --format onnx --res 1024x2048 --out deploy/
    vidseg-export --model arseg-psp18-camvid --weights HR.pth,AR.pth --method arseg --format trt \\
        --precision int8 --calib clip.mp4 --out deploy/

Exports the stages the method runs (per-frame: key; arseg: key, nonkey (+flow if the model has one);
flowwarp: key, flow, refine), validates each against PyTorch, and prints one row per artifact with its size and
validation figures. `DIR/manifest.json` records bindings, shapes, versions and figures for deployment.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from vidseg.cli.common import cli_entry
from vidseg.errors import ConfigError, ExportError

FORMATS = ("onnx", "trt", "aoti")


def _parse_res(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--res must be HEIGHTxWIDTH, e.g. 1024x2048; got {text!r}") from None
    if height < 8 or width < 8:
        raise argparse.ArgumentTypeError(f"--res {text!r} is too small")
    return height, width


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidseg-export", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="registry name (vidseg-run --list-models)")
    p.add_argument("--weights", help="checkpoint path (AR-Seg: HR.pth,AR.pth); random weights without it")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--res", type=_parse_res, help="frame size HEIGHTxWIDTH (default: the model's input size)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16", "int8"))
    p.add_argument("--calib", metavar="VIDEO", help="video whose frames calibrate int8 (trt)")
    p.add_argument("--calib-frames", type=int, default=64, help="calibration frames to read (default 64)")
    p.add_argument("--method", choices=("per-frame", "arseg", "flowwarp"), help="default: the model's first")
    p.add_argument("--batch", type=int, default=1, help="max batch; > 1 gives a dynamic batch 1..N")
    p.add_argument("--device", default="auto", help="aoti/trt device: cpu, cuda, cuda:N, auto")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.format == "onnx" and args.precision != "fp32":
        raise ConfigError("ONNX artifacts are fp32 (reduced precision is chosen when TensorRT builds the engine)")
    if args.precision == "int8" and (args.format != "trt" or not args.calib):
        raise ConfigError("int8 needs --format trt and --calib VIDEO (real frames of the scenes you will run)")
    if args.batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {args.batch}")

    from vidseg.config import EngineConfig
    from vidseg.engine import engine
    from vidseg.engine.methods import make_method

    if args.format == "trt":  # fail before spending minutes on ONNX exports
        from vidseg.export.tensorrt import import_tensorrt

        import_tensorrt()

    model = engine.load_model(EngineConfig(model=args.model, weights=args.weights))
    method_name = args.method or model.methods[0]
    stages = model.stages()
    method = make_method(method_name, list(stages))
    names = [s for s in stages if s in method.required or (method_name == "arseg" and s == "flow")]
    height, width = args.res or model.spec.input_size
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        stage = stages[name].eval()
        base = args.out / f"{args.model}-{name}-{height}x{width}"
        rows.append(_export_one(args, stages, name, stage, base, height, width))
    manifest = {
        "model": args.model,
        "weights": args.weights,
        "method": method_name,
        "format": args.format,
        "precision": args.precision,
        "frame_size": [height, width],
        "batch": args.batch,
        "spec": {"num_classes": model.spec.num_classes, "palette": model.spec.palette},
        "versions": _versions(),
        "artifacts": rows,
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    _print_table(args, rows, height, width)
    return 0


def _export_one(args, stages, name, stage, base: Path, height: int, width: int) -> dict:
    from vidseg.export.onnx import export_onnx

    dynamic = args.batch > 1
    row: dict = {"stage": name, "inputs": list(stage.input_names), "outputs": list(stage.output_names)}
    if args.format in ("onnx", "trt"):
        report = export_onnx(
            stage,
            base.with_suffix(".onnx"),
            height,
            width,
            stage_name=name,
            batch=args.batch,
            dynamic_batch=dynamic,
            log=_err,
        )
        row.update(
            file=str(report.path),
            size=report.size_bytes,
            exporter=report.exporter,
            opset=report.opset,
            seconds=round(report.seconds, 2),
            validation=_validation(report.validation),
            trt_problems=list(report.trt_problems),
            shapes={k: [list(s), d] for k, (s, d) in report.inputs.items()},
        )
        if args.format == "trt":
            if report.trt_problems:
                raise ExportError(f"stage {name!r}: TensorRT cannot parse {'; '.join(report.trt_problems)}")
            row["onnx"] = row["file"]
            row.update(_build_trt(args, stages, name, stage, report.path, base, height, width))
    else:
        row.update(_build_aoti(args, stage, name, base, height, width))
    return row


def _build_trt(args, stages, name, stage, onnx_path: Path, base: Path, height: int, width: int) -> dict:
    import torch

    from vidseg.device import resolve_device
    from vidseg.export import tensorrt as trt_export

    trt = trt_export.import_tensorrt()
    device = resolve_device(args.device)
    if device.type != "cuda":
        raise ConfigError("building a TensorRT engine needs a CUDA device (--device cuda)")
    shapes = stage.input_shapes(height, width, args.batch)
    if args.batch > 1:
        profiles = {n: trt_export.ShapeProfile.batch(s, args.batch) for n, (s, _) in shapes.items()}
    else:
        profiles = {n: trt_export.ShapeProfile.static(s) for n, (s, _) in shapes.items()}
    calibrator = None
    if args.precision == "int8":
        frames = trt_export.calibration_frames(args.calib, (height, width), count=args.calib_frames)
        samples = trt_export.calibration_samples(stages, name, frames, (height, width))
        batches = trt_export.CalibrationBatcher(samples, stage.input_names, args.batch)
        calibrator = trt_export.make_entropy_calibrator(trt, batches, device, base.with_suffix(".calib"), log=_err)
    engine = base.with_name(f"{base.name}-{args.precision}.engine")
    report = trt_export.build_engine(
        onnx_path,
        engine,
        precision=args.precision,
        profiles=profiles,
        calibrator=calibrator,
        timing_cache=args.out / "timing.cache",
        trt=trt,
        log=_err,
    )
    name_, capability = trt_export.gpu_identity(device)
    return {
        "file": str(report.engine),
        "size": report.size_bytes,
        "seconds": round(report.seconds, 2),
        "tensorrt": report.tensorrt_version,
        "gpu": f"{name_} {capability}",
        "calibration_batches": report.calibration_batches,
        "torch_cuda": torch.version.cuda,
    }


def _build_aoti(args, stage, name, base: Path, height: int, width: int) -> dict:
    from vidseg.device import resolve_device
    from vidseg.export.aoti import compile_aoti

    device = resolve_device(args.device)
    path = base.with_name(f"{base.name}-{args.precision}-{device.type}.pt2")
    report = compile_aoti(
        stage,
        path,
        height,
        width,
        stage_name=name,
        batch=args.batch,
        dynamic_batch=args.batch > 1,
        device=device,
        precision=args.precision,
        log=_err,
    )
    return {
        "file": str(report.path),
        "size": report.size_bytes,
        "seconds": round(report.seconds, 2),
        "device": report.device,
        "validation": _validation(report.validation),
    }


def _validation(v) -> dict | None:
    if v is None:
        return None
    return {
        "frames": v.frames,
        "max_abs_diff": v.max_abs_diff,
        "argmax_agreement": v.argmax_agreement,
        "passed": v.passed,
    }


def _versions() -> dict:
    import onnx
    import onnxruntime
    import torch

    from vidseg import __version__

    return {
        "vidseg": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def _print_table(args, rows: list[dict], height: int, width: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"vidseg-export {args.model} -> {args.format} ({args.precision}, {height}x{width})")
    for col in ("stage", "artifact", "size", "build", "max |diff|", "argmax agree", "TensorRT ops"):
        table.add_column(col, justify="right" if col in ("size", "build") else "left", overflow="fold")
    for row in rows:
        v = row.get("validation") or {}
        diffs = max((v.get("max_abs_diff") or {}).values(), default=None)
        agree = ", ".join(f"{100 * a:.2f}%" for a in (v.get("argmax_agreement") or {}).values()) or "-"
        if "trt_problems" in row:
            ops = "ok" if not row["trt_problems"] else f"{len(row['trt_problems'])} problems"
        else:
            ops = "-"
        table.add_row(
            row["stage"],
            Path(row["file"]).name,
            f"{row['size'] / 2**20:.1f} MiB",
            f"{row['seconds']:.1f}s",
            "-" if diffs is None else f"{diffs:.1e}",
            agree,
            ops,
        )
    Console().print(table)
    print(f"manifest: {args.out / 'manifest.json'}")


def _err(line: str) -> None:
    print(line, file=sys.stderr)


if __name__ == "__main__":
    main()

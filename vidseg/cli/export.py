"""vidseg-export: write a folder that runs a model on its own (ONNX graphs, TensorRT engines or AOTInductor packages).

    vidseg-export --model demo --out deploy/
    vidseg-export --model psp18-cityscapes --weights psp.pth --res 1024x2048 --dynamic --out deploy/
    vidseg-export --model arseg-psp18-camvid --weights HR.pth,AR.pth --format trt --precision int8 \\
        --calib clip.mp4 --out deploy/
    vidseg-export --list-formats

The folder holds one artifact per stage the method may run (per-frame: key; arseg: key, nonkey, and flow when
the model has one; flowwarp: key, flow, refine), each validated against PyTorch, and manifest.json (model, method,
stages with their shapes, precision, classes, versions), from which `vidseg.export.load_export(DIR)` builds a
runner without the PyTorch model. The method defaults to the model's default (its first keyframe method).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
from pathlib import Path

from vidseg.cli.common import cli_entry
from vidseg.config import METHODS
from vidseg.export.formats import FORMATS, print_formats, print_table


def _parse_res(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--res must be HEIGHTxWIDTH, e.g. 1024x2048; got {text!r}") from None
    if height < 8 or width < 8:
        raise argparse.ArgumentTypeError(f"--res {text!r} is too small")
    return height, width


def build_parser() -> argparse.ArgumentParser:
    table = io.StringIO()
    print_formats(file=table)
    p = argparse.ArgumentParser(
        prog="vidseg-export",
        description=__doc__.split("\n\n")[0],
        epilog=table.getvalue(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default="demo",
                   help="registry name of the model to export (default: the built-in demo model; vidseg-run "
                        "--list-models)")
    p.add_argument("--weights", help="checkpoint path (AR-Seg: HR.pth,AR.pth)")
    p.add_argument("--random-weights", action="store_true",
                   help="export a zoo model without trained weights (for timing and deployment tests only)")
    p.add_argument("--format", choices=tuple(FORMATS), default="onnx", help="artifact format (default onnx)")
    p.add_argument("--res", type=_parse_res, help="frame size HEIGHTxWIDTH (default: the model's input size)")
    p.add_argument("--dynamic", action="store_true",
                   help="dynamic height/width (onnx): frames of any size; validated at --res and a second size")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16", "int8"))
    p.add_argument("--calib", metavar="VIDEO", help="video whose frames calibrate int8 (trt)")
    p.add_argument("--calib-frames", type=int, default=64, help="calibration frames to read (default 64)")
    p.add_argument("--method", choices=tuple(METHODS),
                   help="default: the model's first keyframe method (as vidseg-run picks), else per-frame")
    p.add_argument("--lr-scale", type=float, help="arseg LR scale (default: the AR checkpoint's, else the model's)")
    p.add_argument("--batch", type=int, default=1, help="max batch; > 1 gives a dynamic batch 1..N")
    p.add_argument("--device", default="auto", help="aoti/trt device: cpu, cuda, cuda:N, auto")
    p.add_argument("--portable", action="store_true",
                   help="aoti on a CPU: packages that run with torch alone, without vidseg installed (by default they "
                        "call vidseg's faster CPU kernels for the warp and CReFF)")
    p.add_argument("--out", type=Path, help="output folder (default: a new vidseg-out/exportN; an existing folder's "
                   "manifest.json is replaced)")
    p.add_argument("--list-formats", action="store_true", help="print the export formats and exit")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_formats:
        print_formats()
        return 0

    from vidseg.config import EngineConfig
    from vidseg.device import resolve_device
    from vidseg.engine import engine
    from vidseg.engine.methods import method_for
    from vidseg.export.builder import ArtifactBuilder, BuildRequest, Calibration
    from vidseg.export.files import ExportFolder
    from vidseg.export.manifest import MANIFEST_NAME, build_manifest, write_manifest

    # Every refusal (format x precision, dynamic sizes, int8 without frames, TensorRT missing) before any work.
    device = resolve_device(args.device) if args.format != "onnx" else None
    request = BuildRequest(
        args.format,
        args.res or (8, 8),  # the model's input size replaces this once the model is loaded
        precision=args.precision,
        batch=args.batch,
        dynamic_size=args.dynamic,
        device=str(device or "cpu"),
        model_name=args.model,
        calibration=Calibration(args.calib, frames=args.calib_frames) if args.calib else None,
        portable=args.portable,
    )
    config = EngineConfig(model=args.model, weights=args.weights, random_weights=args.random_weights,
                          method=args.method, lr_scale=args.lr_scale)
    if args.out is None:
        from vidseg.cli.outputs import output_dir

        args.out = output_dir(None, prefix="export")
    folder = ExportFolder(args.out, log=_err)
    ArtifactBuilder(request, folder, log=_err).check_can_build()

    model = engine.load_model(config)
    method = method_for(model, config)  # None: the model's default method, as vidseg-run picks it
    request = dataclasses.replace(request, frame_size=args.res or tuple(model.spec.input_size))
    builder = ArtifactBuilder(request, folder, log=_err)
    (folder.root / MANIFEST_NAME).unlink(missing_ok=True)  # the folder runs again only once this export is whole
    try:
        artifacts = builder.build(model.stages(**method.stage_options()), list(method.stages))
        runnable = [method_for(model, config.replace(method=m)) for m in model.methods]
        methods = [m.name for m in runnable if set(m.stages) <= set(artifacts)]
        lr_scale = method.lr_scale if method.lr_scale is not None else model.spec.lr_scale
        manifest = build_manifest(folder.root, model, model_name=args.model, weights=args.weights, method=method.name,
                                  methods=methods, request=request, artifacts=artifacts, lr_scale=lr_scale)
        path = write_manifest(folder.root, manifest)
    except BaseException:
        folder.discard()
        raise
    _print_table(args.model, request, artifacts)
    print(f"manifest: {path}\nrun it: vidseg-run VIDEO --model {folder.root}   (Python: "
          f"Engine(EngineConfig(model={str(folder.root)!r})))")
    return 0


def _print_table(model_name: str, request, artifacts) -> None:
    from rich.table import Table

    height, width = request.frame_size
    size = f"{height}x{width}" + (", dynamic height/width" if request.dynamic_size else "")
    table = Table(title=f"vidseg-export {model_name} -> {request.format} ({request.precision}, {size})")
    for col in ("stage", "artifact", "size", "build", "max |diff|", "argmax agree", "TensorRT ops"):
        table.add_column(col, justify="right" if col in ("size", "build") else "left", overflow="fold")
    for name, artifact in artifacts.items():
        details = artifact.details or {}
        v = details.get("validation") or {}
        diffs = max((v.get("max_abs_diff") or {}).values(), default=None)
        agree = ", ".join(f"{100 * a:.2f}%" for a in (v.get("argmax_agreement") or {}).values()) or "-"
        problems = details.get("trt_problems")
        ops = "-" if problems is None else ("ok" if not problems else f"{len(problems)} problems")
        table.add_row(
            name,
            artifact.path.name,
            f"{artifact.path.stat().st_size / 2**20:.1f} MiB",
            f"{details.get('seconds', 0):.1f}s",
            "-" if diffs is None else f"{diffs:.1e}",
            agree,
            ops,
        )
    print_table(table)


def _err(line: str) -> None:
    print(line, file=sys.stderr)


if __name__ == "__main__":
    main()

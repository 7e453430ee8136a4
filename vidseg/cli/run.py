"""vidseg-run: segment a video (or a synthetic demo clip) and print what the run did.

    vidseg-run INPUT [--model NAME --weights PATH] [--method per-frame|arseg|flowwarp]
               [--engine auto|torch|compile|onnx|aoti|trt] [--precision fp32|fp16|bf16]
               [--keyframe-interval L | --keyframes gop|adaptive] [--lr-scale 0.5] [--out DIR]
               [--save overlay,labels,npz] [--device cpu|cuda] [--live] [--list-models] [--demo]

A progress bar runs while frames are processed, then a summary table: frames, keyframes, frames/s, latency per
frame type (mean, p99), time per stage, drops (live mode) and every fallback taken. Errors print one line.
Ctrl-C stops the run; the outputs written so far are flushed and playable.

    vidseg-run INPUTS... --cluster [local|auto|ray://HOST:PORT] [--resume] [--workers N]

runs many inputs (files, folders, globs, .txt/.jsonl manifests, URLs) on a Ray cluster: vidseg.cluster.cli.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from pathlib import Path

from vidseg.cli.common import cli_entry
from vidseg.config import BACKENDS, METHODS, PRECISIONS, SAVE_KINDS, EngineConfig
from vidseg.errors import ConfigError, InputError

__all__ = ["main", "build_parser", "SAVE_KINDS"]

DEMO_SIZE = (256, 512)
DEMO_FRAMES = 48


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vidseg-run",
        description="Real-time video semantic segmentation: full compute on keyframes, cheap non-keyframes.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="video file (H.264 carries codec motion vectors; HEVC/VP9 do not); with --cluster, any "
                        "number of files, folders, globs, .txt/.jsonl manifests and URLs")
    p.add_argument("--model", help="registered model name (default: the built-in demo model); see --list-models")
    p.add_argument("--weights", help="checkpoint path; AR-Seg pairs take 'HR.pth,AR.pth' or AR-Seg's "
                   "checkpoints/<dataset>-<backbone> folder (HR/ and AR/)")
    p.add_argument("--method", choices=METHODS, default=None,
                   help="per-frame: full network on every frame; arseg: keyframes + LR/CReFF with codec motion; "
                        "flowwarp: keyframes + flow warp and refinement (default: the model's first method)")
    p.add_argument("--engine", choices=BACKENDS, default="auto", help="backend (default: the fastest available)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--keyframe-interval", type=int, metavar="L", help="a keyframe every L frames (default 12)")
    keys.add_argument("--keyframes", choices=("gop", "adaptive"),
                      help="gop: every codec I-frame; adaptive: when motion since the key passes a threshold")
    p.add_argument("--lr-scale", type=float, default=None,
                   help="downscale of the AR-Seg non-key branch (default: the scale in the AR checkpoint's name, "
                        "else 0.5)")
    p.add_argument("--out", type=Path, help="output directory (default: vidseg-out)")
    p.add_argument("--save", help=f"comma-separated outputs: {', '.join(SAVE_KINDS)} (default: overlay with --demo)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--live", action="store_true",
                   help="real-time: drop frames that arrive while the engine is busy (counted)")
    p.add_argument("--list-models", action="store_true", help="list the registered models and exit")
    p.add_argument("--demo", action="store_true",
                   help=f"render a synthetic street clip ({DEMO_FRAMES} frames, {DEMO_SIZE[0]}x{DEMO_SIZE[1]}) into "
                        "the output directory and run on it")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--cluster", nargs="?", const="local", metavar="ADDRESS",
                   help="process the inputs on Ray: local (this machine; the default), auto (a cluster started "
                        "with `ray start`), ray://HOST:PORT; outputs in OUT/<input name>/ (labels unless --save says "
                        "otherwise; needs the cluster extra)")
    p.add_argument("--resume", action="store_true", help="with --cluster: skip inputs a previous run completed")
    p.add_argument("--workers", type=int, metavar="N", help="with --cluster: at most N workers (default: one per "
                   "GPU, else per CPU)")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_models:
        return _list_models()
    if args.cluster is not None:
        from vidseg.cluster.cli import main as cluster_main

        return cluster_main(args, _config(args), _parse_save(args.save, demo=False))
    if len(args.inputs) > 1 or args.resume or args.workers is not None:
        raise ConfigError("several inputs, --resume and --workers need --cluster: add --cluster local (this "
                          "machine) or --cluster auto (a running Ray cluster)")
    args.input = args.inputs[0] if args.inputs else None
    if args.input is None and not args.demo:
        raise InputError("give an input video (vidseg-run INPUT) or --demo for a synthetic clip")
    if args.input is not None and args.demo:
        raise ConfigError("give either an input video or --demo, not both")
    if args.input is not None and Path(args.input).is_dir():
        raise InputError(f"{args.input}: is a directory, not a video file; give the path of a video file, or add "
                         "--cluster local to process every video in it")
    if args.input is not None and not Path(args.input).is_file():
        raise InputError(f"{args.input}: no such file; check the path")
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {args.max_frames}; leave it out to process every frame")
    save = _parse_save(args.save, demo=args.demo)
    out = args.out or Path("vidseg-out")
    if (save or args.demo) and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory; give a directory path (it is created)")

    from vidseg.engine.engine import Engine, load_model

    config = _config(args)
    engine = Engine(config, model=load_model(config))  # method None: the model's keyframe method
    source = _demo_clip(out) if args.demo else Path(args.input)
    sinks = _sinks(save, out, source, engine.spec.palette)
    return _run(engine, source, sinks, args)


def _config(args: argparse.Namespace) -> EngineConfig:
    keyframes = {"keyframes": args.keyframes} if args.keyframes else {}
    if args.keyframe_interval is not None:
        keyframes = {"keyframes": "interval", "keyframe_interval": args.keyframe_interval}
    return EngineConfig(
        model=args.model,
        weights=args.weights,
        method=args.method,
        backend=args.engine,
        precision=args.precision,
        lr_scale=args.lr_scale,
        device=args.device,
        live=args.live,
        **keyframes,
    )


def _parse_save(save: str | None, *, demo: bool) -> tuple[str, ...]:
    if save is None:
        return ("overlay",) if demo else ()
    kinds = tuple(s.strip() for s in save.split(",") if s.strip())
    if not kinds:
        raise ConfigError(f"--save {save!r} names no output; choose from {', '.join(SAVE_KINDS)}")
    unknown = [k for k in kinds if k not in SAVE_KINDS]
    if unknown:
        raise ConfigError(f"unknown --save kind(s) {', '.join(unknown)}; choose from {', '.join(SAVE_KINDS)}")
    return kinds


def _demo_clip(out: Path) -> Path:
    try:
        from vidseg.video.synthetic import SceneConfig, write_clip
    except ModuleNotFoundError as err:
        raise ConfigError("--demo needs vidseg.video.synthetic, which is not installed in this version") from err
    out.mkdir(parents=True, exist_ok=True)
    path = out / "demo.mp4"
    write_clip(path, SceneConfig(height=DEMO_SIZE[0], width=DEMO_SIZE[1]), DEMO_FRAMES, ground_truth=False)
    return path


def _sinks(save: tuple[str, ...], out: Path, source: Path, palette: str) -> list:
    if not save:
        return []
    from vidseg.video.save import make_sinks

    out.mkdir(parents=True, exist_ok=True)
    fps = _probe_fps(source) if "overlay" in save else None
    return make_sinks(save, out, source.stem, fps=fps, palette=palette)


def _probe(source: Path) -> tuple[int | None, float | None]:
    """(frame count, fps) from the container, without decoding; (None, None) when unknown."""
    try:
        import av

        with av.open(str(source)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            return (stream.frames or None), (float(rate) if rate else None)
    except Exception:  # noqa: BLE001 - only a hint for the progress bar; decoding reports real errors
        return None, None


def _probe_fps(source: Path) -> float | None:
    return _probe(source)[1]


def _run(engine, source: Path, sinks: list, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    total, _ = _probe(source)
    if args.max_frames is not None and total is not None:
        total = min(total, args.max_frames)
    # delay: a run that fails at once (not a video, ...) prints its one-line error without an empty bar first.
    bar = tqdm(total=total, unit="frame", desc=source.name, disable=args.no_progress, file=sys.stderr,
               dynamic_ncols=True, delay=1.0)
    interrupted = False
    with _one_line_warnings():
        try:
            with contextlib.closing(engine.run(source, sinks=sinks, max_frames=args.max_frames)) as results:
                for _ in results:
                    bar.update(1)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
            for sink in sinks:  # the engine closed them already; closing twice is harmless
                with contextlib.suppress(Exception):
                    sink.close()
    if engine.summary is not None:
        print_summary(engine.summary, [getattr(s, "path", getattr(s, "directory", "")) for s in sinks])
    if interrupted:
        raise KeyboardInterrupt
    return 0


@contextlib.contextmanager
def _one_line_warnings():
    """Fallback warnings print as one 'note:' line each (they are in the summary too)."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"note: {message}", file=sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def print_summary(summary, outputs: list | None = None) -> None:
    """The run summary as a rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"vidseg-run: {summary.source}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    scale = f", LR scale {summary.lr_scale:g}" if summary.lr_scale is not None else ""
    table.add_row("method", f"{summary.method}{scale} (keyframes: {summary.policy})")
    table.add_row("backend", summary.backend)
    table.add_row("frames", f"{summary.frames} ({summary.keyframes} keyframes)" +
                  (" - interrupted" if summary.interrupted else ""))
    startup = f", of which {summary.startup_s:.2f} s engine start-up" if summary.startup_s >= 0.005 else ""
    table.add_row("frames/s", f"{summary.fps:.2f} ({summary.wall_s:.2f} s wall{startup})")
    for kind in ("key", "non-key", "all"):
        lat = summary.latency[kind]
        if lat.count:
            table.add_row(f"latency {kind}", f"mean {lat.mean_ms:.1f} ms, p99 {lat.p99_ms:.1f} ms ({lat.count} frames)")
    for stage, seconds in summary.stage_s.items():
        per = seconds / max(summary.frames, 1) * 1000.0
        table.add_row(f"stage {stage}", f"{seconds:.3f} s total, {per:.1f} ms per frame")
    table.add_row("dropped", str(summary.dropped))
    table.add_row("fallbacks", "\n".join(summary.fallbacks) if summary.fallbacks else "none")
    for path in outputs or []:
        table.add_row("output", str(path))
    Console().print(table)


def _list_models() -> int:
    from vidseg.models.registry import list_models, model_builder

    for name in list_models():
        doc = (model_builder(name).__doc__ or "").strip().splitlines()
        print(f"{name:32s} {doc[0] if doc else ''}")
    return 0

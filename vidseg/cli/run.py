"""vidseg-run: segment a video (or a synthetic demo clip), save the results and say what the run did.

    vidseg-run INPUT [--model NAME --weights PATH | --random-weights] [--method per-frame|arseg|flowwarp]
               [--engine auto|torch|compile|onnx|aoti|trt] [--precision fp32|fp16|bf16]
               [--keyframe-interval L | --keyframes gop|adaptive] [--lr-scale 0.5]
               [--save overlay,labels,npz|none] [--out DIR] [--json PATH] [--device cpu|cuda] [--live]
               [--threads N] [--decode-threads N] [--encode-threads N] [--list-models] [--demo]

Results go to a new numbered folder (vidseg-out/run1, run2, ...) unless --out names one; by default the overlay
video and the label maps are saved. A progress bar runs while frames are processed, then a summary table: frames,
keyframes, frames/s, latency per frame type, time per stage call, drops (live mode), every fallback taken and
the share of each class, the share of the wall time outside the model stages, and where the results are. The
CPU cores are shared out by the thread budget (`vidseg.threads`): the model's threads, the decoder's and the
overlay encoder's, unless --threads / --decode-threads / --encode-threads (or OMP_NUM_THREADS) fix them. Errors
print one line; a run that fails part-way (a truncated file) prints its summary first. Ctrl-C stops the run; the
outputs written so far are flushed and playable.

    vidseg-run INPUTS... --cluster [local|auto|ray://HOST:PORT] [--resume] [--workers N]

runs many inputs (files, folders, globs, .txt/.jsonl manifests, URLs) on a Ray cluster: vidseg.cluster.cli.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from pathlib import Path

from vidseg.cli.common import DRIFT_LIMIT_HELP, cli_entry, drift_limit_arg
from vidseg.cli.outputs import SAVE_KINDS, check_file_target, output_dir, parse_save, stream_output
from vidseg.cli.sources import add_source_arguments, check_input, open_input, output_stem
from vidseg.config import BACKENDS, METHODS, PRECISIONS, EngineConfig
from vidseg.errors import ConfigError, InputError, VidsegError, VidsegWarning
from vidseg.threads import ThreadBudget
from vidseg.video.save import make_sinks, sink_paths

__all__ = ["main", "build_parser", "thread_budget", "SAVE_KINDS"]

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
    p.add_argument("--model", help="registered model name (default: the built-in demo model; see --list-models), "
                   "or a folder written by vidseg-export, run from its artifacts alone")
    p.add_argument("--weights", help="checkpoint path; AR-Seg pairs take 'HR.pth,AR.pth' or AR-Seg's "
                   "checkpoints/<dataset>-<backbone> folder (HR/ and AR/)")
    p.add_argument("--random-weights", action="store_true",
                   help="run a zoo model without trained weights (its labels are noise: for timing only)")
    p.add_argument("--method", choices=tuple(METHODS), default=None,
                   help="per-frame: full network on every frame; arseg: keyframes + LR/CReFF with codec motion; "
                        "flowwarp: keyframes + flow warp and refinement (default: the model's keyframe method)")
    p.add_argument("--engine", choices=BACKENDS, default="auto", help="backend (default: the fastest available)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--keyframe-interval", type=int, metavar="L", help="a keyframe every L frames (default 12)")
    keys.add_argument("--keyframes", choices=("gop", "adaptive"),
                      help="gop: every codec I-frame; adaptive: when motion since the key passes a threshold")
    p.add_argument("--drift-limit", type=drift_limit_arg, default={}, metavar="SHARE|off", help=DRIFT_LIMIT_HELP)
    p.add_argument("--lr-scale", type=float, default=None,
                   help="downscale of the AR-Seg non-key branch (default: the scale in the AR checkpoint's name, "
                        "else 0.5)")
    p.add_argument("--save", help=f"comma-separated outputs: {', '.join(SAVE_KINDS)}, or none "
                   "(default: overlay,labels)")
    p.add_argument("--out", help="output folder (default: a new vidseg-out/runN), or a stream URL for the overlay "
                                 "(rtsp://, rtmp://, udp://, tcp://, srt://)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the label colours, 0..1 (default 0.5)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the run summary as JSON to PATH")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                   help="real-time: drop frames that arrive while the engine is busy (counted); latency from arrival "
                        "(default: on for streams and cameras)")
    p.add_argument("--list-models", action="store_true", help="list the registered models and exit")
    p.add_argument("--demo", action="store_true",
                   help=f"render a synthetic street clip ({DEMO_FRAMES} frames, {DEMO_SIZE[0]}x{DEMO_SIZE[1]}) into "
                        "the output folder and run on it")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="also show other libraries' warnings")
    p.add_argument("--cluster", nargs="?", const="local", metavar="ADDRESS",
                   help="process the inputs on Ray: local (this machine; the default), auto (a cluster started "
                        "with `ray start`), ray://HOST:PORT; outputs in OUT/<input name>/ (labels unless --save says "
                        "otherwise; needs the cluster extra)")
    p.add_argument("--resume", action="store_true", help="with --cluster: skip inputs a previous run completed "
                   "(a live input starts a new session)")
    p.add_argument("--workers", type=int, metavar="N", help="with --cluster: at most N workers (default: one per "
                   "GPU, else per CPU)")
    threads = p.add_argument_group("threads (default: the thread budget shares out the physical cores)")
    threads.add_argument("--threads", type=int, metavar="N",
                         help="the model's CPU threads (default: OMP_NUM_THREADS, else the cores the budget gives it)")
    threads.add_argument("--decode-threads", type=int, metavar="N", help="FFmpeg decoder threads (0: FFmpeg's choice)")
    threads.add_argument("--encode-threads", type=int, metavar="N",
                         help="overlay encoder threads (0: the encoder's choice)")
    add_source_arguments(p)
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_models:
        from vidseg.cli.models import print_models

        return print_models()
    if args.cluster is not None:
        from vidseg.cluster.cli import main as cluster_main

        return cluster_main(args, _config(args), parse_save(args.save) if args.save is not None else None)
    if len(args.inputs) > 1 or args.resume or args.workers is not None:
        raise ConfigError("several inputs, --resume and --workers need --cluster: add --cluster local (this "
                          "machine) or --cluster auto (a running Ray cluster)")
    args.input = args.inputs[0] if args.inputs else None
    if args.input is None and not args.demo:
        raise InputError("give an input video (vidseg-run INPUT) or --demo for a synthetic clip")
    if args.input is not None and args.demo:
        raise ConfigError("give either an input video or --demo, not both")
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {args.max_frames}; leave it out to process every frame")
    save = parse_save(args.save)
    if not 0.0 <= args.alpha <= 1.0:
        raise ConfigError(f"--alpha must lie in 0..1 (0: the video alone, 1: label colours alone), got {args.alpha}")
    if not args.demo:
        _check(args.input)  # a bad input fails here, before any model loads
    if args.json is not None:
        check_file_target(args.json, "--json")
    stream = stream_output(args.out, save)  # --out URL: the overlay goes to that stream, nothing to a folder
    folder = None if stream or args.out is None else Path(args.out)
    out = output_dir(folder) if ((save and not stream) or args.demo) else None
    try:
        return _start(args, save, stream, out)
    except BaseException:
        if out is not None and folder is None:  # a numbered folder made for this run: no empty one left behind
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty
        raise


def _start(args: argparse.Namespace, save: tuple[str, ...], stream: str | None, out: Path | None) -> int:
    from vidseg.engine.engine import Engine, load_model

    budget = thread_budget(args).apply()
    config = _config(args).replace(return_logits="probs" in save)
    engine = Engine(config, model=load_model(config))  # method None: the model's keyframe method
    source = open_input(str(_demo_clip(out)) if args.demo else args.input, args, motion=engine.needs_motion,
                        threads=budget.decode)
    try:
        target = stream or out
        sinks = make_sinks(save, target, output_stem(source), palette=engine.spec.palette, fps=source.fps,
                           alpha=args.alpha, num_classes=engine.spec.num_classes,
                           encode_threads=budget.encode, encode_preset=budget.encode_preset
                           ) if target is not None else []
    except BaseException:
        source.close()
        raise
    return _run(engine, source, sinks, out, getattr(source, "length", None), args)


def thread_budget(args: argparse.Namespace) -> ThreadBudget:
    """The run's thread budget: the physical cores shared out, around what the command line (or OMP_NUM_THREADS,
    for the model's threads) fixed."""
    torch_threads = args.threads
    if torch_threads is None and os.environ.get("OMP_NUM_THREADS", "").strip().isdigit():
        torch_threads = int(os.environ["OMP_NUM_THREADS"]) or None
    return ThreadBudget.for_cores(torch=torch_threads, decode=args.decode_threads, encode=args.encode_threads)


def _config(args: argparse.Namespace) -> EngineConfig:
    keyframes = {"keyframes": args.keyframes} if args.keyframes else {}
    if args.keyframe_interval is not None:
        keyframes = {"keyframes": "interval", "keyframe_interval": args.keyframe_interval}
    return EngineConfig(
        model=args.model,
        weights=args.weights,
        random_weights=args.random_weights,
        method=args.method,
        backend=args.engine,
        precision=args.precision,
        lr_scale=args.lr_scale,
        device=args.device,
        live=bool(args.live),
        **keyframes,
        **args.drift_limit,
    )


def _check(text: str) -> None:
    """Open a video file once to check it is a readable video (exists, opens, has a video stream, decodes a
    frame), or raise the InputError that says what is wrong. Streams, cameras, stdin and image sequences are
    opened once, later: `check_input` only looks at what is there, without connecting."""
    from vidseg.video.decode import open_video
    from vidseg.video.source import source_kind

    if source_kind(text) != "file":
        check_input(text)
        return
    with open_video(text):
        pass


def _demo_clip(out: Path) -> Path:
    try:
        from vidseg.synthetic import SceneConfig, write_clip
    except ModuleNotFoundError as err:
        raise ConfigError("--demo needs vidseg.synthetic, which is not installed in this version") from err
    path = out / "demo.mp4"
    write_clip(path, SceneConfig(height=DEMO_SIZE[0], width=DEMO_SIZE[1]), DEMO_FRAMES, ground_truth=False)
    return path


def _run(engine, source, sinks: list, out: Path | None, total: int | None, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vidseg.cli.summary import print_summary, summary_record, write_json
    from vidseg.threads import applied

    if args.max_frames is not None and total is not None:
        total = min(total, args.max_frames)
    # delay: a run that fails at once prints its one-line error without an empty bar first.
    bar = tqdm(total=total, unit="frame", desc=output_stem(source), disable=args.no_progress, file=sys.stderr,
               dynamic_ncols=True, delay=1.0)
    interrupted = False
    failure: VidsegError | None = None
    with _notes(verbose=args.verbose):
        try:
            with contextlib.closing(engine.run(source, sinks=sinks, max_frames=args.max_frames,
                                               live=args.live)) as results:
                for _ in results:
                    bar.update(1)
        except KeyboardInterrupt:
            interrupted = True
        except VidsegError as err:  # e.g. a truncated file: its frames were processed; summary first
            failure = err
        finally:
            bar.close()
            for sink in sinks:  # the engine closed them already; closing twice is harmless
                with contextlib.suppress(Exception):
                    sink.close()
    summary = engine.summary
    outputs = sink_paths(sinks)
    class_names = _class_names(engine.spec)
    if summary is not None and summary.frames:
        print_summary(summary, outputs, class_names=class_names)
        if args.json is not None:
            budget = applied()
            write_json(args.json, summary_record(summary, config=engine.config, outputs=outputs,
                                                 class_names=class_names,
                                                 extra={"threads": budget.record()} if budget else None))
        if out is not None and outputs:
            print(f"results saved to {out}", file=sys.stderr)
    if interrupted:
        raise KeyboardInterrupt
    if failure is not None:
        raise failure
    return 0


def _class_names(spec) -> tuple[str, ...]:
    try:
        names = spec.label_set().classes
    except Exception:  # noqa: BLE001 - a model with its own classes: the summary numbers them instead
        return ()
    return tuple(names) if len(names) == spec.num_classes else ()


@contextlib.contextmanager
def _notes(*, verbose: bool):
    """vidseg's own notices (fallbacks, settings that contradict a checkpoint) print as one 'note:' line each
    (they are in the summary too); other libraries' warnings only with --verbose."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, VidsegWarning):
            print(f"note: {message}", file=sys.stderr)
        elif verbose:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


if __name__ == "__main__":
    main()

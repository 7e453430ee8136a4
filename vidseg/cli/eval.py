"""vidseg-eval: accuracy of a model + method on Cityscapes sequences, CamVid (AR-Seg's layout) or synthetic clips,
and the agreement of a keyframe method with the per-frame network on any video.

    vidseg-eval --data DIR --dataset cityscapes|camvid|synthetic [--model NAME --weights PATH]
                [--method per-frame|arseg|flowwarp] [--engine torch|compile|onnx|aoti|trt] [--precision fp32|...]
                [--keyframe-interval L] [--lr-scale S] [--max-distance D] [--tc] [--limit N] [--split S]
                [--miou-definition skip|zero|nan] [--per-class] [--device cpu|cuda] [--json OUT.json]
    vidseg-eval --dataset synthetic --make N [--size HxW] [--frames F] --data DIR     (renders N held-out clips)
    vidseg-eval --dataset consistency --data VIDEO_OR_FOLDER [--model demo] [--method arseg] [--frames F]

Prints mIoU_d for each keyframe distance d = 0..D, their mean (AR-Seg), the pooled avg and the min (GSVNet),
and with --tc (synthetic clips) the temporal consistency against the ground-truth flow; --json writes the same
results with the config and the environment. The protocols are in `vidseg.eval.evaluate`; the consistency
figure (no labels: per non-keyframe, the share of pixels where the keyframe method's labels equal the per-frame
network's) in `vidseg.eval.consistency`. Errors print one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vidseg.cli.common import DRIFT_LIMIT_HELP, cli_entry, drift_limit_arg, size_arg
from vidseg.config import BACKENDS, METHODS, PRECISIONS, EngineConfig
from vidseg.errors import ConfigError, DatasetError

__all__ = ["main", "build_parser"]

_EPILOG = """\
dataset layouts:
  cityscapes  DIR/leftImg8bit_sequence/<split>/<city>/*_leftImg8bit.png and DIR/gtFine/<split>/<city>/
              *_gtFine_labelIds.png (default split val); frames gt-D..gt of each annotated frame must exist
  camvid      AR-Seg's processed camvid-sequence: DIR/3M-GOP12/{decoded_GOP12_dist_<d>,MVmap_GOP12_dist_<d>,frames}
              (default split test)
  synthetic   a folder of clips written by vidseg.synthetic.write_clip (<stem>.mp4 + <stem>_gt/), or one clip;
              --make N renders N held-out road clips into the folder first when it holds none
  consistency any video, or a folder of videos: no labels; the keyframe method is compared with per-frame
keyframes: cityscapes and camvid put the key d frames before the labelled frame (interval D+1); for them
--keyframe-interval L means D = L-1. synthetic uses the clip's I-frames unless --keyframe-interval is given;
consistency the engine's default (every 12 frames, and I-frames for arseg) unless it is given."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidseg-eval", description="mIoU per keyframe distance and temporal "
                                "consistency of a video segmentation engine.", epilog=_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="dataset root (synthetic: folder of clips or one clip)")
    p.add_argument("--dataset", choices=("cityscapes", "camvid", "synthetic", "consistency"), required=True)
    p.add_argument("--make", type=int, metavar="N",
                   help="synthetic: render N held-out road clips (vidseg.synthetic.write_road_set) into --data "
                        "when it holds no clip yet, then evaluate them")
    p.add_argument("--size", type=size_arg, default=(256, 512), metavar="HxW",
                   help="--make: frame size of the clips (default 256x512)")
    p.add_argument("--frames", type=int, metavar="F",
                   help="--make: frames per clip (default 24); consistency: only the first F frames of each video")
    p.add_argument("--model", help="registered model name; see vidseg-run --list-models")
    p.add_argument("--weights", help="checkpoint path; AR-Seg pairs take 'HR.pth,AR.pth' or AR-Seg's "
                   "checkpoints/<dataset>-<backbone> folder (HR/ and AR/)")
    p.add_argument("--random-weights", action="store_true",
                   help="evaluate a zoo model without trained weights (a pipeline check: its mIoU means nothing)")
    p.add_argument("--method", choices=METHODS, help="default: the model's keyframe method when it has one")
    p.add_argument("--engine", choices=BACKENDS, default="torch", help="backend (default torch: eager PyTorch)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--keyframe-interval", type=int, metavar="L", help="see 'keyframes' below")
    p.add_argument("--drift-limit", type=drift_limit_arg, metavar="SHARE|off",
                   help=DRIFT_LIMIT_HELP.replace("default 0.05", "default: 0.05 for consistency, as vidseg-run; "
                                                 "off for the labelled datasets, whose mIoU is per nominal key "
                                                 "distance"))
    p.add_argument("--lr-scale", type=float, default=None,
                   help="downscale of the AR-Seg non-key branch (default: the scale in the AR checkpoint's name, "
                        "else 0.5)")
    p.add_argument("--max-distance", type=int, metavar="D",
                   help="largest keyframe distance scored (default 11; synthetic: GOP or interval - 1)")
    p.add_argument("--tc", action="store_true", help="temporal consistency with the ground-truth flow (synthetic)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="only the first N annotated frames (cityscapes), test frames (camvid), clips (synthetic) "
                        "or videos (consistency)")
    p.add_argument("--split", help="dataset split (default: val for cityscapes, test for camvid)")
    p.add_argument("--miou-definition", choices=("skip", "zero", "nan"), default="skip",
                   help="classes absent from labels and predictions: skip (official Cityscapes; default), "
                        "zero (GSVNet), nan (AR-Seg)")
    p.add_argument("--per-class", action="store_true", help="also print each class's IoU (pooled over d)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--json", type=Path, metavar="OUT.json", help="write results, config and environment here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p



@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.frames is not None and args.frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {args.frames}")
    if args.make is not None:
        _make_clips(args)
    if not args.data.exists():
        raise DatasetError(f"--data {args.data}: no such file or directory")
    if args.json is not None:
        from vidseg.cli.outputs import check_file_target

        check_file_target(args.json, "--json")  # before minutes of evaluation, not after
    if args.dataset == "consistency":
        return _consistency(args)
    if args.keyframe_interval is not None and args.keyframe_interval < 1:
        raise ConfigError(f"--keyframe-interval must be >= 1, got {args.keyframe_interval}")
    max_distance = args.max_distance
    if args.dataset != "synthetic" and args.keyframe_interval is not None:
        if max_distance is not None and max_distance >= args.keyframe_interval:
            raise ConfigError(f"--max-distance {max_distance} is not below --keyframe-interval "
                              f"{args.keyframe_interval}: a frame that far would be a keyframe")
        if max_distance is None:
            max_distance = args.keyframe_interval - 1

    from vidseg.eval.evaluate import evaluate

    config = _config(args)  # method None: the model's keyframe method
    with _progress(args) as progress:
        try:
            result = evaluate(config, args.dataset, args.data, max_distance=max_distance,
                              limit=args.limit, split=args.split, tc=args.tc, absent=args.miou_definition,
                              progress=progress)
        except DatasetError as err:  # the readers list the layout over several lines: one line here
            raise DatasetError(" ".join(line.strip() for line in str(err).splitlines() if line.strip())) from err
    _print(result, args)
    if args.json is not None:
        _write_json(args.json, result, config, args)
    return 0


def _make_clips(args: argparse.Namespace) -> None:
    """--make N: render N held-out road clips into --data, unless it already holds synthetic clips."""
    if args.dataset != "synthetic":
        raise ConfigError("--make renders synthetic clips: use it with --dataset synthetic")
    if args.make < 1:
        raise ConfigError(f"--make must be >= 1 (clips to render), got {args.make}")
    h, w = args.size
    if h < 16 or w < 16 or h % 2 or w % 2:
        raise ConfigError(f"--size {h}x{w}: clips need an even height and width of at least 16")
    if args.data.is_file():
        raise ConfigError(f"--make renders into a folder; --data {args.data} is a file")
    if args.data.is_dir() and any(args.data.glob("*_gt/meta.json")):
        print(f"{args.data} already holds synthetic clips: evaluating those (--make renders only into a folder "
              "without clips)", file=sys.stderr)
        return
    from vidseg.synthetic import write_road_set

    paths = write_road_set(args.data, args.make, (h, w), split="heldout", num_frames=args.frames or 24,
                           progress=not args.no_progress and sys.stderr.isatty())
    print(f"rendered {len(paths)} held-out road clips ({h}x{w}, {args.frames or 24} frames, GOP 12) into "
          f"{args.data}", file=sys.stderr)


def _consistency(args: argparse.Namespace) -> int:
    """--dataset consistency: agreement of the keyframe method with per-frame on every non-keyframe."""
    from vidseg.eval.consistency import find_videos, measure_agreement

    videos = find_videos(args.data)
    if args.limit is not None:
        videos = videos[: args.limit]
    config = EngineConfig(model=args.model, weights=args.weights, random_weights=args.random_weights,
                          method=args.method, backend=args.engine, precision=args.precision,
                          lr_scale=args.lr_scale, device=args.device, **(args.drift_limit or {}),
                          **({"keyframe_interval": args.keyframe_interval} if args.keyframe_interval else {}))
    with _progress(args) as progress:
        meter, info = measure_agreement(config, [str(v) for v in videos], max_frames=args.frames,
                                        progress=progress)
    _print_agreement(meter, info, len(videos))
    if args.json is not None:
        record = {"results": {**meter.to_dict(), **info, "videos": [str(v) for v in videos]}}
        _write_json(args.json, None, config, args, record)
    return 0


def _print_agreement(meter, info: dict, videos: int) -> None:
    from rich.console import Console
    from rich.table import Table

    title = (f"vidseg-eval: agreement of {info['method']} with {info['reference']} ({videos} videos, "
             f"{len(meter.frames)} non-keyframes, {meter.keyframes} keyframes)")
    table = Table(title=title, title_justify="left")
    for column in ("metric", "value %", "note"):
        table.add_column(column)
    table.add_row("agreement mean", _pct(meter.mean()), "per non-keyframe share of equal labels, averaged")
    table.add_row("agreement min", _pct(meter.min()), "the least-agreeing non-keyframe")
    for d, value in meter.per_distance().items():
        table.add_row(f"agreement d={d}", _pct(value), "")
    console = Console()
    console.print(table)
    console.print(f"keyframes: {info['policy']}")
    for worst in meter.worst(3):
        console.print(f"least agreeing: {worst.video} frame {worst.index} (d={worst.key_distance}): "
                      f"{_pct(worst.agreement)} %", highlight=False)
    for note in info["notes"]:
        console.print(f"note: {note}", highlight=False)


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100.0 * value:.2f}"


def _config(args: argparse.Namespace) -> EngineConfig:
    keyframes: dict = {}
    if args.keyframe_interval is not None:
        keyframes = {"keyframes": "interval", "keyframe_interval": args.keyframe_interval}
    elif args.dataset == "synthetic":
        keyframes = {"keyframes": "gop"}
    return EngineConfig(model=args.model, weights=args.weights, random_weights=args.random_weights,
                        method=args.method,
                        backend=args.engine, precision=args.precision, lr_scale=args.lr_scale, device=args.device,
                        **(args.drift_limit or {"drift_limit": None}), **keyframes)


class _progress:
    """A tqdm bar over items (created on the first report, when the total is known)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.disable = args.no_progress
        self.bar = None

    def __enter__(self):
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="item", desc="vidseg-eval", disable=self.disable, file=sys.stderr,
                            dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def _print(result, args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = result.table(per_class=args.per_class)
    out = Table(title=table.title, title_justify="left")
    for column in table.columns:
        out.add_column(column)
    for row in table.rows:
        out.add_row(*row)
    console = Console()
    console.print(out)
    console.print(f"keyframes: {result.keyframes}; motion: {result.motion_source}")
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    for fallback in result.fallbacks:
        console.print(f"fallback: {fallback}", highlight=False)


def _write_json(path: Path, result, config: EngineConfig, args: argparse.Namespace, record: dict | None = None
                ) -> None:
    import dataclasses

    from vidseg.bench.env import environment
    from vidseg.device import resolve_device

    if record is None:
        record = {
            "results": result.to_dict(),
            "config": {
                "engine": {**dataclasses.asdict(config), "method": result.method},
                "split": result.split,
                "max_distance": result.key_distance.max_distance,
                "tc": args.tc,
                "miou_definition": args.miou_definition,
            },
        }
    else:
        record["config"] = {"engine": dataclasses.asdict(config), "frames": args.frames}
    record["config"].update(dataset=args.dataset, data=str(args.data), limit=args.limit)
    record["environment"] = environment(resolve_device(config.device))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2))
    except OSError as err:
        raise ConfigError(f"cannot write --json {path}: {err}") from err


if __name__ == "__main__":
    main()

"""vidseg-eval: accuracy of a model + method on Cityscapes sequences, CamVid (AR-Seg's layout) or synthetic clips.

    vidseg-eval --data DIR --dataset cityscapes|camvid|synthetic [--model NAME --weights PATH]
                [--method per-frame|arseg|flowwarp] [--engine torch|compile|onnx|aoti|trt] [--precision fp32|...]
                [--keyframe-interval L] [--lr-scale S] [--max-distance D] [--tc] [--limit N] [--split S]
                [--miou-definition skip|zero|nan] [--per-class] [--device cpu|cuda] [--json OUT.json]

Prints mIoU_d for each keyframe distance d = 0..D, their mean (AR-Seg), the pooled avg and the min (GSVNet),
and with --tc (synthetic clips) the temporal consistency against the ground-truth flow; --json writes the same
results with the config and the environment. The protocols are in `vidseg.eval.evaluate`. Errors print one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vidseg.cli.common import cli_entry
from vidseg.config import BACKENDS, METHODS, PRECISIONS, EngineConfig
from vidseg.errors import ConfigError, DatasetError

__all__ = ["main", "build_parser"]

_EPILOG = """\
dataset layouts:
  cityscapes  DIR/leftImg8bit_sequence/<split>/<city>/*_leftImg8bit.png and DIR/gtFine/<split>/<city>/
              *_gtFine_labelIds.png (default split val); frames gt-D..gt of each annotated frame must exist
  camvid      AR-Seg's processed camvid-sequence: DIR/3M-GOP12/{decoded_GOP12_dist_<d>,MVmap_GOP12_dist_<d>,frames}
              (default split test)
  synthetic   a folder of clips written by vidseg.synthetic.write_clip (<stem>.mp4 + <stem>_gt/), or one clip
keyframes: cityscapes and camvid put the key d frames before the labelled frame (interval D+1); for them
--keyframe-interval L means D = L-1. synthetic uses the clip's I-frames unless --keyframe-interval is given."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidseg-eval", description="mIoU per keyframe distance and temporal "
                                "consistency of a video segmentation engine.", epilog=_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="dataset root (synthetic: folder of clips or one clip)")
    p.add_argument("--dataset", choices=("cityscapes", "camvid", "synthetic"), required=True)
    p.add_argument("--model", help="registered model name; see vidseg-run --list-models")
    p.add_argument("--weights", help="checkpoint path; AR-Seg pairs take 'HR.pth,AR.pth' or AR-Seg's "
                   "checkpoints/<dataset>-<backbone> folder (HR/ and AR/)")
    p.add_argument("--random-weights", action="store_true",
                   help="evaluate a zoo model without trained weights (a pipeline check: its mIoU means nothing)")
    p.add_argument("--method", choices=METHODS, help="default: the model's keyframe method when it has one")
    p.add_argument("--engine", choices=BACKENDS, default="torch", help="backend (default torch: eager PyTorch)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--keyframe-interval", type=int, metavar="L", help="see 'keyframes' below")
    p.add_argument("--lr-scale", type=float, default=None,
                   help="downscale of the AR-Seg non-key branch (default: the scale in the AR checkpoint's name, "
                        "else 0.5)")
    p.add_argument("--max-distance", type=int, metavar="D",
                   help="largest keyframe distance scored (default 11; synthetic: GOP or interval - 1)")
    p.add_argument("--tc", action="store_true", help="temporal consistency with the ground-truth flow (synthetic)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="only the first N annotated frames (cityscapes), test frames (camvid) or clips (synthetic)")
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
    if not args.data.exists():
        raise DatasetError(f"--data {args.data}: no such file or directory")
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


def _config(args: argparse.Namespace) -> EngineConfig:
    keyframes: dict = {}
    if args.keyframe_interval is not None:
        keyframes = {"keyframes": "interval", "keyframe_interval": args.keyframe_interval}
    elif args.dataset == "synthetic":
        keyframes = {"keyframes": "gop"}
    return EngineConfig(model=args.model, weights=args.weights, random_weights=args.random_weights,
                        method=args.method,
                        backend=args.engine, precision=args.precision, lr_scale=args.lr_scale, device=args.device,
                        **keyframes)


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


def _write_json(path: Path, result, config: EngineConfig, args: argparse.Namespace) -> None:
    import dataclasses

    from vidseg.bench.env import environment
    from vidseg.device import resolve_device

    record = {
        "results": result.to_dict(),
        "config": {
            "engine": {**dataclasses.asdict(config), "method": result.method},
            "dataset": args.dataset,
            "data": str(args.data),
            "split": result.split,
            "max_distance": result.key_distance.max_distance,
            "limit": args.limit,
            "tc": args.tc,
            "miou_definition": args.miou_definition,
        },
        "environment": environment(resolve_device(config.device)),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2))
    except OSError as err:
        raise ConfigError(f"cannot write --json {path}: {err}") from err

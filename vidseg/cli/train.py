"""vidseg-train: the seeds' training recipes on vidseg's synthetic streets (or the built-in demo model).

    vidseg-train demo [--out DIR] [--install] [--steps-hr N --steps-lr N --steps-arseg N] [--quick]
    vidseg-train hr     --model NAME [--weights PATH] [--temporal-weight 0.1] --steps N --lr X --out DIR
    vidseg-train arseg  --model NAME --weights HR.pth --steps N --lr X --out DIR     (LR stage 1 + CReFF stage 2)

Every run is resumable (re-run the same command after an interruption), shows a progress bar and writes
`log.jsonl` with the losses. Data: synthetic clips rendered, H.264-encoded (GOP 12) and decoded with their codec
motion, cached under OUT/clips.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vidseg.cli.common import cli_entry, size_arg
from vidseg.errors import ConfigError

__all__ = ["main", "build_parser"]



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidseg-train", description="Train vidseg models on synthetic street video.")
    sub = p.add_subparsers(dest="recipe", required=True)

    from vidseg.train.demo import DemoRecipe

    defaults = DemoRecipe()
    demo = sub.add_parser("demo", help="train the built-in demo model (HR, LR-only, AR-Seg) and evaluate it")
    demo.add_argument("--out", type=Path, default=Path("vidseg-train-demo"),
                      help="working folder: clips, checkpoints, log.jsonl, report.json (default vidseg-train-demo)")
    demo.add_argument("--install", action="store_true", help="copy the trained weights into the package")
    for flag, field, text in (("--steps-hr", "steps_hr", "optimiser steps of stage 1, the HR network"),
                              ("--steps-lr", "steps_lr", "steps of stage 2, the LR branch alone"),
                              ("--steps-arseg", "steps_arseg", "steps of stage 3, LR branch + CReFF")):
        demo.add_argument(flag, type=int, help=f"{text} (default {getattr(defaults, field)})")
    demo.add_argument("--scenes", type=int, help=f"training scenes (default {defaults.train_scenes})")
    demo.add_argument("--quick", action="store_true", help="a tiny run that checks the whole recipe (minutes)")

    for name, text in (("hr", "train a model's HR (key) network per frame"),
                       ("arseg", "train an AR-Seg pair's LR branch + CReFF with feature-similarity training")):
        q = sub.add_parser(name, help=text)
        q.add_argument("--model", required=True, help="registered model to train (vidseg-run --list-models)")
        q.add_argument("--weights", help="initial weights (arseg: the trained HR checkpoint)")
        q.add_argument("--out", type=Path, required=True,
                       help="working folder: clips, checkpoints, log.jsonl (re-run to resume)")
        q.add_argument("--steps", type=int, default=1000, help="optimiser steps (default 1000)")
        q.add_argument("--lr", type=float, default=0.01, help="peak learning rate, poly decay (default 0.01)")
        q.add_argument("--batch", type=int, default=8, help="clips per step (default 8)")
        q.add_argument("--size", type=size_arg, default=(256, 512), help="clip size HxW (default 256x512)")
        q.add_argument("--crop", type=size_arg, help="random crop HxW (multiples of 32)")
        q.add_argument("--scenes", type=int, default=16, help="synthetic training scenes (default 16)")
        if name == "hr":
            q.add_argument("--temporal-weight", type=float, default=0.0,
                           help="ETC's temporal-consistency (motion) loss weight (0.1 in ETC; 0 = off)")
        q.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.recipe == "demo":
        return _demo(args)
    return _recipe(args)


def _demo(args: argparse.Namespace) -> int:
    from vidseg.train.demo import DemoRecipe, install_demo, train_demo

    recipe = DemoRecipe()
    if args.quick:
        recipe = DemoRecipe(size=(128, 256), crop=(64, 128), train_scenes=2, eval_scenes=1, eval_frames=24,
                            city_scenes=1, city_train_scenes=1, frames_per_scene=14, batch=2, steps_hr=4, steps_lr=2,
                            steps_arseg=2)
    changes = {k: v for k, v in (("steps_hr", args.steps_hr), ("steps_lr", args.steps_lr),
                                 ("steps_arseg", args.steps_arseg), ("train_scenes", args.scenes)) if v is not None}
    if changes:
        import dataclasses

        recipe = dataclasses.replace(recipe, **changes)
    report = train_demo(args.out, recipe, progress=sys.stderr.isatty())
    _print_report(report)
    print(f"weights: {args.out / 'demo.pt'}; report: {args.out / 'report.json'}")
    if args.install:
        print(f"installed into {install_demo(args.out / 'demo.pt')}")
    return 0


def _print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for set_name, result in report["eval"].items():
        methods = result["methods"]
        distances = sorted({int(d) for m in methods.values() for d in m["miou_per_distance"]})
        table = Table(title=f"held-out synthetic clips, {set_name} ({len(result['clips'])} clips): mIoU per "
                            "keyframe distance d, and temporal consistency")
        table.add_column("method")
        for d in distances:
            table.add_column(f"d={d}", justify="right")
        table.add_column("mean", justify="right")
        table.add_column("TC", justify="right")
        for name, m in methods.items():
            per = {int(k): v for k, v in m["miou_per_distance"].items()}
            table.add_row(name, *(f"{100 * per[d]:.1f}" for d in distances), f"{100 * m['miou_mean']:.1f}",
                          f"{100 * m['tc_bwd']:.1f}")
        console.print(table)
        agree = result["agreement"]
        console.print(f"AR-Seg non-keyframes agree with HR per-frame on {100 * agree['agreement_mean']:.1f} % of "
                      f"the pixels on average, {100 * agree['agreement_min']:.1f} % at least", highlight=False)


def _recipe(args: argparse.Namespace) -> int:
    from vidseg.models.checkpoints import load_checkpoint
    from vidseg.models.registry import build
    from vidseg.train.data import SyntheticClips
    from vidseg.train.loop import TrainConfig
    from vidseg.train.recipes import train_arseg, train_hr, train_lr_only

    model = build(args.model)
    if args.weights:
        load_checkpoint(model, args.weights, part="hr" if args.recipe == "arseg" else None)
    elif args.recipe == "arseg":
        raise ConfigError("arseg training needs the trained HR checkpoint: --weights HR.pth")
    data = SyntheticClips(args.out / "clips", seeds=range(args.scenes), size=args.size, with_flow=args.recipe == "hr"
                          and args.temporal_weight > 0, progress=sys.stderr.isatty())
    config = TrainConfig(steps=args.steps, lr=args.lr)
    kw = dict(batch=args.batch, device=args.device, crop=args.crop, progress=sys.stderr.isatty())
    if args.recipe == "hr":
        history = train_hr(model, data, config, args.out / "hr", temporal_weight=args.temporal_weight, **kw)
    else:
        train_lr_only(model, data, TrainConfig(steps=max(1, args.steps // 3), lr=args.lr), args.out / "lr_only", **kw)
        history = train_arseg(model, data, config, args.out / "arseg", **kw)
    from vidseg.models.checkpoints import save_checkpoint

    target = args.out / f"{args.model}.pth"
    save_checkpoint(model, target, seed_layout=False)
    print(json.dumps({"final": history[-1] if history else None, "checkpoint": str(target)}))
    return 0


if __name__ == "__main__":
    main()

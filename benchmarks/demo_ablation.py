"""What moved the demo's numbers: stages 2 and 3 of the demo recipe retrained with one change at a time.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/demo_ablation.py --base RUN_DIR --out ABL_DIR \
        [--steps-lr 300 --steps-arseg 1000 --eval-scenes 6] [--variants first lr-init degrade kd recipe]

RUN_DIR is a `vidseg-train demo` run whose HR stage is done (its clips/ and hr/ are reused, so every variant
starts from the same HR network); each variant trains the LR branch and CReFF at reduced steps in ABL_DIR/<name>
and is evaluated like the demo (realistic and city held-out sets, `vidseg.train.demo.evaluate_demo`). Variants:

  first      the first demo's stages 2-3: LR branch from scratch, no degradations, AR-Seg's losses only
  lr-init    + the LR branch starts from the HR weights
  degrade    + stage 3's non-keyframes degraded for the LR branch (domain randomisation)
  kd         lr-init + KL towards the HR logits (no degradations)
  recipe     lr-init + degrade + kd: the demo recipe
Writes ABL_DIR/ablation.json and prints a table: mIoU mean (d = 0..11), d=1, d=11, HR, agreement mean / min.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

import torch

from vidseg.train.demo import DemoRecipe, train_demo

VARIANTS = {
    "first": dict(lr_init="scratch", degrade=0.0, kd_weight=0.0),
    "lr-init": dict(lr_init="hr", degrade=0.0, kd_weight=0.0),
    "degrade": dict(lr_init="hr", kd_weight=0.0),
    "kd": dict(lr_init="hr", degrade=0.0),
    "recipe": dict(),
}


def run_variant(name: str, base: Path, out: Path, recipe: DemoRecipe) -> dict:
    target = out / name
    report_path = target / "report.json"
    if report_path.exists():
        return json.loads(report_path.read_text())
    target.mkdir(parents=True, exist_ok=True)
    if not (target / "clips").exists():
        (target / "clips").symlink_to((base / "clips").resolve())
    if not (target / "hr").exists():
        shutil.copytree(base / "hr", target / "hr")
    eval_dir = target / "eval"
    if not eval_dir.exists() and (base / "eval").exists():
        eval_dir.symlink_to((base / "eval").resolve())
    variant = dataclasses.replace(recipe, **VARIANTS[name])
    # The HR stage is done (copied); stage-level degradation of HR frames does not matter then, but degrade=0 of
    # a variant also switches off the LR stages' degradations, which is the point of the variant.
    t0 = time.perf_counter()
    report = train_demo(target, variant, progress=False)
    report["ablation_seconds"] = round(time.perf_counter() - t0, 1)
    report_path.write_text(json.dumps(report, indent=2))
    return report


def summarise(report: dict) -> dict:
    rows = {}
    for set_name, result in report["eval"].items():
        ar = result["methods"]["AR-Seg 0.5x"]
        per = {int(k): v for k, v in ar["miou_per_distance"].items()}
        rows[set_name] = {"arseg_mean": ar["miou_mean"], "d1": per.get(1), "d11": per.get(11),
                          "hr_mean": result["methods"]["HR per-frame"]["miou_mean"],
                          "lr_only_mean": result["methods"]["LR-only 0.5x"]["miou_mean"],
                          "agreement": result["agreement"]["agreement_mean"],
                          "agreement_min": result["agreement"]["agreement_min"]}
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--steps-lr", type=int, default=300)
    p.add_argument("--steps-arseg", type=int, default=1000)
    p.add_argument("--eval-scenes", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    base_recipe = DemoRecipe(**json.loads((args.base / "recipe.json").read_text())) \
        if (args.base / "recipe.json").exists() else DemoRecipe()
    recipe = dataclasses.replace(base_recipe, steps_lr=args.steps_lr, steps_arseg=args.steps_arseg,
                                 eval_scenes=args.eval_scenes)
    table = {}
    for name in args.variants:
        report = run_variant(name, args.base, args.out, recipe)
        table[name] = {"sets": summarise(report), "seconds": report.get("ablation_seconds"),
                       "train_seconds_per_stage": report.get("train_seconds_per_stage")}
        (args.out / "ablation.json").write_text(json.dumps({"recipe": dataclasses.asdict(recipe),
                                                            "variants": table}, indent=2))
        for set_name, row in table[name]["sets"].items():
            print(f"{name:8s} {set_name:9s} AR {100 * row['arseg_mean']:.1f} d1 {100 * row['d1']:.1f} "
                  f"d11 {100 * row['d11']:.1f} | HR {100 * row['hr_mean']:.1f} LR {100 * row['lr_only_mean']:.1f} "
                  f"| agree {100 * row['agreement']:.1f} min {100 * row['agreement_min']:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Print the model zoo table of the README: name, seed, input, stages, parameters, GMACs per stage.

    python benchmarks/model_zoo.py [--res 1024x2048]

GMACs are counted by `vidseg.models.profile.count_macs` on meta tensors (no compute), at the given resolution for
every model (the seeds' own resolution is in the "input" column).
"""

from __future__ import annotations

import argparse

import torch

from vidseg.models import list_models
from vidseg.models.profile import count_macs, count_params
from vidseg.models.registry import build_architecture


def zoo_rows(res: tuple[int, int]) -> list[dict]:
    rows = []
    for name in list_models():
        model = build_architecture(name)
        stages = model.stages()
        macs = {}
        for stage_name, stage in stages.items():
            meta = stage.to("meta")
            inputs = tuple(torch.empty(shape, dtype=dtype, device="meta")
                           for shape, dtype in stage.input_shapes(*res).values())
            macs[stage_name] = count_macs(meta, *inputs) / 1e9
        rows.append({
            "name": name, "seed": model.spec.seed.split(" (")[0] or "-",
            "input": "x".join(map(str, model.spec.input_size)),
            "methods": ", ".join(model.methods), "params_m": count_params(model) / 1e6, "gmacs": macs,
        })
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--res", default="1024x2048")
    args = p.parse_args()
    res = tuple(int(v) for v in args.res.split("x"))
    print(f"| model | seed | seed input | methods | params (M) | GMACs per stage at {args.res} |")
    print("|---|---|---|---|---|---|")
    for r in zoo_rows(res):
        gm = ", ".join(f"{k} {v:.1f}" for k, v in r["gmacs"].items())
        print(f"| `{r['name']}` | {r['seed']} | {r['input']} | {r['methods']} | {r['params_m']:.2f} | {gm} |")


if __name__ == "__main__":
    main()

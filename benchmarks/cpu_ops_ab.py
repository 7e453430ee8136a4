"""Before/after of vidseg's CPU hot ops at arseg-bise18-cityscapes' 512x1024 non-key shapes, one thread, paired.

    git archive <old-commit> | tar -x -C /tmp/old     # the code to compare against
    python benchmarks/cpu_ops_ab.py --before /tmp/old --rounds 11

Per op, "before" is what a channels_last network paid at the old commit and "after" what it pays now:
  creff                 old vidseg/kernels/cpu.py creff + the op's NCHW -> channels_last copy | ops.creff
  warp                  reference.warp (grid_sample, NCHW out) + the channels_last copy        | ops.warp
  x8 upsample + argmax  BiSeNet's in-model x8 F.interpolate to 512x1024, argmax of channels_last logits
                        | logits_to_labels on the stride-8 logits (banded)
Inputs are seeded random tensors of the real shapes (C=256 at 64x128; 19-class logits). Rounds alternate
before/after per op; reported: medians with 20/80 % quantiles and the paired before/after ratio, plus whether the
outputs are equal (max |diff| otherwise).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from vidseg.kernels import ops, reference
from vidseg.models.labels import logits_to_labels


def _old_cpu_kernels(root: str):
    spec = importlib.util.spec_from_file_location("old_cpu_kernels", os.path.join(root, "vidseg/kernels/cpu.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="a checkout of the commit to compare against")
    ap.add_argument("--rounds", type=int, default=11)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    old = _old_cpu_kernels(args.before)

    def cl(t):
        return t.contiguous(memory_format=torch.channels_last)

    g = torch.Generator().manual_seed(0)
    q, k, v, r = (cl(torch.randn(1, 256, 64, 128, generator=g)) for _ in range(4))
    x, m = cl(torch.randn(1, 256, 64, 128, generator=g)), torch.randn(1, 2, 64, 128, generator=g) * 3
    logits = cl(torch.randn(1, 19, 64, 128, generator=g) * 3)

    def old_head():
        full = F.interpolate(logits, size=(512, 1024), mode="bilinear", align_corners=False)
        return cl(full).argmax(1).to(torch.uint8)

    pairs = {
        "creff": (lambda: cl(old.creff(q, k, v, r, 7)), lambda: ops.creff(q, k, v, r, 7)),
        "warp": (lambda: cl(reference.warp(x, m, "arseg")), lambda: ops.warp(x, m, "arseg")),
        "x8 upsample + argmax": (old_head, lambda: logits_to_labels(logits, (512, 1024), align_corners=False)),
    }
    times = {name: ([], []) for name in pairs}
    load = os.getloadavg()
    with torch.inference_mode():
        for name, (before, after) in pairs.items():
            a, b = before(), after()
            same = "equal" if torch.equal(a, b) else f"max diff {(a.float() - b.float()).abs().max().item():.1e}"
            print(f"{name}: outputs {same}")
        for _ in range(args.rounds):
            for name, fns in pairs.items():
                for i, fn in enumerate(fns):
                    start = time.perf_counter()
                    fn()
                    times[name][i].append((time.perf_counter() - start) * 1e3)
    print(f"\nload average {[round(v, 2) for v in load]} -> {[round(v, 2) for v in os.getloadavg()]}, "
          f"{args.rounds} rounds, 1 thread, torch {torch.__version__}\n")
    print("| op | before ms p50 [q20-q80] | after ms p50 [q20-q80] | before / after (paired) |\n|---|---|---|---|")
    for name, (ta, tb) in times.items():
        a, b = np.asarray(ta), np.asarray(tb)
        qa, qb, qr = (np.quantile(z, [0.2, 0.5, 0.8]) for z in (a, b, a / b))
        print(f"| {name} | {qa[1]:.1f} [{qa[0]:.1f}-{qa[2]:.1f}] | {qb[1]:.1f} [{qb[0]:.1f}-{qb[2]:.1f}] | "
              f"{qr[1]:.2f}x [{qr[0]:.2f}-{qr[2]:.2f}] |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

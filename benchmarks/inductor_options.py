"""Which Inductor options CPU AOTInductor packages compile with: CReFF's attention and Winograd blocks under each.

    python benchmarks/inductor_options.py --out benchmarks/results

`vidseg.kernels.winograd.INDUCTOR_OPTIONS` applies to a whole package, so one option set must suit both kinds of
code in an arseg non-key stage. Measured here, torch.compile'd on a CPU, one thread (compile time and median of
the timed calls), against eager PyTorch's output:
  creff    arseg-bise18-cityscapes' non-key fusion at 512x1024: three depthwise 3x3 convolutions (C=256, 64x128)
           and the attention, composed as `reference.creff` (NCHW sums) and `reference.creff_channels_last`
  blocks   two ResNet basic blocks (conv-BN-ReLU, residual add) with their 3x3 convolutions as Winograd
           F(4x4, 3x3), at 128 channels 64x128 and 256 channels 32x64; the direct convolutions compiled with
           Inductor's defaults as the baseline
Each configuration compiles afresh (the Inductor cache makes later runs' compile times shorter).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn

from vidseg.kernels import reference
from vidseg.kernels.winograd import use_winograd

OPTION_SETS = {
    "defaults": {},
    "reads=1": {"realize_reads_threshold": 1},
    "opcount=1": {"realize_opcount_threshold": 1},
    "both": {"realize_opcount_threshold": 1, "realize_reads_threshold": 1},
}


class _Fusion(nn.Module):
    """CReFF as the non-key stage runs it, minus the LR upsample: dw3x3 q/k/v, then the attention + residual."""

    def __init__(self, composition, channels: int = 256) -> None:
        super().__init__()
        self.composition = composition
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, groups=channels) for _ in range(3))

    def forward(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        q, k, v = self.convs[0](lr), self.convs[1](hr), self.convs[2](hr)
        return self.composition(q, k, v, lr, 7)


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))


def _median_ms(fn, args, calls: int) -> float:
    fn(*args)
    fn(*args)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return sorted(times)[calls // 2] * 1e3


def _measure(module: nn.Module, args, want: torch.Tensor, options: dict, calls: int) -> dict:
    torch._dynamo.reset()
    start = time.perf_counter()
    compiled = torch.compile(module, options=dict(options))
    got = compiled(*args)
    compile_s = time.perf_counter() - start
    return {"compile_s": round(compile_s, 1), "ms": round(_median_ms(compiled, args, calls), 2),
            "max_abs_diff": float((got - want).abs().max())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=7, help="timed calls per configuration")
    ap.add_argument("--out", default="", help="folder for the .md/.json record (printed only if not given)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = []
    with torch.no_grad():
        lr, hr = torch.randn(1, 256, 64, 128) * 0.3, torch.randn(1, 256, 64, 128) * 0.3
        for name, composition in [("creff", reference.creff), ("creff_channels_last", reference.creff_channels_last)]:
            module = _Fusion(composition).eval()
            want = _Fusion(reference.creff).eval()
            want.load_state_dict(module.state_dict())
            expected = want(lr, hr)
            for label, options in OPTION_SETS.items():
                rows.append({"case": f"{name} C=256 64x128", "options": label,
                             **_measure(module, (lr, hr), expected, options, args.calls)})
                print(rows[-1], flush=True)
        for c, h, w in [(128, 64, 128), (256, 32, 64)]:
            net = nn.Sequential(_Block(c), _Block(c)).eval()
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
            x = torch.randn(1, c, h, w)
            expected = net(x)
            rows.append({"case": f"2 blocks direct {c}ch {h}x{w}", "options": "defaults",
                         **_measure(net, (x,), expected, {}, args.calls)})
            print(rows[-1], flush=True)
            winograd = copy.deepcopy(net)
            use_winograd(winograd)
            for label, options in OPTION_SETS.items():
                rows.append({"case": f"2 blocks Winograd {c}ch {h}x{w}", "options": label,
                             **_measure(winograd, (x,), expected, options, args.calls)})
                print(rows[-1], flush=True)
    lines = [f"# Inductor options on a CPU ({platform.machine()}, torch {torch.__version__}, 1 thread)", "",
             "`python benchmarks/inductor_options.py` (see its docstring for the cases)", "",
             "| case | options | compile s | median ms | max abs diff vs eager |", "|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['options']} | {r['compile_s']} | {r['ms']} | {r['max_abs_diff']:.1e} |"
              for r in rows]
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"cpu-2c-{time.strftime('%Y-%m-%d')}-inductor-options"
        (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
        (out / f"{stem}.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

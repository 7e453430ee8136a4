"""Benchmark the fused Triton kernels against PyTorch compositions at the seeds' shapes.

    python benchmarks/kernels.py                        # CUDA: times, bandwidth, memory -> benchmarks/results/
    python benchmarks/kernels.py --dtypes float32,float16 --sweep
    python benchmarks/kernels.py --device cpu --interpret --out /tmp/k   # smoke check of this script only
    python benchmarks/kernels.py --device cpu --cpu-fast [--threads 1] [--small]   # CPU creff kernel vs reference

Per case and implementation: median time with 20/80 % quantiles (CUDA events, warm-up, L2 flushed before every
run), effective bandwidth = bytes the op must move / median time (and the fraction of the device's peak), peak
extra memory (torch.cuda.max_memory_allocated above what was allocated before the call, the output included; the
scratch column leaves the output out), and
the max abs difference from the reference. Targets: fused CReFF >= 3x faster than the faster of the two PyTorch
compositions (reference.local_attention, an unfold-based one) with >= 10x less extra memory; fused warp at >= 70 %
of peak bandwidth. `--sweep` also times a few launch configurations of each kernel and reports the best.
CPU interpreter timings measure Python, not kernels: a `--device cpu` run is marked smoke and writes nothing unless
--out is given. `--cpu-fast` instead times creff's CPU kernel (vidseg.kernels.cpu) against reference.creff at the
seeds' shapes (`--small`: quarter-size maps), interleaved (A B A B ...) because the CPU is shared, and reports
medians with 20/80 % quantiles and the speed-up; it writes only with --out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

# Peak DRAM bandwidth in bytes/s by device name (more specific names first); --peak-gbps overrides.
PEAK_BANDWIDTH = (
    ("H200", 4.8e12),
    ("H100 NVL", 3.9e12),
    ("H100 PCIe", 2.0e12),
    ("H100", 3.35e12),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("A100-SXM4-80GB", 2.039e12),
    ("A100 80GB PCIe", 1.935e12),
    ("A100", 1.555e12),
    ("L40S", 0.864e12),
    ("L4", 0.3e12),
)
TARGET_CREFF_SPEEDUP = 3.0
TARGET_CREFF_MEMORY = 10.0
TARGET_WARP_PEAK_FRACTION = 0.7

# (label, N, C, H, W, motion grid or None for per-pixel)
GPU_WARP_CASES = (
    ("cityscapes-psp18 key features, per-pixel motion", 1, 512, 128, 256, None),
    ("camvid-psp18 key features, per-pixel motion", 1, 64, 720, 960, None),
    ("camvid-psp18 key features, 4x4 codec blocks", 1, 64, 720, 960, (180, 240)),
)
# (label, N, C, H, W, window)
GPU_CREFF_CASES = (
    ("cityscapes-psp18", 1, 512, 128, 256, 7),
    ("cityscapes-bise18", 1, 256, 128, 256, 7),
    ("camvid-psp18", 1, 64, 720, 960, 7),
)
# (label, N, C, H, W, window): AR-Seg's non-key fusion on CPU.
CPU_CREFF_CASES = (
    ("cityscapes-bise18", 1, 256, 128, 256, 7),
    ("cityscapes-psp18", 1, 512, 128, 256, 7),
    ("camvid-psp18 half-res", 1, 64, 360, 480, 7),
)
SMOKE_WARP_CASES = (("smoke per-pixel", 2, 4, 9, 11, None), ("smoke 3x3 blocks", 1, 3, 9, 11, (3, 4)))
SMOKE_CREFF_CASES = (("smoke", 2, 3, 9, 11, 7),)

WARP_SWEEP = [dict(block_p=p, block_c=c, num_warps=w) for p in (64, 128, 256) for c in (4, 8, 16) for w in (4, 8)]
CREFF_SWEEP = [
    dict(tile=t, num_warps=w) for t in ((4, 16), (8, 16), (4, 32), (8, 32), (16, 16), (2, 32)) for w in (2, 4, 8)
]


def unfold_creff(q, k, v, residual, window):
    """CReFF as an unfold composition: materialises [N, C, window^2, H*W] neighbourhoods of k and v."""
    n, c, h, w = q.shape
    r = window // 2
    dtype = residual.dtype
    q, k, v = q.float(), k.float(), v.float()
    kn = F.unfold(k, window, padding=r).view(n, c, window * window, h * w)
    scores = (kn * q.view(n, c, 1, h * w)).sum(1)  # [N, window^2, H*W]
    del kn
    attn = scores.softmax(1)
    vn = F.unfold(v, window, padding=r).view(n, c, window * window, h * w)
    out = (vn * attn.unsqueeze(1)).sum(2).view(n, c, h, w)
    return (residual.float() + out).to(dtype)


def _quantiles(times_ms: list[float]) -> dict:
    t = torch.tensor(times_ms, dtype=torch.float64)
    q20, q50, q80 = t.quantile(torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64)).tolist()
    return {"median_ms": q50, "q20_ms": q20, "q80_ms": q80, "runs": len(times_ms)}


def _time_cuda(fn: Callable[[], object], warmup: int, iters: int, max_seconds: float) -> dict:
    flush = torch.empty(256 * 2**20, dtype=torch.int8, device="cuda")  # larger than any L2
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = []
    t0 = time.perf_counter()
    for i in range(iters):
        flush.zero_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        events.append((start, end))
        if i >= 9 and time.perf_counter() - t0 > max_seconds:
            break
    torch.cuda.synchronize()
    return _quantiles([s.elapsed_time(e) for s, e in events])


def _time_cpu(fn: Callable[[], object], warmup: int, iters: int, max_seconds: float) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return _quantiles(times)


def _extra_memory(fn: Callable[[], object], device: str) -> int | None:
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = fn()
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - base
    del out
    return extra


def _measure(fn, expected, bytes_moved, args, peak) -> dict:
    """One implementation on one case: error vs the reference, time, bandwidth, extra memory."""
    try:
        out = fn()
        err = (out.float() - expected.float()).abs().max().item() if expected is not None else 0.0
        del out
        extra = _extra_memory(fn, args.device)
        timer = _time_cuda if args.device == "cuda" else _time_cpu
        stats = timer(fn, args.warmup, args.iters, args.max_seconds)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return {"status": "out of memory"}
    gbps = bytes_moved / (stats["median_ms"] * 1e-3) / 1e9
    return {
        "status": "ok",
        **stats,
        "effective_gbps": gbps,
        "peak_fraction": gbps * 1e9 / peak if peak else None,
        "extra_bytes": extra,
        # beyond the output, which every implementation must allocate
        "scratch_bytes": None if extra is None else extra - expected.numel() * expected.element_size(),
        "max_abs_err": err,
    }


def _sweep(run_config, configs, args, peak, expected, bytes_moved) -> dict:
    best = None
    for cfg in configs:
        res = _measure(lambda cfg=cfg: run_config(cfg), expected, bytes_moved, args, peak)
        if res["status"] == "ok" and (best is None or res["median_ms"] < best["median_ms"]):
            best = {**res, "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}}
    return best or {"status": "no configuration ran"}


def _bench_warp(case, dtype, args, kernels, reference, peak) -> dict:
    label, n, c, h, w, grid = case
    x = torch.randn(n, c, h, w, device=args.device, dtype=dtype)
    mh, mw = grid or (h, w)
    # Smooth, codec-like motion (std ~8 px, correlated over ~8 vectors), as camera and object motion is.
    coarse = torch.randn(n, 2, max(1, mh // 8), max(1, mw // 8), device=args.device) * 8
    motion = F.interpolate(coarse, size=(mh, mw), mode="bilinear", align_corners=False)
    convention = "arseg"
    expected = reference.warp(x, motion, convention)
    bytes_moved = kernels.warp_bytes(x, motion)
    impls = {
        "reference": lambda: reference.warp(x, motion, convention),
        "fused": lambda: kernels.warp(x, motion, convention),
    }
    results = {name: _measure(fn, expected, bytes_moved, args, peak) for name, fn in impls.items()}
    if args.sweep:
        results["fused (best of sweep)"] = _sweep(
            lambda cfg: kernels.warp(x, motion, convention, **cfg), WARP_SWEEP, args, peak, expected, bytes_moved
        )
    fused = results["fused"]
    row = {
        "op": "warp",
        "case": label,
        "shape": [n, c, h, w],
        "motion": [n, 2, mh, mw],
        "convention": convention,
        "dtype": str(dtype).removeprefix("torch."),
        "bytes_moved": bytes_moved,
        "results": results,
    }
    if args.device == "cuda" and fused["status"] == "ok" and fused["peak_fraction"] is not None:
        row["target"] = {
            "peak_fraction": fused["peak_fraction"],
            "goal": TARGET_WARP_PEAK_FRACTION,
            "met": fused["peak_fraction"] >= TARGET_WARP_PEAK_FRACTION,
        }
    return row


def _bench_creff(case, dtype, args, kernels, reference, peak) -> dict:
    label, n, c, h, w, window = case
    q, k, v, r = (torch.randn(n, c, h, w, device=args.device, dtype=dtype) * 0.2 for _ in range(4))
    expected = reference.creff(q, k, v, r, window)
    bytes_moved = kernels.creff_bytes(q, k, v, r)
    impls = {
        "reference": lambda: reference.creff(q, k, v, r, window),
        "unfold": lambda: unfold_creff(q, k, v, r, window),
        "fused": lambda: kernels.creff(q, k, v, r, window),
    }
    results = {name: _measure(fn, expected, bytes_moved, args, peak) for name, fn in impls.items()}
    if args.sweep:
        results["fused (best of sweep)"] = _sweep(
            lambda cfg: kernels.creff(q, k, v, r, window, **cfg), CREFF_SWEEP, args, peak, expected, bytes_moved
        )
    row = {
        "op": "creff",
        "case": label,
        "shape": [n, c, h, w],
        "window": window,
        "dtype": str(dtype).removeprefix("torch."),
        "bytes_moved": bytes_moved,
        "results": results,
    }
    baselines = [name for name in ("reference", "unfold") if results[name]["status"] == "ok"]
    fused = results["fused"]
    if args.device == "cuda" and baselines and fused["status"] == "ok":
        best = min(baselines, key=lambda name: results[name]["median_ms"])
        speedup = results[best]["median_ms"] / fused["median_ms"]
        target = {
            "baseline": best,
            "speedup": speedup,
            "speedup_goal": TARGET_CREFF_SPEEDUP,
            "speedup_met": speedup >= TARGET_CREFF_SPEEDUP,
        }
        if fused["extra_bytes"]:
            memory_ratio = results[best]["extra_bytes"] / fused["extra_bytes"]
            target.update(
                memory_ratio=memory_ratio,
                memory_goal=TARGET_CREFF_MEMORY,
                memory_met=memory_ratio >= TARGET_CREFF_MEMORY,
            )
        row["target"] = target
    return row


def _environment(args, peak) -> dict:
    import triton

    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": args.device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "interpreter": args.interpret,
        "smoke": args.device != "cuda",
        "peak_bandwidth_gbps": peak / 1e9 if peak else None,
        "warmup": args.warmup,
        "iters": args.iters,
    }
    if args.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, sm_count=props.multi_processor_count, cuda=torch.version.cuda)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        )
        env["commit"] = commit.stdout.strip() or None
    except OSError:
        env["commit"] = None
    return env


def _peak_bandwidth(args) -> float | None:
    if args.peak_gbps:
        return args.peak_gbps * 1e9
    if args.device != "cuda":
        return None
    name = torch.cuda.get_device_name(0)
    for key, value in PEAK_BANDWIDTH:
        if key in name:
            return value
    print(f"unknown peak bandwidth for {name!r}; pass --peak-gbps to report fractions of peak", file=sys.stderr)
    return None


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def to_markdown(report: dict) -> str:
    env = report["environment"]
    title = env.get("gpu", env["device"])
    lines = [f"# Kernel benchmark: {title}", ""]
    if env["smoke"]:
        lines += ["**Smoke run (CPU interpreter): timings measure Python, not the kernels.**", ""]
    lines += [
        f"{env['date']}, torch {env['torch']}, triton {env['triton']}, CUDA {env.get('cuda', '-')}, "
        f"commit {env.get('commit') or '-'}; peak bandwidth {_fmt(env['peak_bandwidth_gbps'], '.0f')} GB/s; "
        f"{env['warmup']} warm-up runs, up to {env['iters']} timed runs"
        + (", L2 flushed before each." if env["device"] == "cuda" else "."),
        "",
        "| op | case | dtype | impl | median ms | q20-q80 ms | GB/s | % peak | extra MiB | scratch MiB | max err |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report["rows"]:
        for impl, res in row["results"].items():
            if res["status"] != "ok":
                lines.append(f"| {row['op']} | {row['case']} | {row['dtype']} | {impl} | {res['status']} ||||||")
                continue
            cfg = f" `{res['config']}`" if "config" in res else ""
            extra = None if res["extra_bytes"] is None else res["extra_bytes"] / 2**20
            scratch = None if res["scratch_bytes"] is None else res["scratch_bytes"] / 2**20
            pct = None if res["peak_fraction"] is None else 100 * res["peak_fraction"]
            lines.append(
                f"| {row['op']} | {row['case']} {row['shape']} | {row['dtype']} | {impl}{cfg} | "
                f"{res['median_ms']:.3f} | {res['q20_ms']:.3f}-{res['q80_ms']:.3f} | {res['effective_gbps']:.0f} | "
                f"{_fmt(pct, '.0f')} | {_fmt(extra, '.1f')} | {_fmt(scratch, '.1f')} | {res['max_abs_err']:.1e} |"
            )
    lines += ["", "## Targets", ""] if not env["smoke"] else []
    for row in report["rows"]:
        t = row.get("target")
        if t is None:
            continue
        head = f"- {row['op']} {row['case']} ({row['dtype']}): "
        if row["op"] == "warp":
            lines.append(
                head + f"{100 * t['peak_fraction']:.0f} % of peak bandwidth "
                f"(goal {100 * t['goal']:.0f} %): {'met' if t['met'] else 'NOT met'}"
            )
        else:
            text = (
                f"{t['speedup']:.1f}x faster than {t['baseline']} (goal {t['speedup_goal']:.0f}x): "
                f"{'met' if t['speedup_met'] else 'NOT met'}"
            )
            if "memory_ratio" in t:
                text += (
                    f"; {t['memory_ratio']:.1f}x less extra memory (goal {t['memory_goal']:.0f}x): "
                    f"{'met' if t['memory_met'] else 'NOT met'}"
                )
            lines.append(head + text)
    return "\n".join(lines) + "\n"


def cpu_fast(args) -> dict:
    """creff's CPU kernel against the reference, timed interleaved; returns the report (also printed)."""
    from vidseg.kernels import cpu, reference

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    torch.manual_seed(0)
    for label, n, c, h, w, window in CPU_CREFF_CASES:
        if args.small:
            h, w = h // 2, w // 2
        a = tuple(torch.randn(n, c, h, w) * 0.2 for _ in range(4)) + (window,)  # q, k, v, residual, window
        impls = {"reference": lambda a=a: reference.creff(*a), "cpu": lambda a=a: cpu.creff(*a)}
        expected = impls["reference"]()
        err = (impls["cpu"]() - expected).abs().max().item()
        for _ in range(args.warmup):
            for fn in impls.values():
                fn()
        times = {name: [] for name in impls}
        for _ in range(args.iters):  # A B A B: both see the same load
            for name, fn in impls.items():
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1e3)
        results = {name: _quantiles(t) for name, t in times.items()}
        speedup = results["reference"]["median_ms"] / results["cpu"]["median_ms"]
        rows.append(
            {
                "op": "creff",
                "case": label,
                "shape": [n, c, h, w],
                "window": window,
                "dtype": "float32",
                "results": results,
                "speedup": speedup,
                "max_abs_err": err,
            }
        )
        print(f"creff {label} {[n, c, h, w]}: done", file=sys.stderr)
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "warmup": args.warmup,
        "iters": args.iters,
    }
    lines = [
        "# creff CPU kernel vs reference",
        "",
        f"{env['date']}, torch {env['torch']}, {env['cpu_count']} CPUs, {env['torch_threads']} torch threads, "
        f"load average {env['load_average'][0]:.1f}; {env['warmup']} warm-up and {env['iters']} interleaved runs.",
        "",
        "| case | shape | reference ms (q20-q80) | cpu ms (q20-q80) | speed-up | max err |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        ref, fast = row["results"]["reference"], row["results"]["cpu"]
        lines.append(
            f"| {row['case']} | {row['shape']} | {ref['median_ms']:.0f} ({ref['q20_ms']:.0f}-{ref['q80_ms']:.0f}) | "
            f"{fast['median_ms']:.0f} ({fast['q20_ms']:.0f}-{fast['q80_ms']:.0f}) | {row['speedup']:.1f}x | "
            f"{row['max_abs_err']:.1e} |"
        )
    report = {"environment": env, "rows": rows}
    markdown = "\n".join(lines) + "\n"
    if args.out is not None:
        out = Path(args.out)
        out = out.with_suffix("") if out.suffix in (".json", ".md") else out
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_name(out.name + ".json").write_text(json.dumps(report, indent=2) + "\n")
        out.with_name(out.name + ".md").write_text(markdown)
    print(markdown)
    return report


def _default_out(device_name: str) -> Path:
    slug = "".join(ch if ch.isalnum() else "-" for ch in device_name.lower()).strip("-")
    return Path(__file__).parent / "results" / f"kernels-{slug}-{datetime.date.today():%Y%m%d}"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--interpret", action="store_true", help="run the Triton kernels under TRITON_INTERPRET=1")
    p.add_argument("--dtypes", default="float32", help="comma-separated: float32,float16,bfloat16")
    p.add_argument("--ops", default="warp,creff", help="comma-separated: warp,creff")
    p.add_argument("--warmup", type=int, default=None, help="warm-up runs (default 5 on CUDA, 1 on CPU)")
    p.add_argument("--iters", type=int, default=None, help="timed runs (default 100 on CUDA, 2 on CPU)")
    p.add_argument("--max-seconds", type=float, default=10.0, help="stop timing a case after this (>= 10 runs)")
    p.add_argument("--peak-gbps", type=float, default=None, help="device peak DRAM bandwidth in GB/s")
    p.add_argument("--sweep", action="store_true", help="also time a few launch configurations per kernel")
    p.add_argument("--out", default=None, help="output path without extension (.json and .md are written)")
    p.add_argument("--cpu-fast", action="store_true", help="time creff's CPU kernel against the reference (CPU)")
    p.add_argument("--small", action="store_true", help="--cpu-fast at half the map height and width")
    p.add_argument("--threads", type=int, default=None, help="--cpu-fast: torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    if args.cpu_fast and args.device != "cpu":
        p.error("--cpu-fast times the CPU kernel: add --device cpu")
    if args.device == "cpu" and not args.interpret and not args.cpu_fast:
        p.error("--device cpu runs the kernels under Triton's interpreter: add --interpret (or --cpu-fast)")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("no CUDA device: use --device cpu --interpret for a smoke check")
    args.warmup = args.warmup if args.warmup is not None else (5 if args.device == "cuda" else 1)
    args.iters = args.iters if args.iters is not None else (100 if args.device == "cuda" else 5 if args.cpu_fast else 2)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.cpu_fast:
        return cpu_fast(args)
    if args.interpret:
        # Must precede the kernels' import: triton.jit picks the interpreter when a kernel is defined.
        os.environ["TRITON_INTERPRET"] = "1"
    from vidseg.kernels import reference
    from vidseg.kernels import triton as kernels

    peak = _peak_bandwidth(args)
    dtypes = [getattr(torch, name) for name in args.dtypes.split(",")]
    ops = args.ops.split(",")
    gpu = args.device == "cuda"
    rows = []
    torch.manual_seed(0)
    for dtype in dtypes:
        if "warp" in ops:
            for case in GPU_WARP_CASES if gpu else SMOKE_WARP_CASES:
                rows.append(_bench_warp(case, dtype, args, kernels, reference, peak))
                print(f"warp {case[0]} {dtype}: done", file=sys.stderr)
        if "creff" in ops:
            for case in GPU_CREFF_CASES if gpu else SMOKE_CREFF_CASES:
                rows.append(_bench_creff(case, dtype, args, kernels, reference, peak))
                print(f"creff {case[0]} {dtype}: done", file=sys.stderr)
    report = {"environment": _environment(args, peak), "rows": rows}
    markdown = to_markdown(report)
    out = args.out
    if out is None and gpu:
        out = _default_out(report["environment"]["gpu"])
    if out is not None:
        out = Path(out)
        out = out.with_suffix("") if out.suffix in (".json", ".md") else out
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_name(out.name + ".json").write_text(json.dumps(report, indent=2) + "\n")
        out.with_name(out.name + ".md").write_text(markdown)
        print(f"wrote {out}.json and {out}.md", file=sys.stderr)
    print(markdown)
    return report


if __name__ == "__main__":
    main()

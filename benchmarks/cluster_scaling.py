"""Scaling of `vidseg-run --cluster`: the same inputs with 1 worker and with N workers, side by side.

    python benchmarks/cluster_scaling.py                                  # 8 clips, 1 vs 2 workers, 2 rounds
    python benchmarks/cluster_scaling.py --workers 1,2,4,8 --device cuda  # a multi-GPU host: one worker per GPU
    python benchmarks/cluster_scaling.py --out benchmarks/results/cluster_scaling_cpu-2c

Renders --inputs synthetic street clips (vidseg.video.synthetic, --res, --frames each), starts one local Ray
instance, then runs the whole set once per worker count, alternating the order every round (1, N, N, 1, ...) so
that drifting machine load hits both alike. Each worker is one actor with one CPU and one torch thread (one GPU
with --device cuda), building its engine once; outputs are written as with --save (labels by default).

Per run: frames/s over the processing window (first input started to last input finished: what scales) and over
the whole wall time (with Ray's and the engines' start-up, which does not). Scaling efficiency of N workers =
(T1 / TN) / N on the processing windows, medians over rounds: 1.0 is linear.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vidseg.bench.report import write_record
from vidseg.config import EngineConfig


def make_clips(folder: Path, count: int, height: int, width: int, frames: int) -> Path:
    from vidseg.video.synthetic import SceneConfig, write_clip

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        write_clip(folder / f"drive{i:02d}.mp4", SceneConfig(height=height, width=width, seed=i), frames, gop=12,
                   ground_truth=False)
    return folder


def one_run(clips: Path, out: Path, workers: int, config: EngineConfig, save: tuple[str, ...]) -> dict:
    from vidseg.cluster import run

    load = os.getloadavg()[0]
    report = run([clips], config, out=out, workers=workers, cpus_per_worker=1, save=save)
    if not report.ok:
        raise SystemExit(f"{workers} workers: inputs failed: {[(r.name, r.error) for r in report.results]}")
    window = max(r.finished_s for r in report.results) - min(r.started_s for r in report.results)
    return {"workers": workers, "frames": report.frames, "wall_s": report.wall_s, "startup_s": report.startup_s,
            "window_s": window, "fps": report.frames / window, "fps_wall": report.frames / report.wall_s,
            "workers_used": len({r.worker for r in report.results}), "load_start": load,
            "load_end": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--inputs", type=int, default=8)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--res", default="256x512", help="HxW of the clips")
    p.add_argument("--workers", default="1,2", help="worker counts to compare (the first is the baseline)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu (one CPU per worker) or cuda (one GPU per worker)")
    p.add_argument("--model", default=None, help="registered model (default: the demo model)")
    p.add_argument("--save", default="labels", help="outputs per input, as vidseg-run --save ('' for none)")
    p.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    args = p.parse_args(argv)
    import ray
    import torch

    from vidseg.bench.env import environment

    height, width = (int(v) for v in args.res.split("x"))
    counts = [int(n) for n in args.workers.split(",")]
    config = EngineConfig(model=args.model, method=None, device=args.device)
    save = tuple(s for s in args.save.split(",") if s)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clips(Path(tmp) / "clips", args.inputs, height, width, args.frames)
        start = time.perf_counter()
        # GPUs as Ray detects them; one CPU per worker (a CUDA worker also takes one GPU)
        ray.init(address="local", num_cpus=max(counts), include_dashboard=False, log_to_driver=False)
        ray_start_s = time.perf_counter() - start
        try:
            for r in range(args.rounds):
                for n in (counts if r % 2 == 0 else counts[::-1]):
                    row = {"round": r, **one_run(clips, Path(tmp) / f"out-{n}-{r}", n, config, save)}
                    runs.append(row)
                    print(f"round {r}: {n} workers: {row['fps']:.2f} frames/s over {row['window_s']:.1f} s "
                          f"({row['fps_wall']:.2f} with start-up; load {row['load_start']:.1f})", file=sys.stderr)
        finally:
            ray.shutdown()
    summary = _summarise(runs, counts)
    env = environment(torch.device("cpu"))
    title = (f"{args.inputs} clips of {args.frames} frames at {height}x{width}, model {args.model or 'demo'} "
             f"(its default method), {args.device}, {os.cpu_count()} CPU cores, one torch thread per worker, "
             f"save {','.join(save) or 'nothing'}; Ray {ray.__version__} (local instance start {ray_start_s:.0f} s)")
    command = "python benchmarks/cluster_scaling.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"**{title}**", "", f"`{command}` ({env['date']}, commit {env['commit']})", "",
             "| workers | frames/s (median) | processing s (median) | speed-up vs 1 | scaling efficiency | "
             "frames/s incl. start-up | load avg (start-end) |", "|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['workers']} | {s['fps']:.2f} | {s['window_s']:.1f} | {s['speedup']:.2f}x | "
                     f"{s['efficiency']:.2f} | {s['fps_wall']:.2f} | {s['load']} |")
    markdown = "\n".join(lines)
    print(markdown)
    payload = {"title": title, "command": command, "args": vars(args), "runs": runs, "summary": summary,
               "environment": env, "ray": ray.__version__, "ray_start_s": ray_start_s}
    if args.out:
        written = write_record(args.out, payload, markdown)
        print(f"wrote {written[0]} and {written[1]}", file=sys.stderr)
    return payload


def _summarise(runs: list[dict], counts: list[int]) -> list[dict]:
    base = statistics.median(r["window_s"] for r in runs if r["workers"] == counts[0]) * counts[0]
    rows = []
    for n in counts:
        mine = [r for r in runs if r["workers"] == n]
        window = statistics.median(r["window_s"] for r in mine)
        rows.append({
            "workers": n, "window_s": window, "fps": statistics.median(r["fps"] for r in mine),
            "fps_wall": statistics.median(r["fps_wall"] for r in mine), "speedup": base / window,
            "efficiency": base / window / n,
            "load": ", ".join(f"{r['load_start']:.1f}-{r['load_end']:.1f}" for r in mine),
        })
    return rows


if __name__ == "__main__":
    main()

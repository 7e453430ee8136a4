"""`vidseg-run` end to end on a 960x540 H.264 road clip: wall time, frames/s and the share of the wall time outside
the model stages, for two checkouts run alternately (old, new, new, old, ...), so that a shared machine's load
falls on both alike.

    python benchmarks/e2e_share.py --old /work/main --new . --pairs 3 --out benchmarks/results/e2e_share_960x540

Each run is `python -m vidseg.cli.run CLIP --json J --no-progress` (the default demo model, method and saves) with
PYTHONPATH at the checkout and VIDSEG_OUT in a temporary folder; the share is 1 - (sum of the stage calls'
seconds) / wall seconds, from the JSON, so both checkouts are measured the same way whatever their summary holds.
The load average (1 min) is read before and after every run, and the run's CPU seconds (user + system, all its
threads) are recorded: the work it did, which the machine's load does not change much.
The clip is rendered once (held-out road scene, 120 frames, GOP 30) when it is not there.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def render(path: Path, frames: int, gop: int) -> None:
    from vidseg.synthetic import road_clip, write_clip
    from vidseg.synthetic.presets import HELDOUT_SEED0

    clip = road_clip(HELDOUT_SEED0, (540, 960), split="heldout", num_frames=frames, gop=gop)
    write_clip(path, clip.config, clip.num_frames, gop=clip.gop, bitrate=clip.bitrate, ground_truth=False)


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run(checkout: Path, clip: Path, extra: list[str], env_extra: dict[str, str] | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "run.json"
        cmd = ["nice", "-n", "5", sys.executable, "-m", "vidseg.cli.run", str(clip), "--json", str(record),
               "--no-progress", *extra]
        env = {**os.environ, "PYTHONPATH": str(checkout), "VIDSEG_OUT": str(Path(tmp) / "out"), **(env_extra or {})}
        load0, start, cpu0 = loadavg(), time.perf_counter(), _children_cpu()
        subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=tmp)
        elapsed, load1, cpu = time.perf_counter() - start, loadavg(), _children_cpu() - cpu0
        data = json.loads(record.read_text())
        outputs = {Path(p).name: _size(Path(p)) for p in data["outputs"]}
    stages = sum(s["total_s"] for s in data["stages"].values())
    wall = data["wall_s"]
    return {"checkout": str(checkout), "env": env_extra or {}, "command": " ".join(cmd[4:]), "process_s": elapsed,
            "cpu_s": cpu, "wall_s": wall,
            "startup_s": data["startup_s"], "fps": data["fps"], "stages_s": stages,
            "outside_share": 1 - stages / wall, "outside_share_after_startup": 1 - stages / (wall - data["startup_s"]),
            "outside_seconds": data.get("outside_stages", {}).get("seconds"), "threads": data.get("threads"),
            "frames": data["frames"], "load_before": load0, "load_after": load1, "output_bytes": outputs}


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far: the work a run did, whatever the load."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir())
    return path.stat().st_size if path.exists() else 0


def summarise(runs: list[dict], label: str) -> dict:
    picked = [r for r in runs if r["label"] == label]
    keys = ("wall_s", "fps", "outside_share", "outside_share_after_startup", "startup_s", "cpu_s")
    return {k: {"median": statistics.median(r[k] for r in picked), "all": [round(r[k], 4) for r in picked]}
            for k in keys if all(k in r for r in picked)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", type=Path, required=True, help="checkout of the code before")
    p.add_argument("--new", type=Path, required=True, help="checkout of the code after")
    p.add_argument("--clip", type=Path, default=Path(tempfile.gettempdir()) / "vidseg_e2e_road_960x540.mp4")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--out", type=Path, required=True, help="results stem (.json and .md are written)")
    p.add_argument("--old-env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment of the old side's runs (repeatable), e.g. OMP_WAIT_POLICY=ACTIVE")
    p.add_argument("--new-env", action="append", default=[], metavar="KEY=VALUE", help="the same for the new side")
    p.add_argument("extra", nargs="*", help="more vidseg-run arguments (after --)")
    args = p.parse_args()
    envs = {"old": dict(kv.split("=", 1) for kv in args.old_env), "new": dict(kv.split("=", 1) for kv in args.new_env)}
    if not args.clip.exists():
        render(args.clip, 120, 30)
    runs = []
    for i in range(args.pairs):  # old, new, new, old, ...: neither side always runs first
        order = [("old", args.old), ("new", args.new)]
        for label, checkout in order if i % 2 == 0 else order[::-1]:
            result = {"label": label, **run(checkout.resolve(), args.clip, args.extra, envs[label])}
            runs.append(result)
            print(f"{label}: {result['wall_s']:.1f} s, {result['fps']:.2f} frames/s, outside the stages "
                  f"{result['outside_share']:.1%}, load {result['load_before']:.1f} -> {result['load_after']:.1f}",
                  flush=True)
    record = {"clip": str(args.clip), "cpus": os.cpu_count(), "runs": runs,
              "old": summarise(runs, "old"), "new": summarise(runs, "new")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    args.out.with_suffix(".md").write_text(markdown(record))
    print(json.dumps({k: record[k] for k in ("old", "new")}, indent=2))


def markdown(record: dict) -> str:
    """The runs as a table, in the order they ran, and the medians of each side."""
    lines = [f"# vidseg-run end to end: {Path(record['clip']).name}", "",
             "| # | code | wall s | start-up s | frames/s | outside the stages | same, after start-up | "
             "decode wait s | labels s | write wait s | other s | load before -> after |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, r in enumerate(record["runs"], 1):
        sec = r.get("outside_seconds") or {}
        cell = [f"{sec[k]:.1f}" if k in sec else "-" for k in ("decode wait", "labels", "write wait", "other")]
        lines.append(f"| {i} | {r['label']} | {r['wall_s']:.1f} | {r['startup_s']:.1f} | {r['fps']:.3f} | "
                     f"{r['outside_share']:.1%} | {r['outside_share_after_startup']:.1%} | {' | '.join(cell)} | "
                     f"{r['load_before']:.1f} -> {r['load_after']:.1f} |")
    lines += ["", "| code | wall s (median) | frames/s (median) | outside the stages (median) | after start-up | "
              "CPU s (median) |", "| --- | --- | --- | --- | --- | --- |"]
    for side in ("old", "new"):
        m = record[side]
        cpu = f"{m['cpu_s']['median']:.1f}" if "cpu_s" in m else "-"
        lines.append(f"| {side} | {m['wall_s']['median']:.1f} | {m['fps']['median']:.3f} | "
                     f"{m['outside_share']['median']:.1%} | {m['outside_share_after_startup']['median']:.1%} | "
                     f"{cpu} |")
    lines += ["", f"Command per run: `{record['runs'][0]['command']}` (PYTHONPATH at the checkout, VIDSEG_OUT in a "
              "temporary folder)."]
    for side in ("old", "new"):
        env = next((r["env"] for r in record["runs"] if r["label"] == side and r.get("env")), None)
        if env:
            lines.append(f"Environment of the {side} runs: " + ", ".join(f"{k}={v}" for k, v in env.items()) + ".")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

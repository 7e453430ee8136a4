"""Render speed of the synthetic street scene on one CPU core.

    python benchmarks/render_speed.py                          # 512x1024, pinned to one core, 60 frames
    taskset -c 0 python benchmarks/render_speed.py --frames 120 --out /tmp/render_speed.json
    python benchmarks/render_speed.py --height 128 --width 256 --frames 10    # quick smoke run
    python benchmarks/render_speed.py --preset heldout --seed 100002          # a road preset (rural, blur, noise)

Times `StreetScene.render(t)` over consecutive frames: image, labels, surface ids and the exact flow and
occlusion to the previous frame (what a SyntheticFrame holds), and `StreetScene.flow(t, key)`, the extra pass
`write_clip` makes for the flow to the keyframe. Reports wall-clock and CPU time per frame (median with 20/80 %
quantiles) and frames/s from the median wall time, against the target of 20 frames/s at 512x1024 on one core.
The process pins itself to one CPU (unless --no-pin) and caps BLAS/OpenMP pools at one thread before NumPy is
imported; NumPy's element-wise kernels are single-threaded anyway. Other processes on the machine slow it down:
the record says the load average at the start.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

TARGET_FPS = 20.0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _stats(samples: list[float]) -> dict:
    ms = np.asarray(samples) * 1e3
    return {"median_ms": float(np.median(ms)), "p20_ms": float(np.percentile(ms, 20)),
            "p80_ms": float(np.percentile(ms, 80)), "min_ms": float(ms.min())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=60, help="timed frames (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gop", type=int, default=12, help="keyframe interval for the flow-to-key timing")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the first allowed one)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON record here")
    parser.add_argument("--preset", choices=("train", "heldout"), default=None,
                        help="render vidseg.synthetic.road_clip(seed, split=PRESET)'s scene (settings, hills, "
                             "camera effects) instead of the default SceneConfig street")
    args = parser.parse_args(argv)

    pinned = None
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        pinned = args.cpu if args.cpu is not None else allowed[0]
        os.sched_setaffinity(0, {pinned})
    try:
        import torch  # only to cap its pool if something imported it; the renderer does not use it

        torch.set_num_threads(1)
    except ImportError:
        pass

    from vidseg.synthetic import SceneConfig, StreetScene, road_clip

    if args.preset is None:
        config = SceneConfig(height=args.height, width=args.width, seed=args.seed)
    else:
        config = road_clip(args.seed, (args.height, args.width), split=args.preset).config
    t0 = time.perf_counter()
    scene = StreetScene(config)
    init_s = time.perf_counter() - t0
    for t in range(args.warmup):
        scene.render(t)
    wall, cpu, flow_wall = [], [], []
    for t in range(args.warmup, args.warmup + args.frames):
        w0, c0 = time.perf_counter(), time.process_time()
        scene.render(t)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
        key = t // args.gop * args.gop
        if key != t:
            w0 = time.perf_counter()
            scene.flow(t, key)
            flow_wall.append(time.perf_counter() - w0)
    render = _stats(wall)
    fps = 1e3 / render["median_ms"]
    record = {
        "benchmark": "render_speed",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "size": [args.height, args.width],
        "frames": args.frames,
        "seed": args.seed,
        "preset": args.preset,
        "scene": {"setting": config.setting, "hills": config.hills, "noise": config.noise,
                  "motion_blur": config.motion_blur},
        "render_wall": render,
        "render_cpu": _stats(cpu),
        "render_fps": fps,
        "flow_to_key_wall": _stats(flow_wall) if flow_wall else None,
        "scene_init_s": init_s,
        "target_fps": TARGET_FPS,
        "meets_target": bool(fps >= TARGET_FPS),
        "pinned_cpu": pinned,
        "cpus_allowed": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "cpu": _cpu_model(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    cpus = record["cpus_allowed"]
    where = f"CPU {pinned}" if pinned is not None else (f"CPUs {cpus}" if cpus else "any CPU")
    print(f"render {args.height}x{args.width} on {where} "
          f"({record['cpu']}; load average {record['load_average'][0]:.1f} at start)"
          if record["load_average"] else f"render {args.height}x{args.width}")
    print(f"  render(t) with flow+occlusion to t-1: median {render['median_ms']:.1f} ms "
          f"[p20 {render['p20_ms']:.1f}, p80 {render['p80_ms']:.1f}] wall, "
          f"{record['render_cpu']['median_ms']:.1f} ms CPU -> {fps:.1f} frames/s "
          f"(target {TARGET_FPS:.0f}: {'met' if record['meets_target'] else 'NOT met'})")
    if flow_wall:
        fk = record["flow_to_key_wall"]
        print(f"  flow(t, key) extra pass: median {fk['median_ms']:.1f} ms [p20 {fk['p20_ms']:.1f}, "
              f"p80 {fk['p80_ms']:.1f}]")
    print(json.dumps(record))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Decode throughput of vidseg.video at 1024x2048: frames/s with and without codec motion export.

    python benchmarks/decode_speed.py                       # 24-frame synthetic street clip, H.264 5 Mb/s
    python benchmarks/decode_speed.py --threads 0,1 --repeats 5 --out benchmarks/results/decode_speed

Encodes a short clip once (vidseg.synthetic at --height x --width, H.264 GOP 12, no B-frames, the
Cityscapes setting of AR-Seg), then times, per decoder thread count (0 = FFmpeg's choice):
  pyav           PyAV demux + decode only (no RGB conversion): the floor
  frames         open_video(motion=False): + RGB24 conversion, Frame objects
  frames+motion  open_video(motion=True): + export_mvs, the vectors kept as MotionFields (their 4 px cell grids
                 are made when first read: here by the MotionChain timing below, not in these rows)
and the per-frame cost of MotionChain.push (exact on the cell grid, arseg per pixel) and of to_dense to the 1/8
grid. Median of --repeats runs with the 20/80 % quantiles; frames/s = frames / median wall seconds; the CPU time
(process_time, all threads) per frame is given too, as wall times on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from vidseg.bench.report import write_record
from vidseg.video.decode import open_video
from vidseg.video.motion import MotionChain


def _quantiles(seconds: list[float]) -> dict:
    q = np.quantile(seconds, [0.2, 0.5, 0.8])
    return {"p20_s": float(q[0]), "median_s": float(q[1]), "p80_s": float(q[2])}


def _time(fn, repeats: int) -> dict:
    fn()  # warm-up (file cache, codec init)
    runs, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        runs.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {**_quantiles(runs), "cpu_median_s": float(np.median(cpu))}


def _pyav_only(path: Path, threads: int, motion: bool) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        if motion:
            stream.codec_context.options = {"flags2": "+export_mvs"}
        return sum(1 for _ in container.decode(stream))


def _vidseg(path: Path, threads: int, motion: bool) -> int:
    with open_video(path, motion=motion, threads=threads) as video:
        return sum(1 for _ in video)


def make_clip(path: Path, height: int, width: int, frames: int, bitrate: int) -> Path:
    from vidseg.synthetic import SceneConfig, write_clip

    write_clip(path, SceneConfig(height=height, width=width, seed=0), frames, gop=12, bitrate=bitrate,
               ground_truth=False)
    return path


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--bitrate", type=int, default=5_000_000)
    p.add_argument("--threads", default="0,1", help="decoder thread counts to time (0 = FFmpeg's choice)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--video", default=None, help="time this file instead of encoding a synthetic clip")
    p.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.video) if args.video else make_clip(Path(tmp) / "clip.mp4", args.height, args.width,
                                                             args.frames, args.bitrate)
        with open_video(path, motion=True) as video:
            frames = list(video)
            size, codec = video.size, video.codec
        n = len(frames)
        rows = []
        for threads in (int(t) for t in args.threads.split(",")):
            for name, fn, motion in (("pyav", _pyav_only, False), ("pyav+mvs", _pyav_only, True),
                                     ("frames", _vidseg, False), ("frames+motion", _vidseg, True)):
                stats = _time(lambda fn=fn, motion=motion, threads=threads: fn(path, threads, motion), args.repeats)
                rows.append({"what": name, "threads": threads, "fps": n / stats["median_s"], **stats})
        grid = (-(-size[0] // 8), -(-size[1] // 8))
        per_frame = {}
        for mode in ("exact", "arseg"):
            def chain_all(mode=mode):
                chain = MotionChain(size, mode=mode)
                for f in frames:
                    chain.push(f, is_key=f.index % 12 == 0)
            per_frame[f"MotionChain.push ({mode})"] = _time(chain_all, args.repeats)["median_s"] / n * 1e3
        field = MotionChain(size).push(frames[0], is_key=True)
        chain = MotionChain(size)
        for f in frames[:12]:
            field = chain.push(f, is_key=f.index == 0)
        for mode in ("area", "bilinear", "arseg"):
            per_frame[f"to_dense {grid} ({mode})"] = _time(lambda mode=mode: field.to_dense(grid, mode=mode),
                                                           args.repeats)["median_s"] * 1e3
    title = (f"{codec} {size[0]}x{size[1]}, {n} frames, {args.bitrate / 1e6:g} Mb/s, GOP 12, "
             f"CPU ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end)")
    lines = [f"**{title}**", "",
             "| what | threads | frames/s | median s (p20-p80) | CPU ms/frame (all threads) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['what']} | {r['threads'] or 'auto'} | {r['fps']:.1f} | "
                     f"{r['median_s']:.3f} ({r['p20_s']:.3f}-{r['p80_s']:.3f}) | {r['cpu_median_s'] / n * 1e3:.1f} |")
    lines += ["", "| per frame | ms |", "|---|---|"] + [f"| {k} | {v:.2f} |" for k, v in per_frame.items()]
    markdown = "\n".join(lines)
    print(markdown)
    report = {
        "title": title, "args": vars(args), "rows": rows, "per_frame_ms": per_frame,
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "av": av.__version__,
                        "ffmpeg": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()},
                        "cpus": os.cpu_count(), "machine": platform.machine()},
    }
    if args.out:
        written = write_record(args.out, report, markdown)
        print(f"wrote {written[0]} and {written[1]}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()

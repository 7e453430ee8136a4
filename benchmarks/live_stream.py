"""Live segmentation of a loopback camera stream: achieved frames/s, latency from arrival (p50/p99), drops, and
the share of frames whose motion came from the codec.

    python benchmarks/live_stream.py                               # 960x540 H.264 at 25 fps, 30 s, demo arseg
    python benchmarks/live_stream.py --seconds 60 --out benchmarks/results/live_stream_960x540

A synthetic street clip (`vidseg.synthetic`, --frames frames at --height x --width, H.264 with an I-frame
every --gop frames and no B-frames, as IP cameras send) is rendered once (cached in $TMPDIR); the sender
(tests/video/stream_sender.py) sends its packets, looping, in real time as MPEG-TS over TCP on 127.0.0.1; the
engine reads the stream as `vidseg-run tcp://127.0.0.1:PORT` would, live (newest frame wins, drops counted).
After --warmup seconds of processed frames (the engine start-up and the first keyframes), it is measured for
--seconds:
  frames/s        frames processed per second of the measured window
  latency         from each frame's arrival (its packet read) to its labels on the host: p50, p99, mean
  dropped         frames that arrived while the engine was busy, as a share of those offered
  codec motion    frames whose non-keyframe path ran on the codec's own motion vectors, of all processed frames
                  and of the non-keyframes
The machine (CPU, cores, load average before and after) is recorded with the numbers: on a shared machine the
load average says how much of it the run had.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch

from vidseg import Engine, EngineConfig, SourceOptions
from vidseg.bench.env import environment
from vidseg.bench.report import write_record
from vidseg.synthetic import SceneConfig, write_clip

REPO = Path(__file__).resolve().parents[1]
SENDER = REPO / "tests" / "video" / "stream_sender.py"


def clip_for(args: argparse.Namespace, folder: Path) -> Path:
    path = folder / f"live_clip_{args.height}x{args.width}_{args.frames}f_{args.fps:g}fps_gop{args.gop}.mp4"
    if not path.exists():
        write_clip(path, SceneConfig(height=args.height, width=args.width, fps=args.fps), args.frames, gop=args.gop,
                   ground_truth=False)
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(url: str, args: argparse.Namespace) -> dict:
    keys = {"keyframes": "gop"} if args.keyframes == "gop" else {"keyframe_interval": args.interval}
    engine = Engine(EngineConfig(method="arseg", device="cpu", **keys))
    window, first, start, now = [], None, None, 0.0
    run = engine.run(url, source_options=SourceOptions(timeout=10.0), live=True)
    try:
        for result in run:
            now = time.perf_counter()
            first = first or now
            if start is None and now - first >= args.warmup:
                start = now  # the window opens with this result
            if start is not None:
                window.append(result)
                if now - start >= args.seconds:
                    break
    finally:
        run.close()
    summary = engine.summary
    span = now - start
    latency = np.array([r.latency for r in window]) * 1000.0
    nonkey = [r for r in window if not r.is_key]
    codec = sum(r.motion == "codec" for r in window)
    indices = [r.index for r in window]
    offered = indices[-1] - indices[0] + 1  # frames the camera sent in the window (indices count them all)
    return {
        "frames": len(window),
        "keyframes": len(window) - len(nonkey),
        "fps": (len(window) - 1) / span,  # frames after the first, over the time since it
        "offered": offered,
        "dropped": offered - len(window),
        "dropped_share": (offered - len(window)) / offered if offered else None,
        "latency_ms": {"p50": float(np.percentile(latency, 50)), "p99": float(np.percentile(latency, 99)),
                       "mean": float(latency.mean())},
        "codec_motion_frames": codec,
        "codec_motion_share_all": codec / len(window) if window else None,
        "codec_motion_share_nonkey": codec / len(nonkey) if nonkey else None,
        "run_summary": {"frames": summary.frames, "dropped": summary.dropped, "startup_s": summary.startup_s,
                        "motion": dict(summary.motion), "fallbacks": list(summary.fallbacks),
                        "backend": summary.backend, "policy": summary.policy, "reconnects": summary.reconnects},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--height", type=int, default=540)
    p.add_argument("--width", type=int, default=960)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--frames", type=int, default=50, help="frames in the clip the sender loops")
    p.add_argument("--gop", type=int, default=12, help="the stream's I-frame interval (cameras: often 1-2 s)")
    p.add_argument("--seconds", type=float, default=30.0, help="measured window")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of results before the window")
    p.add_argument("--keyframes", choices=("interval", "gop"), default="interval",
                   help="interval: every --interval frames (by frame index, so a slow engine keys every frame it "
                        "takes); gop: the camera's I-frames, motion chained through the frames dropped between")
    p.add_argument("--interval", type=int, default=12, help="keyframe interval (AR-Seg's L)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "live_stream_960x540")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cache = Path(os.environ.get("TMPDIR", "/tmp")) / "vidseg-live-bench"
    cache.mkdir(exist_ok=True)
    clip = clip_for(args, cache)
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    load_before = os.getloadavg()
    sender = subprocess.Popen([sys.executable, str(SENDER), str(clip), f"{url}?listen=1", "--format", "mpegts",
                               "--loop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)  # the sender's Python starts and listens
        numbers = measure(url, args)
    finally:
        sender.kill()
        sender.wait()
    load_after = os.getloadavg()
    command = "python benchmarks/live_stream.py " + " ".join(sys.argv[1:])
    record = {
        "command": command.strip(),
        "stream": {"size": [args.height, args.width], "fps": args.fps, "codec": "h264", "gop": args.gop,
                   "bframes": 0, "transport": "MPEG-TS over TCP, 127.0.0.1", "clip_frames": args.frames},
        "model": "demo", "method": "arseg", "keyframe_policy": "codec I-frames" if args.keyframes == "gop" else
        f"every {args.interval} frames", "seconds": args.seconds,
        "warmup_s": args.warmup, **numbers,
        "machine": {**environment(torch.device("cpu")), "load_before": load_before, "load_after": load_after},
        "date": time.strftime("%Y-%m-%d"),
    }
    lat = numbers["latency_ms"]
    share = "{:.0%}".format  # noqa: UP032 - a formatter for the shares, None where there were no frames
    shares = [share(v) if v is not None else "-" for v in (numbers["codec_motion_share_all"],
                                                           numbers["codec_motion_share_nonkey"])]
    markdown = "\n".join([
        f"**Live demo arseg (keyframes: {record['keyframe_policy']}) on a {args.width}x{args.height} H.264 stream at "
        f"{args.fps:g} frames/s, GOP {args.gop} (MPEG-TS over "
        f"TCP, 127.0.0.1), {args.seconds:g} s measured after {args.warmup:g} s**",
        "",
        f"`{command.strip()}` — {record['machine']['cpu']}, {os.cpu_count()} cores, load average "
        f"{load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after; torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"PyAV {av.__version__}; {record['date']}",
        "",
        "| frames/s | latency p50 | latency p99 | dropped | codec motion (all / non-key frames) |",
        "|---|---|---|---|---|",
        f"| {numbers['fps']:.2f} | {lat['p50']:.0f} ms | {lat['p99']:.0f} ms | {numbers['dropped']} of "
        f"{numbers['offered']} ({numbers['dropped_share']:.0%}) | {shares[0]} / {shares[1]} |",
    ])
    json_path, md_path = write_record(args.out, record, markdown)
    print(markdown)
    print(f"\nwritten: {json_path}, {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

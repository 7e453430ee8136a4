"""Segment a camera or a network stream and hand every frame's labels to a callback, as a robot's perception loop
would (the callback is where a planner, a logger or a publisher goes).

    python examples/camera_loop.py rtsp://user:password@camera.local/stream1
    python examples/camera_loop.py /dev/video0 --frames 100
    python examples/camera_loop.py tcp://127.0.0.1:5000 --model demo

Live mode is on for streams and cameras: when the engine is busy, the newest frame wins and the others are
counted as dropped; each result's latency runs from the frame's arrival. A lost stream is reopened (for ever
here) and starts with a new keyframe. Uses vidseg's public API only.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from vidseg import Engine, EngineConfig, FrameResult, SourceOptions, VidsegError

ROAD = 0  # Cityscapes trainId of "road"


class RoadWatcher:
    """An example consumer: the share of road pixels in the lower half of the picture, per frame."""

    def __init__(self) -> None:
        self.frames = 0
        self.road_share: list[float] = []

    def __call__(self, result: FrameResult) -> None:
        lower = result.labels[result.labels.shape[0] // 2:]
        share = float(np.mean(lower == ROAD))
        self.frames += 1
        self.road_share.append(share)
        kind = "key" if result.is_key else f"+{result.key_distance} ({result.motion or 'no'} motion)"
        print(f"frame {result.index:6d} {kind:22s} road {share:5.1%}  latency {result.latency * 1000:6.1f} ms")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="stream URL, camera (/dev/video0 or 0), video file or image folder")
    p.add_argument("--model", default=None, help="registered model (default: the built-in demo model)")
    p.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)

    engine = Engine(EngineConfig(model=args.model, method="arseg", keyframes="gop", device=args.device))
    watcher = RoadWatcher()
    options = SourceOptions(reconnect=-1, timeout=5.0)  # a robot keeps trying to get its camera back
    try:
        summary = engine.run(args.source, callback=watcher, max_frames=args.frames, source_options=options)
    except VidsegError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    latency = summary.latency["all"]
    print(f"{summary.frames} frames at {summary.fps:.1f} frames/s, {summary.dropped} dropped, {summary.reconnects} "
          f"reconnects; latency p50 {latency.p50_ms:.1f} ms, p99 {latency.p99_ms:.1f} ms; motion {summary.motion}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

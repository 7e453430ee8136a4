"""Send a video file's packets to a URL in real time, as a camera would (a test and benchmark tool).

    python tests/video/stream_sender.py CLIP URL --format mpegts [--option KEY=VALUE ...] [--loop]
        [--connect-retry S] [--timeout S]

The packets are remuxed, not re-encoded (H.264 stays H.264, with its motion vectors), and muxed at their
presentation times. --loop starts the clip over (timestamps go on) until the process is killed. --connect-retry
keeps trying to open the output for that many seconds (an RTSP push to a reader that is not listening yet).
"""

from __future__ import annotations

import argparse
import sys
import time

import av


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("clip")
    p.add_argument("url")
    p.add_argument("--format", required=True)
    p.add_argument("--option", action="append", default=[])
    p.add_argument("--loop", action="store_true")
    p.add_argument("--connect-retry", type=float, default=0.0)
    p.add_argument("--timeout", type=float, default=20.0)
    args = p.parse_args()
    options = dict(o.split("=", 1) for o in args.option)
    give_up = time.monotonic() + args.connect_retry
    while True:
        try:
            out = av.open(args.url, "w", format=args.format, options=options, timeout=args.timeout)
            break
        except av.FFmpegError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.1)
    with av.open(args.clip) as source:
        video = source.streams.video[0]
        stream = out.add_stream_from_template(video)
        time_base = video.time_base
        # (payload, pts, dts, keyframe): a muxed packet is consumed, so each loop sends new ones
        packets = [(bytes(p), p.pts, p.dts, p.is_keyframe) for p in source.demux(video) if p.dts is not None]
        rate = float(video.average_rate or 25)
    first = packets[0][1]
    span = max(p[1] for p in packets) - first + round(1 / rate / time_base)  # one loop, in ticks
    start = time.perf_counter()
    loop = 0
    try:
        while True:
            for payload, pts, dts, keyframe in packets:
                delay = start + float((pts - first + loop * span) * time_base) - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                packet = av.Packet(payload)
                packet.pts, packet.dts = pts + loop * span, dts + loop * span
                packet.time_base, packet.is_keyframe, packet.stream = time_base, keyframe, stream
                out.mux(packet)
            if not args.loop:
                break
            loop += 1
    except (av.error.BrokenPipeError, av.error.ConnectionResetError):
        print("sender: the receiver went away", file=sys.stderr)
        return 0
    finally:
        try:
            out.close()
        except av.FFmpegError:
            pass
    print("sender done", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Decode with codec motion + RGB: vidseg against motion-vector-extractor (`mvextractor`) on the same clip.

    python benchmarks/decode_peer.py                  # held-out road clip, 960x540 H.264, GOP 12, 96 frames
    python benchmarks/decode_peer.py --rounds 21 --out benchmarks/results/decode_peer_960x540
    python benchmarks/decode_peer.py --video drive.mp4

Each side decodes every frame of the clip, in display order, and hands out per frame:
  vidseg        `open_video(path, motion=True, threads=T)`: demux, decode with export_mvs, the RGB24 image, the
                codec's vector array on `Frame.motion` (`MotionField.blocks`; its cell grid is made when first
                read), picture type, pts, H.264 reference bits.
  vidseg+grid   the same, and every P/B-frame's 4 px cell grid read at once, in the same thread (what a consumer
                such as `MotionChain` pays when it runs in the decoding thread).
  peer          `VideoCap.read()`: demux, decode with export_mvs, the BGR24 image, the vector array [N, 10] int32,
                picture type.
  baseline      with --baseline DIR: vidseg as in another checkout (e.g. an export of the commit before a
                change), `open_video` as above, timed inside a child process (start-up and a first
                opening not counted).
Decoder threads: mvextractor sets them to the CPU count (std::thread::hardware_concurrency(), FFmpeg's default
frame + slice threading) and offers no setting; vidseg's first --threads value (default: the same CPU count) gives
the headline ratio, the others are extra rows (0 = FFmpeg's own choice, cores + 1). Python side: one thread each.

Timing: after one warm-up pass each, --rounds interleaved rounds, the order reversed every other round (A B C,
C B A, ...); a round times one whole pass over the clip per contender (wall clock, and CPU time of all threads).
ms/frame and frames/s are medians over rounds with the 20-80 % quantiles; "vs peer" is the per-round ratio
peer time / vidseg time (= vidseg frames/s / peer frames/s), median [q20-q80] (`vidseg.bench.stats`); the same
ratio of CPU times (all threads of the process; the child's own for --baseline) is given too, as it moves less
with the machine's other load.

"Same vectors", checked on every frame outside the timing: the two sides give the same number of frames and the
same picture type per frame; a frame's vectors are the same when vidseg's block array (a frame without vectors,
Frame.motion None or without blocks, counts as an empty one) and mvextractor's array have the same rows in the
same order, compared on all ten of mvextractor's columns: source, w, h, src_x, src_y, dst_x, dst_y, motion_x,
motion_y, motion_scale (FFmpeg's `flags`, which mvextractor drops, is not compared). Also reported: the largest
pixel difference between vidseg's RGB and mvextractor's BGR read as RGB, and whether every frame's cell grid
from the coarse-grid rasteriser equals the general one (`vidseg.video.raster`).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import av
import numpy as np

from vidseg.bench.report import write_record
from vidseg.bench.stats import paired_ratio
from vidseg.video.decode import open_video
from vidseg.video.raster import rasterise, rasterise_cells

PEER_FIELDS = ("source", "w", "h", "src_x", "src_y", "dst_x", "dst_y", "motion_x", "motion_y", "motion_scale")
REPO = Path(__file__).resolve().parents[1]


def make_clip(path: Path, size: tuple[int, int], frames: int, gop: int, seed: int) -> Path:
    """The held-out road clip of `seed` (the realistic split: noise, blur, exposure drift, low bitrate)."""
    from vidseg.synthetic import write_clip
    from vidseg.synthetic.presets import HELDOUT_SEED0, road_clip

    if not path.is_file():
        clip = road_clip(HELDOUT_SEED0 + seed, size, split="heldout", num_frames=frames, gop=gop)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_clip(path, clip.config, clip.num_frames, gop=clip.gop, bitrate=clip.bitrate, ground_truth=False)
    return path


def block_rows(blocks: np.ndarray | None) -> np.ndarray:
    """vidseg's block array as mvextractor's [N, 10] rows (its columns, its order)."""
    if blocks is None:
        return np.zeros((0, len(PEER_FIELDS)), np.int64)
    return np.stack([blocks[name].astype(np.int64) for name in PEER_FIELDS], axis=1)


def run_vidseg(path: str, threads: int, grid: bool = False) -> int:
    n = 0
    with open_video(path, motion=True, threads=threads) as video:
        for frame in video:
            if grid and frame.motion is not None:
                frame.motion.valid  # noqa: B018  (reading it makes the grid)
            n += 1
    return n


_CHILD = """
import sys, time
from vidseg.video.decode import open_video
with open_video(sys.argv[1], motion=True, threads=int(sys.argv[2])) as video:  # warm-up: first-use costs
    next(video)
start, start_cpu = time.perf_counter(), time.process_time()
with open_video(sys.argv[1], motion=True, threads=int(sys.argv[2])) as video:
    n = sum(1 for _ in video)
print(n, time.perf_counter() - start, time.process_time() - start_cpu)
"""


def run_baseline(path: str, threads: int, checkout: str) -> tuple[int, float, float]:
    """One pass of another checkout's open_video in a child process: (frames, wall s, CPU s) as it timed them."""
    env = {**os.environ, "PYTHONPATH": checkout}
    out = subprocess.run([sys.executable, "-c", _CHILD, os.path.abspath(path), str(threads)], env=env,
                         capture_output=True, text=True, check=True, cwd=checkout).stdout.split()
    return int(out[0]), float(out[1]), float(out[2])


def run_peer(path: str) -> int:
    from mvextractor.videocap import VideoCap

    cap = VideoCap()
    if not cap.open(path):
        raise RuntimeError(f"mvextractor cannot open {path}")
    n = 0
    try:
        while True:
            ok, _image, _vectors, _kind = cap.read()
            if not ok:
                return n
            n += 1
    finally:
        cap.release()


def check_same(path: str, threads: int) -> dict:
    """Every frame of both sides compared (see the module doc for what "same" means)."""
    from mvextractor.videocap import VideoCap

    ours = []
    with open_video(path, motion=True, threads=threads) as video:
        size, rotation = None, video.rotation
        for f in video:
            blocks = None if f.motion is None else f.motion.blocks
            ours.append((f.pict_type, blocks, f.image))
    cap = VideoCap()
    cap.open(path)
    theirs = []
    while True:
        ok, image, vectors, kind = cap.read()
        if not ok:
            break
        theirs.append((kind, vectors, image))
    cap.release()
    size = ours[0][2].shape[:2]
    report = {"frames": [len(ours), len(theirs)], "type_mismatches": [], "vector_mismatches": [], "rows": 0,
              "frames_with_vectors": 0, "max_pixel_diff": 0, "grid_mismatches": []}
    for i, ((kind, blocks, image), (peer_kind, peer_vectors, peer_image)) in enumerate(zip(ours, theirs, strict=False)):
        rows = block_rows(blocks)
        if kind != peer_kind:
            report["type_mismatches"].append(i)
        if rows.shape != peer_vectors.shape or not np.array_equal(rows, peer_vectors):
            report["vector_mismatches"].append(i)
        report["rows"] += len(rows)
        report["frames_with_vectors"] += int(len(rows) > 0)
        if peer_image.shape == image.shape:
            diff = np.abs(image.astype(np.int16) - peer_image[..., ::-1].astype(np.int16)).max()
            report["max_pixel_diff"] = max(report["max_pixel_diff"], int(diff))
        else:
            report["max_pixel_diff"] = None
        if blocks is not None:
            fast = rasterise(blocks, size, 4, rotation)
            general = rasterise_cells(blocks, size, 4, rotation)
            if not all(np.array_equal(a, b) for a, b in zip(fast, general, strict=True)):
                report["grid_mismatches"].append(i)
    report["same"] = (len(ours) == len(theirs) and not report["type_mismatches"]
                      and not report["vector_mismatches"])
    return report


def environment() -> dict:
    cpu = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        have = set(next(line for line in info.splitlines() if line.startswith("flags")).split(":", 1)[1].split())
        flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni") if f in have]
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=REPO, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"cpu": cpu, "cpu_flags": flags, "cpus": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(), "numpy": np.__version__, "av": av.__version__,
            "ffmpeg (PyAV)": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()},
            "motion-vector-extractor": metadata.version("motion-vector-extractor"), "commit": commit}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--video", default=None, help="time this file instead of the rendered road clip")
    p.add_argument("--clip", default=None, help="where to keep the rendered clip (rendered when missing)")
    p.add_argument("--size", default="540x960", help="HxW of the rendered clip")
    p.add_argument("--frames", type=int, default=96)
    p.add_argument("--gop", type=int, default=12)
    p.add_argument("--seed", type=int, default=0, help="held-out seed offset (HELDOUT_SEED0 + seed)")
    p.add_argument("--threads", default=str(min(os.cpu_count() or 1, 16)),
                   help="vidseg decoder threads, comma-separated; the first gives the headline ratio")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--baseline", default=None, help="another vidseg checkout, timed as an extra row (see above)")
    p.add_argument("--baseline-label", default=None, help="how the table names it (default: its folder)")
    p.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        height, width = (int(v) for v in args.size.lower().split("x"))
        clip = Path(args.clip) if args.clip else Path(tmp) / f"road_{height}x{width}_g{args.gop}.mp4"
        path = str(Path(args.video) if args.video else make_clip(clip, (height, width), args.frames, args.gop,
                                                                   args.seed))
        same = check_same(path, threads[0])
        contenders = {"peer": lambda: run_peer(path)}
        for t in threads:
            contenders[f"vidseg t{t}"] = lambda t=t: run_vidseg(path, t)
        contenders[f"vidseg+grid t{threads[0]}"] = lambda: run_vidseg(path, threads[0], grid=True)
        if args.baseline:
            contenders[f"baseline t{threads[0]}"] = lambda: run_baseline(path, threads[0], args.baseline)
        frames = {name: fn() for name, fn in contenders.items()}  # warm-up (file cache, code paths)
        frames = {name: n[0] if isinstance(n, tuple) else n for name, n in frames.items()}
        wall: dict[str, list[float]] = {name: [] for name in contenders}
        cpu: dict[str, list[float]] = {name: [] for name in contenders}
        names = list(contenders)
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                start, start_cpu = time.perf_counter(), time.process_time()
                timed = contenders[name]()
                if isinstance(timed, tuple):  # a child process's own timing
                    wall[name].append(timed[1])
                    cpu[name].append(timed[2])
                else:
                    wall[name].append(time.perf_counter() - start)
                    cpu[name].append(time.process_time() - start_cpu)
    load_end = os.getloadavg()
    rows = []
    for name in names:
        n = frames[name]
        ms = np.quantile(np.array(wall[name]) / n * 1e3, [0.2, 0.5, 0.8])
        ratio = None if name == "peer" else paired_ratio(wall["peer"], wall[name])
        cpu_ratio = None if name == "peer" else paired_ratio(cpu["peer"], cpu[name])
        rows.append({"decoder": name, "frames": n, "ms_per_frame": float(ms[1]), "ms_q20": float(ms[0]),
                     "ms_q80": float(ms[2]), "fps": 1e3 / float(ms[1]),
                     "cpu_ms_per_frame": float(np.median(cpu[name])) / n * 1e3,
                     "vs_peer": None if ratio is None else ratio.to_dict(),
                     "cpu_vs_peer": None if cpu_ratio is None else cpu_ratio.to_dict(),
                     "round_s": wall[name], "round_cpu_s": cpu[name]})
    env = environment()
    command = "python benchmarks/decode_peer.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    headline = next(r for r in rows if r["decoder"] == f"vidseg t{threads[0]}")
    title = (f"Decode with motion + RGB, vidseg / motion-vector-extractor: "
             f"{headline['vs_peer']['median']:.2f}x [{headline['vs_peer']['q20']:.2f}-{headline['vs_peer']['q80']:.2f}]"
             f" frames/s ({Path(path).name}, {same['frames'][0]} frames)")
    lines = [f"**{title}**", "", f"`{command}`", "",
             f"{env['cpu']}, {env['cpus']} cores, {env['machine']} ({', '.join(env['cpu_flags']) or 'no AVX flags'}); "
             f"load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end; {args.rounds} "
             f"interleaved rounds; PyAV {env['av']}, motion-vector-extractor {env['motion-vector-extractor']}, "
             f"numpy {env['numpy']}; commit {env['commit']}", "",
             "| decoder | threads | ms/frame [q20-q80] | frames/s | CPU ms/frame (all threads) "
             "| vs peer, frames/s [q20-q80] | vs peer, CPU time [q20-q80] |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        name, _, t = r["decoder"].partition(" t")
        vs, vs_cpu = ("-" if r[k] is None else f"{r[k]['median']:.2f}x [{r[k]['q20']:.2f}-{r[k]['q80']:.2f}]"
                      for k in ("vs_peer", "cpu_vs_peer"))
        label = {"peer": "motion-vector-extractor",
                 "baseline": f"vidseg {args.baseline_label or args.baseline}"}.get(name, name)
        shown = f"{os.cpu_count()} (fixed)" if name == "peer" else (t if t != "0" else "0 (FFmpeg: cores + 1)")
        lines.append(f"| {label} | {shown} | {r['ms_per_frame']:.2f} [{r['ms_q20']:.2f}-{r['ms_q80']:.2f}] | "
                     f"{r['fps']:.0f} | {r['cpu_ms_per_frame']:.2f} | {vs} | {vs_cpu} |")
    verdict = "the same" if same["same"] else "DIFFERENT"
    lines += ["", f"Vectors: {verdict} on every frame ({same['frames'][0]} vs {same['frames'][1]} frames, "
              f"{same['frames_with_vectors']} with vectors, {same['rows']} rows compared on source, w, h, src_x, "
              f"src_y, dst_x, dst_y, motion_x, motion_y, motion_scale; picture types "
              f"{'equal' if not same['type_mismatches'] else 'differ at ' + str(same['type_mismatches'][:10])}"
              f"{'' if not same['vector_mismatches'] else '; vectors differ at ' + str(same['vector_mismatches'][:10])}"
              f"). Images: largest difference between vidseg's RGB and the peer's BGR read as RGB: "
              f"{same['max_pixel_diff']}. Cell grids (4 px): coarse-grid rasteriser "
              f"{'equals' if not same['grid_mismatches'] else 'DIFFERS from'} the general one on every frame."]
    markdown = "\n".join(lines)
    print(markdown)
    report = {"title": title, "command": command, "args": vars(args), "clip": path if args.video else
              Path(path).name, "load_average_start": load_start, "load_average_end": load_end, "rows": rows,
              "same_vectors": same, "environment": env}
    if args.out:
        written = write_record(args.out, report, markdown)
        print(f"wrote {written[0]} and {written[1]}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()

"""Accuracy of codec motion chained back to the keyframe, against the exact flow of synthetic street clips.

    python benchmarks/motion_epe.py                               # 512x1024, one 12-frame GOP, seed 0
    python benchmarks/motion_epe.py --height 1024 --width 2048 --seeds 0,1,2 --out benchmarks/results/motion_epe

For each keyframe distance d = 1..gop-1: the mean end-point error (pixels, at image resolution) over the pixels
visible in the keyframe (occ_key False) of
  zero            no motion at all (how much there is to recover)
  exact/area      MotionChain(mode="exact") densified with to_dense(mode="area") (block-constant per cell)
  exact/bilinear  MotionChain(mode="exact") densified with to_dense(mode="bilinear")
  arseg           MotionChain(mode="arseg") (AR-Seg's integer per-pixel chaining)
and, for the exact chain, the share of those pixels whose chained motion is valid and the EPE over them alone.
Two more columns measure at the 1/8 feature grid, where the warp uses the motion: exact chain densified with
"area", and AR-Seg's pipeline (arseg chain, "arseg" resize: both components scaled by h/H, bilinear
align_corners=True), against the block mean of the visible flow (blocks at least half visible), in image pixels.
Clips come from vidseg.synthetic.write_clip (libx264 veryfast: one reference frame; bframes as given).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vidseg.bench.report import write_record
from vidseg.synthetic import SceneConfig, load_ground_truth, write_clip
from vidseg.video.decode import open_video
from vidseg.video.motion import MotionChain

COLUMNS = ("zero", "exact/area", "exact/bilinear", "arseg")
GRID_COLUMNS = ("exact/area 1/8", "arseg/arseg 1/8")


def measure_clip(path: Path, gop: int, cell: int = 4) -> dict[int, dict[str, list[float]]]:
    """Per keyframe distance: EPE of each method over non-occluded pixels (one value per frame)."""
    rows: dict[int, dict[str, list[float]]] = {}
    with open_video(path, motion=True, cell=cell) as video:
        exact = MotionChain(video.size, mode="exact", cell=cell)
        arseg = MotionChain(video.size, mode="arseg")
        for frame in video:
            is_key = frame.index % gop == 0
            fields = {"exact": exact.push(frame, is_key=is_key), "arseg": arseg.push(frame, is_key=is_key)}
            d = frame.index - exact.key_index
            if d == 0:
                continue
            gt = load_ground_truth(path, frame.index)
            assert gt["key_index"] == exact.key_index, "ground truth and chain disagree on the keyframe"
            truth = gt["flow_key"].transpose(2, 0, 1)
            visible = ~gt["occ_key"]
            dense = {
                "zero": (np.zeros_like(truth), None),
                "exact/area": fields["exact"].to_dense(mode="area"),
                "exact/bilinear": fields["exact"].to_dense(mode="bilinear"),
                "arseg": fields["arseg"].to_dense(mode="nearest"),
            }
            row = rows.setdefault(d, {k: [] for k in (*COLUMNS, *GRID_COLUMNS, "valid", "exact/bilinear valid-only")})
            for name, (vectors, _) in dense.items():
                epe = np.sqrt(((vectors - truth) ** 2).sum(0))
                row[name].append(float(epe[visible].mean()))
            # At the 1/8 feature grid (what the warp uses): the truth is the block mean of the flow over the
            # visible pixels of each 8x8 block; errors are reported in image pixels (x 8) to compare with the above.
            size = (truth.shape[1] // 8, truth.shape[2] // 8)
            blocks = visible[: size[0] * 8, : size[1] * 8].reshape(size[0], 8, size[1], 8)
            count = blocks.sum((1, 3))
            flow8 = (truth[:, : size[0] * 8, : size[1] * 8] * visible[: size[0] * 8, : size[1] * 8]).reshape(
                2, size[0], 8, size[1], 8).sum((2, 4)) / np.maximum(count, 1) / 8
            keep = count >= 32  # mostly visible blocks
            for name, (field, mode) in {"exact/area 1/8": (fields["exact"], "area"),
                                        "arseg/arseg 1/8": (fields["arseg"], "arseg")}.items():
                vectors, _ = field.to_dense(size, mode=mode)
                row[name].append(float(8 * np.sqrt(((vectors - flow8) ** 2).sum(0))[keep].mean()))
            vectors, valid = dense["exact/bilinear"]
            both = visible & valid
            row["valid"].append(float(both.sum() / max(visible.sum(), 1)))
            epe = np.sqrt(((vectors - truth) ** 2).sum(0))
            row["exact/bilinear valid-only"].append(float(epe[both].mean()) if both.any() else float("nan"))
    return rows


def to_markdown(table: dict[int, dict[str, float]], title: str) -> str:
    head = ("d", *COLUMNS, *GRID_COLUMNS, "valid %", "exact/bilinear on valid")
    lines = [f"**{title}** (mean EPE in pixels over pixels visible in the keyframe)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d, row in sorted(table.items()):
        cells = [f"{row[c]:.3f}" for c in (*COLUMNS, *GRID_COLUMNS)]
        cells += [f"{100 * row['valid']:.1f}", f"{row['exact/bilinear valid-only']:.3f}"]
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--gop", type=int, default=12)
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default: one GOP)")
    p.add_argument("--bframes", type=int, default=0)
    p.add_argument("--bitrate", type=int, default=5_000_000)
    p.add_argument("--seeds", default="0", help="comma-separated scene seeds; the table averages over them")
    p.add_argument("--cell", type=int, default=4, help="MotionField cell size (pixels)")
    p.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    args = p.parse_args(argv)
    frames = args.frames or args.gop
    per_d: dict[int, dict[str, list[float]]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            config = SceneConfig(height=args.height, width=args.width, seed=seed)
            info = write_clip(Path(tmp) / f"clip{seed}.mp4", config, frames, gop=args.gop, bframes=args.bframes,
                              bitrate=args.bitrate)
            for d, row in measure_clip(info.path, args.gop, args.cell).items():
                acc = per_d.setdefault(d, {k: [] for k in row})
                for k, v in row.items():
                    acc[k].extend(v)
    table = {d: {k: float(np.nanmean(v)) for k, v in row.items()} for d, row in per_d.items()}
    title = (f"{args.height}x{args.width}, H.264 {args.bitrate / 1e6:g} Mb/s, GOP {args.gop}, bframes "
             f"{args.bframes}, seeds {args.seeds}, cell {args.cell}")
    markdown = to_markdown(table, title)
    print(markdown)
    import av

    report = {
        "title": title,
        "args": vars(args),
        "table": {str(d): row for d, row in sorted(table.items())},
        "seconds": round(time.perf_counter() - started, 1),
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "av": av.__version__,
                        "ffmpeg": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()},
                        "machine": platform.machine(), "processor": platform.processor() or platform.machine()},
    }
    if args.out:
        written = write_record(args.out, report, markdown)
        print(f"wrote {written[0]} and {written[1]}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()

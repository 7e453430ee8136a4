"""Keyframes where the codec motion restarts: the measurements behind `MotionRestarts` (engine/schedule.py).

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/keyframe_restarts.py \
        --out benchmarks/results/keyframe_restarts.json

1. Intra share of P-frames (cells the codec coded without a motion vector) on synthetic road clips of both
   preset splits (H.264 at their bitrates, 256x512): what an ordinary P-frame looks like.
2. A scene cut the encoder leaves as a P-frame (two road scenes joined at frame 20, GOP 60, x264 scene-cut
   detection off): the cut frame's intra share, and the demo model's arseg after the cut with and without the
   scene-cut rule (mIoU against the labels, agreement with per-frame).
3. An I-frame inside the keyframe interval (GOP 30 under interval 12, held-out road clips): arseg on the frames
   after the I-frame (30..35) with the rule (a keyframe at 30) and without (the chain through the I-frame counts
   as zero motion, AR-Seg's behaviour).
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np

from vidseg.bench.report import write_json
from vidseg.config import EngineConfig
from vidseg.engine.engine import Engine
from vidseg.engine.schedule import IntervalPolicy, MotionRestarts
from vidseg.eval.consistency import AgreementMeter
from vidseg.eval.metrics import ConfusionMatrix
from vidseg.synthetic import StreetScene, load_ground_truth, road_clip, write_road_set
from vidseg.video.decode import open_video
from vidseg.video.encode import VideoWriter, fixed_gop_options


def intra_shares(clips: list[Path]) -> list[float]:
    shares = []
    for clip in clips:
        with open_video(clip, motion=True) as video:
            shares += [float((f.motion.ref == 0).mean()) for f in video if f.motion is not None]
    return shares


def _run(model, path, policy, frames):
    engine = Engine(EngineConfig(method="arseg", keyframe_interval=12, device="cpu"), model=model)
    engine.policy = policy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = list(engine.run(str(path), max_frames=frames))
    engine.close()
    return results


def _compare(model, path, labels_of, frames: range, policies: dict) -> dict:
    reference = Engine(EngineConfig(method="per-frame", device="cpu"), model=model)
    hr = [r.labels for r in reference.run(str(path), max_frames=frames.stop)]
    out = {}
    for name, policy in policies.items():
        results = _run(model, path, policy, frames.stop)
        conf, agree = ConfusionMatrix(19), AgreementMeter()
        for t in frames:
            conf.update(results[t].labels, labels_of(t))
            agree.update(results[t].labels, hr[t], max(1, results[t].key_distance))
        out[name] = {"miou": conf.miou(), "agreement": agree.mean(), "agreement_min": agree.min(),
                     "keys": [r.index for r in results if r.is_key]}
    hr_conf = ConfusionMatrix(19)
    for t in frames:
        hr_conf.update(hr[t], labels_of(t))
    out["HR per-frame"] = {"miou": hr_conf.miou()}
    return out


def scene_cut(model, root: Path, cut: int = 20, frames: int = 32) -> dict:
    a, b = road_clip(7, split="heldout").config, road_clip(11, split="heldout").config
    scenes = [StreetScene(a), StreetScene(b)]
    path = root / "cut.mp4"
    labels = []
    options = fixed_gop_options("libx264", 60, 0)
    with VideoWriter(path, width=a.width, height=a.height, rate=17, bitrate=400_000, gop=60, bframes=0,
                     options=options) as writer:
        for t in range(frames):
            frame = scenes[t >= cut].render(t if t < cut else t - cut + 5)
            writer.write(frame.image, pts=t, key=t == 0)
            labels.append(frame.labels)
    with open_video(path, motion=True) as video:
        info = [(f.pict_type, None if f.motion is None else float((f.motion.ref == 0).mean())) for f in video]
    result = _compare(model, path, lambda t: labels[t], range(cut, frames),
                      {"with scene-cut rule": MotionRestarts(IntervalPolicy(12)),
                       "without (I-frames only)": MotionRestarts(IntervalPolicy(12), scene_cut=None)})
    return {"cut_frame": cut, "cut_pict_type": info[cut][0], "cut_intra_share": info[cut][1],
            "intra_share_before_cut": [s for _, s in info[1:cut]], "after_cut": result}


def iframe_inside(model, clips: list[Path]) -> dict:
    rows = {}
    for clip in clips:
        result = _compare(model, clip, lambda t, c=clip: load_ground_truth(c, t)["labels"], range(30, 36),
                          {"with I-frame rule": MotionRestarts(IntervalPolicy(12)),
                           "without (AR-Seg: zero motion through it)": IntervalPolicy(12)})
        for name, row in result.items():
            for key, value in row.items():
                if key != "keys":
                    rows.setdefault(name, {}).setdefault(key, []).append(value)
    return {name: {k: float(np.mean(v)) for k, v in row.items()} for name, row in rows.items()}


def main(argv=None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, help="demo weights (default: the installed ones)")
    p.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "vidseg-restarts")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    from vidseg.models.demo import build_demo

    model = build_demo(pretrained=args.weights is None)
    if args.weights:
        state = torch.load(args.weights, map_location="cpu", weights_only=True)["model"]
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.eval()
    train = write_road_set(args.data / "train", 6, split="train", num_frames=24, gop=12)
    held = write_road_set(args.data / "heldout", 6, split="heldout", num_frames=36, gop=30)
    report = {}
    for name, clips in (("train split", train), ("held-out split", held)):
        s = np.array(intra_shares(clips))
        report[f"intra_share_{name}"] = {"mean": float(s.mean()), "p99": float(np.percentile(s, 99)),
                                         "max": float(s.max()), "frames": int(s.size)}
        print(f"P-frame intra share, {name}: mean {s.mean():.3f}, p99 {np.percentile(s, 99):.3f}, max {s.max():.3f}")
    report["scene_cut"] = scene_cut(model, args.data)
    cut = report["scene_cut"]
    print(f"scene cut at frame {cut['cut_frame']}: {cut['cut_pict_type']}-frame, intra share "
          f"{cut['cut_intra_share']:.3f}")
    for name, row in cut["after_cut"].items():
        print(f"  {name}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    report["iframe_inside_interval"] = iframe_inside(model, held)
    for name, row in report["iframe_inside_interval"].items():
        print(f"I-frame inside interval, frames 30-35, {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    if args.out:
        write_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

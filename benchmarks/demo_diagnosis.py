"""Why the demo's non-key path drifts from the HR result: its parts, measured apart on held-out synthetic clips.

    PYTHONPATH=$PWD python benchmarks/demo_diagnosis.py --weights vidseg/assets/demo.pt --sets city realistic \
        --out benchmarks/results/demo_diagnosis.json

For every non-keyframe (keyframe = the clip's I-frame, GOP 12, d = 1..11) of each set it runs, with one model:
  HR          the HR network on the frame (what per-frame gives)
  AR codec    LR branch + CReFF with the codec motion chained to the key (what the engine's arseg gives)
  AR oracle   the same with the ground-truth flow to the key (motion error removed)
  AR zero     the same with zero motion
  AR fresh    the same fed the frame's own HR feature with zero motion: no motion error and no staleness, so
              the ceiling of the LR branch + CReFF (what fusion loses even with the perfect key feature)
  warp codec  the key's HR feature warped by the codec motion, through the classifier (no LR branch at all)
  warp oracle the same with the ground-truth flow
  LR alone    the LR branch's own feature through the classifier (CReFF's residual input: what the LR sees)
and reports mIoU (mean over d = 1..11), the mIoU at d = 1 and d = 11, agreement with HR, and the share of the
HR network's sky pixels each variant calls road; plus how large CReFF's attention output is against its LR input
(|attention| / |LR feature|, per pixel, mean). Sets: "city" (the old held-out clips: default SceneConfig,
seeds 1000..1003) and "realistic" (`vidseg.synthetic.write_road_set`'s held-out split, GOP 12).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidseg.bench.report import write_json
from vidseg.classes import CITYSCAPES
from vidseg.eval.consistency import AgreementMeter
from vidseg.eval.metrics import KeyDistanceMIoU
from vidseg.kernels import ops
from vidseg.models.base import logits_to_labels
from vidseg.models.demo import DEMO_SPEC, build_demo
from vidseg.synthetic import SceneConfig, load_ground_truth, write_clip, write_road_set
from vidseg.video.decode import open_video
from vidseg.video.motion import MotionChain, resize_motion

VARIANTS = ("HR", "AR codec", "AR oracle", "AR zero", "AR fresh", "warp codec", "warp oracle", "LR alone")
SKY, ROAD = CITYSCAPES.classes.index("sky"), CITYSCAPES.classes.index("road")


def make_set(name: str, root: Path, clips: int, size=(256, 512)) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    if name == "city":
        paths = []
        for i in range(clips):
            path = root / f"eval{1000 + i}_{size[0]}x{size[1]}.mp4"
            if not (root / f"{path.stem}_gt" / "meta.json").is_file():
                write_clip(path, SceneConfig(height=size[0], width=size[1], seed=1000 + i), 24, gop=12,
                           bitrate=800_000)
            paths.append(path)
        return paths
    return write_road_set(root, clips, size, split="heldout", num_frames=24, gop=12)


def _labels(logits: torch.Tensor, size) -> np.ndarray:
    """The engine's labels step for the demo's stride-8 logits (its x8 upsample, then the resize to the frame)."""
    spec = DEMO_SPEC
    return logits_to_labels(logits, size, align_corners=spec.logits_align_corners,
                            upsample=spec.logits_upsample)[0].numpy()


@torch.inference_mode()
def diagnose(model, clips: list[Path]) -> dict:
    stages = model.stages()
    key_stage, nonkey = stages["key"], stages["nonkey"]
    k = model.spec.num_classes
    miou = {v: KeyDistanceMIoU(k, 11) for v in VARIANTS}
    agree = {v: AgreementMeter() for v in VARIANTS if v != "HR"}
    sky_as_road = {v: [0, 0] for v in VARIANTS if v != "HR"}
    ratio = []
    for clip in clips:
        with open_video(clip, motion=True) as video:
            chain = MotionChain(video.size, cell=video.cell)
            key_feat = None
            for frame in video:
                gt = load_ground_truth(clip, frame.index)
                d = frame.index - gt["key_index"]
                image = torch.from_numpy(frame.image).permute(2, 0, 1)[None].contiguous()
                size = frame.image.shape[:2]
                hr_logits, hr_feat = key_stage(image)
                hr = _labels(hr_logits, size)
                field = chain.push(frame, is_key=d == 0)
                if d == 0:
                    key_feat = hr_feat
                    for v in VARIANTS:
                        miou[v].update(hr, gt["labels"], 0)
                    continue
                grid = tuple(key_feat.shape[-2:])
                codec = torch.from_numpy(np.ascontiguousarray(field.to_dense(grid, mode="area")[0]))[None]
                oracle = resize_motion(torch.from_numpy(gt["flow_key"]).permute(2, 0, 1)[None], grid)
                x = model.preprocess(image)
                x = F.interpolate(x, size=(int(size[0] * 0.5), int(size[1] * 0.5)), mode="bilinear",
                                  align_corners=True)
                lr_feat = model.lr.features(x)
                lr_up = F.interpolate(lr_feat, size=grid, mode="bilinear", align_corners=True)
                warped = ops.warp(key_feat, codec, "exact")
                fused = model.lr.fuse_attention(warped, lr_feat)
                ratio.append(float(((fused - lr_up).norm(dim=1) / (lr_up.norm(dim=1) + 1e-6)).mean()))
                outs = {
                    "HR": hr,
                    "AR codec": _labels(model.lr.fused_head(fused), size),
                    "AR oracle": _labels(nonkey(image, key_feat, oracle)[0], size),
                    "AR zero": _labels(nonkey(image, key_feat, torch.zeros_like(codec))[0], size),
                    "AR fresh": _labels(nonkey(image, hr_feat, torch.zeros_like(codec))[0], size),
                    "warp codec": _labels(model.lr.fused_head(warped), size),
                    "warp oracle": _labels(model.lr.fused_head(ops.warp(key_feat, oracle, "exact")), size),
                    "LR alone": _labels(model.lr.fused_head(lr_up), size),
                }
                hr_sky = hr == SKY
                for v, labels in outs.items():
                    miou[v].update(labels, gt["labels"], d)
                    if v != "HR":
                        agree[v].update(labels, hr, d)
                        sky_as_road[v][0] += int((labels[hr_sky] == ROAD).sum())
                        sky_as_road[v][1] += int(hr_sky.sum())
    out = {}
    for v in VARIANTS:
        per_d = miou[v].per_distance()
        nonkey_d = [per_d[d] for d in range(1, 12) if d in per_d]
        row = {"miou_nonkey": float(np.mean(nonkey_d)), "miou_d1": per_d.get(1), "miou_d11": per_d.get(11),
               "miou_per_distance": per_d}
        if v != "HR":
            row.update(agreement=agree[v].mean(), agreement_min=agree[v].min(),
                       sky_as_road=sky_as_road[v][0] / max(sky_as_road[v][1], 1))
        out[v] = row
    out["creff_attention_over_lr"] = float(np.mean(ratio))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, default=None, help="demo weights (default: the installed ones)")
    p.add_argument("--sets", nargs="+", default=["city", "realistic"], choices=["city", "realistic"])
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--data", type=Path, default=Path("/tmp/vidseg-diagnosis"))
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    model = build_demo(pretrained=args.weights is None)
    if args.weights is not None:
        state = torch.load(args.weights, map_location="cpu", weights_only=True)["model"]
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.eval()
    report = {"weights": str(args.weights or "installed"), "sets": {}}
    for name in args.sets:
        t0 = time.perf_counter()
        clips = make_set(name, args.data / name, args.clips if name == "realistic" else min(args.clips, 4))
        report["sets"][name] = diagnose(model, clips)
        report["sets"][name]["seconds"] = round(time.perf_counter() - t0, 1)
        rows = report["sets"][name]
        print(f"{name}: CReFF |attention|/|LR| = {rows['creff_attention_over_lr']:.2f}")
        for v in VARIANTS:
            r = rows[v]
            extra = "" if v == "HR" else (f"  agree {100 * r['agreement']:.1f} (min {100 * r['agreement_min']:.1f})"
                                          f"  HR-sky->road {100 * r['sky_as_road']:.1f}%")
            print(f"  {v:12s} mIoU d1-11 {100 * r['miou_nonkey']:.1f}  d1 {100 * (r['miou_d1'] or 0):.1f}  "
                  f"d11 {100 * (r['miou_d11'] or 0):.1f}{extra}")
    if args.out:
        write_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

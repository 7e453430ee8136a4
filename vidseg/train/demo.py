"""Training and checking the built-in demo model (`vidseg-train demo`).

Recipe (AR-Seg's, at demo scale, on vidseg's synthetic roads; every clip H.264-encoded with GOP 12 and decoded
with its codec motion, as the engine will see video):
  0. Data: `train_scenes` road clips of `vidseg.synthetic.road_clip`'s training split (city, suburb and rural
     roads, each with its own lighting, camera effects and bitrate), plus `city_train_scenes` default street scenes
     (`SceneConfig`, the kind the city set holds out), so neither renderer's look is all the networks know.
  1. HR net per frame (class-balanced cross-entropy, poly LR, flips, photometric jitter, random crops, camera and
     codec degradations of strength `degrade`, `vidseg.train.augment`).
  2. LR branch alone on 0.5x frames with the HR classifier copied and frozen, CE + FST on its feature
     (AR-Seg's stage 1), starting from the HR weights (`lr_init="hr"`); a copy is the "LR-only" baseline.
  3. LR branch + CReFF on (keyframe, frame at distance d = 1..11) pairs with the codec motion chained to the key,
     CE + FST(fused feature, HR feature of the same frame) (AR-Seg's stage 2), plus two recipe choices of vidseg:
     the non-keyframe the LR branch sees is degraded (in `nonkey_degrade_share` of the samples, at strength
     `nonkey_degrade`) while the HR targets come from the clean frame, and `kd_weight` * KL(HR logits || fused
     logits).
Then the held-out evaluation on two sets: "realistic" (`eval_scenes` clips of the held-out split: other seeds,
lighting, noise, blur, compression and camera than training; GOP 30 under keyframe interval 12, as a real clip)
and "city" (the clips of the first demo: default street scenes, seeds 1000..). Per set: mIoU per keyframe
distance d = 0..11 for HR per-frame, LR-only and AR-Seg (d: AR-Seg's distance to its keyframe), temporal
consistency, and the agreement of AR-Seg's non-keyframes with HR per-frame (`vidseg.eval.consistency`).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidseg.config import EngineConfig
from vidseg.engine.engine import Engine
from vidseg.eval.consistency import AgreementMeter
from vidseg.eval.metrics import KeyDistanceMIoU
from vidseg.eval.temporal import TemporalConsistency
from vidseg.models.base import logits_to_labels
from vidseg.models.demo import build_demo, demo_weights_path
from vidseg.synthetic import SceneConfig, load_ground_truth, write_clip, write_road_set
from vidseg.train.data import SyntheticClips
from vidseg.train.loop import TrainConfig
from vidseg.train.recipes import init_lr_from_hr, train_arseg, train_hr, train_lr_only

__all__ = ["DemoRecipe", "train_demo", "evaluate_demo", "save_demo", "install_demo", "METHODS"]

METHODS = ("HR per-frame", "LR-only 0.5x", "AR-Seg 0.5x")
INTERVAL = 12  # AR-Seg's keyframe interval L


@dataclass(frozen=True)
class DemoRecipe:
    size: tuple[int, int] = (256, 512)
    crop: tuple[int, int] = (128, 256)
    scenes: str = "road"  # "road" (road_clip's training split) or "city" (the first demo's default streets)
    train_scenes: int = 40
    city_train_scenes: int = 12  # default street scenes (seeds 0.., the city set holds out 1000..) mixed into training
    eval_scenes: int = 12  # realistic held-out clips
    eval_frames: int = 48
    eval_gop: int = 30
    city_scenes: int = 4  # the first demo's held-out clips
    frames_per_scene: int = 24
    gop: int = 12
    batch: int = 8
    steps_hr: int = 4000
    steps_lr: int = 600
    steps_arseg: int = 5000
    class_balanced: bool = True  # CE weights ~ frequency^-1/2, so poles, signs and people are learnt too
    lr_hr: float = 0.05
    lr_lr: float = 0.02
    lr_arseg: float = 0.01
    lr_init: str = "hr"  # the LR branch starts from the HR weights ("scratch": random, as the first demo)
    degrade: float = 0.5  # camera/codec degradations of training frames, HR, LR-only and keys (0: none)
    nonkey_degrade: float = 1.0  # stage 3: their strength on the non-keyframe the LR branch sees (twice the keys':
    # the ablation in benchmarks/demo_ablation.py lost 5 HR mIoU points with the HR net trained at strength 1)
    nonkey_degrade_share: float = 0.8  # stage 3: share of non-keyframes degraded for the LR branch
    kd_weight: float = 1.0  # stage 3: KL towards the HR logits of the same frame (0: AR-Seg's losses only)
    kd_temperature: float = 2.0
    seed: int = 0


def train_demo(out_dir: str | Path, recipe: DemoRecipe = DemoRecipe(), *, device: str = "cpu",
               progress: bool = True) -> dict:
    """Run the whole recipe in out_dir (resumable per stage); returns the evaluation report."""
    out = Path(out_dir)
    torch.manual_seed(recipe.seed)
    data = SyntheticClips(out / "clips", seeds=range(recipe.train_scenes), size=recipe.size,
                          num_frames=recipe.frames_per_scene, gop=recipe.gop, progress=progress,
                          scenes=recipe.scenes)
    if recipe.city_train_scenes and recipe.scenes != "city":
        data.extend(SyntheticClips(out / "clips", seeds=range(recipe.city_train_scenes), size=recipe.size,
                                   num_frames=recipe.frames_per_scene, gop=recipe.gop, progress=progress,
                                   scenes="city"))
    model = build_demo(pretrained=False)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    weight = data.class_weights(model.spec.num_classes) if recipe.class_balanced else None
    kw = dict(batch=recipe.batch, device=device, crop=recipe.crop, class_weight=weight, progress=progress,
              degrade=recipe.degrade)
    train_hr(model, data, TrainConfig(steps=recipe.steps_hr, lr=recipe.lr_hr, warmup_steps=50, seed=recipe.seed),
             out / "hr", **kw)
    seconds["hr"] = time.perf_counter() - t0
    if recipe.lr_init == "hr":
        init_lr_from_hr(model)  # a resumed stage 2 loads its own checkpoint over this
    train_lr_only(model, data, TrainConfig(steps=recipe.steps_lr, lr=recipe.lr_lr, seed=recipe.seed + 1),
                  out / "lr_only", **kw)
    seconds["lr_only"] = time.perf_counter() - t0 - seconds["hr"]
    lr_only = copy.deepcopy(model.lr).eval()
    train_arseg(model, data, TrainConfig(steps=recipe.steps_arseg, lr=recipe.lr_arseg, seed=recipe.seed + 2),
                out / "arseg", degrade_share=recipe.nonkey_degrade_share, lr_degrade=recipe.nonkey_degrade,
                kd_weight=recipe.kd_weight,
                kd_temperature=recipe.kd_temperature, **kw)
    train_s = time.perf_counter() - t0
    seconds["arseg"] = train_s - seconds["hr"] - seconds["lr_only"]
    model.cpu().eval()
    lr_only.cpu()
    report = evaluate_demo(model, lr_only, out / "eval", recipe)
    report["train_seconds"] = round(train_s, 1)
    report["train_seconds_per_stage"] = {k: round(v, 1) for k, v in seconds.items()}
    report["torch_threads"] = torch.get_num_threads()
    report["recipe"] = asdict(recipe)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    save_demo(model, out / "demo.pt", report)
    return report


def eval_sets(root: Path, recipe: DemoRecipe = DemoRecipe()) -> dict[str, list[Path]]:
    """The held-out clips (rendered on first use): "realistic" and "city" (see the module docstring)."""
    sets = {"realistic": write_road_set(root / "realistic", recipe.eval_scenes, recipe.size, split="heldout",
                                        num_frames=recipe.eval_frames, gop=recipe.eval_gop)}
    city = []
    for i in range(recipe.city_scenes):
        seed = 1000 + i  # held out: the first demo trained on seeds 0..15
        path = root / "city" / f"eval{seed}_{recipe.size[0]}x{recipe.size[1]}.mp4"
        if not (path.parent / f"{path.stem}_gt" / "meta.json").exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_clip(path, SceneConfig(height=recipe.size[0], width=recipe.size[1], seed=seed),
                       recipe.frames_per_scene, gop=recipe.gop, bitrate=800_000)
        city.append(path)
    if city:
        sets["city"] = city
    return sets


def evaluate_demo(model, lr_only, root: Path, recipe: DemoRecipe = DemoRecipe()) -> dict:
    """Per held-out set: mIoU_d (d = 0..11), mean, min and TC of HR per-frame, LR-only and AR-Seg, and AR-Seg's
    agreement with HR per-frame. "methods" is the realistic set's (the primary one)."""
    root.mkdir(parents=True, exist_ok=True)
    report: dict = {"eval": {}}
    for name, clips in eval_sets(root, recipe).items():
        report["eval"][name] = _evaluate_set(model, lr_only, clips)
    report["methods"] = report["eval"]["realistic"]["methods"]
    return report


def _evaluate_set(model, lr_only, clips: list[Path]) -> dict:
    k = model.spec.num_classes
    per_d = {name: KeyDistanceMIoU(k, INTERVAL - 1) for name in METHODS}
    tc = {name: TemporalConsistency(k, direction="backward") for name in METHODS}
    agreement = AgreementMeter()
    hr = Engine(EngineConfig(method="per-frame", device="cpu"), model=model)
    ar = Engine(EngineConfig(method="arseg", keyframes="interval", keyframe_interval=INTERVAL, device="cpu",
                             drift_limit=None),  # mIoU per nominal key distance
                model=model)
    notes: list[str] = []
    from vidseg.video.decode import open_video

    for clip in clips:
        ar_results = list(ar.run(str(clip)))
        notes += [n for n in ar.notes if n not in notes]
        preds = {"AR-Seg 0.5x": [r.labels for r in ar_results],
                 "HR per-frame": [r.labels for r in hr.run(str(clip))]}
        with open_video(clip) as source:
            preds["LR-only 0.5x"] = [_lr_only_labels(model, lr_only, frame.image) for frame in source]
        for t, result in enumerate(ar_results):
            gt = load_ground_truth(clip, t)
            d = result.key_distance
            agreement.update(result.labels, preds["HR per-frame"][t], d, video=clip.name, index=t)
            for name in METHODS:
                per_d[name].update(preds[name][t], gt["labels"], d)
                if t > 0:
                    tc[name].update(preds[name][t - 1], preds[name][t], flow=gt["flow_prev"])
    hr.close()
    ar.close()
    return {
        "clips": [c.name for c in clips],
        "methods": {name: {"miou_per_distance": per_d[name].per_distance(), "miou_mean": per_d[name].mean(),
                           "miou_min": per_d[name].min(), "tc_bwd": tc[name].value()} for name in METHODS},
        "agreement": agreement.summary(),
        "notes": notes,
    }


@torch.inference_mode()
def _lr_only_labels(model, lr_only, image: np.ndarray) -> np.ndarray:
    x = model.preprocess(torch.from_numpy(image).permute(2, 0, 1)[None])
    h, w = x.shape[-2:]
    x = F.interpolate(x, size=(int(h * model.spec.lr_scale), int(w * model.spec.lr_scale)), mode="bilinear",
                      align_corners=True)
    logits, _ = lr_only.forward_key(x)
    spec = model.spec
    return logits_to_labels(logits, (h, w), align_corners=spec.logits_align_corners,
                            upsample=spec.logits_upsample)[0].numpy()


def save_demo(model, path: Path, report: dict | None = None) -> Path:
    """fp16 weights (the package ships these: small, and accurate enough for argmax) plus provenance."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    meta = {"recipe": json.dumps((report or {}).get("recipe", {})),
            "report": json.dumps((report or {}).get("methods", {}))}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "meta": meta}, path)
    return path


def install_demo(trained: Path) -> Path:
    """Copy trained demo weights into the package (vidseg/assets/demo.pt)."""
    target = demo_weights_path()
    target.write_bytes(Path(trained).read_bytes())
    return target

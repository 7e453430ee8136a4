"""Training and checking the built-in demo model (`vidseg-train demo`).

Recipe (AR-Seg's, at demo scale, on vidseg's synthetic streets; every clip H.264-encoded with GOP 12 and decoded
with its codec motion, as the engine will see video):
  1. HR net per frame (class-balanced cross-entropy, poly LR, flips, photometric jitter, random crops).
  2. LR branch alone on 0.5x frames with the HR classifier copied and frozen, CE + FST on its feature
     (AR-Seg's stage 1); a copy of these weights is the "LR-only" baseline.
  3. LR branch + CReFF on (keyframe, frame at distance d) pairs with the codec motion chained to the keyframe,
     CE + FST(fused feature, HR feature of the same frame) (AR-Seg's stage 2).
Then the held-out evaluation (scenes with other seeds): mIoU per keyframe distance d = 0..11 for HR per-frame,
LR-only and AR-Seg, and temporal consistency; the report is what the README's reproduction table shows.
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
from vidseg.eval.metrics import KeyDistanceMIoU
from vidseg.eval.temporal import TemporalConsistency
from vidseg.models.base import logits_to_labels
from vidseg.models.demo import build_demo, demo_weights_path
from vidseg.synthetic import SceneConfig, load_ground_truth, write_clip
from vidseg.train.data import SyntheticClips
from vidseg.train.loop import TrainConfig
from vidseg.train.recipes import train_arseg, train_hr, train_lr_only

__all__ = ["DemoRecipe", "train_demo", "evaluate_demo", "save_demo"]


@dataclass(frozen=True)
class DemoRecipe:
    size: tuple[int, int] = (256, 512)
    crop: tuple[int, int] = (128, 256)
    train_scenes: int = 16
    eval_scenes: int = 4
    frames_per_scene: int = 24
    gop: int = 12
    batch: int = 8
    steps_hr: int = 1000
    steps_lr: int = 600
    steps_arseg: int = 4000
    class_balanced: bool = True  # CE weights ~ frequency^-1/2, so poles, signs and people are learnt too
    lr_hr: float = 0.05
    lr_lr: float = 0.02
    lr_arseg: float = 0.01
    seed: int = 0


def train_demo(out_dir: str | Path, recipe: DemoRecipe = DemoRecipe(), *, device: str = "cpu",
               progress: bool = True) -> dict:
    """Run the whole recipe in out_dir (resumable per stage); returns the evaluation report."""
    out = Path(out_dir)
    torch.manual_seed(recipe.seed)
    data = SyntheticClips(out / "clips", seeds=range(recipe.train_scenes), size=recipe.size,
                          num_frames=recipe.frames_per_scene, gop=recipe.gop, progress=progress)
    model = build_demo(pretrained=False)
    t0 = time.perf_counter()
    weight = data.class_weights(model.spec.num_classes) if recipe.class_balanced else None
    kw = dict(batch=recipe.batch, device=device, crop=recipe.crop, class_weight=weight, progress=progress)
    train_hr(model, data, TrainConfig(steps=recipe.steps_hr, lr=recipe.lr_hr, warmup_steps=50, seed=recipe.seed),
             out / "hr", **kw)
    train_lr_only(model, data, TrainConfig(steps=recipe.steps_lr, lr=recipe.lr_lr, seed=recipe.seed + 1),
                  out / "lr_only", **kw)
    lr_only = copy.deepcopy(model.lr).eval()
    train_arseg(model, data, TrainConfig(steps=recipe.steps_arseg, lr=recipe.lr_arseg, seed=recipe.seed + 2),
                out / "arseg", **kw)
    train_s = time.perf_counter() - t0
    model.cpu().eval()
    lr_only.cpu()
    report = evaluate_demo(model, lr_only, out / "eval", recipe)
    report["train_seconds"] = round(train_s, 1)
    report["recipe"] = asdict(recipe)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    save_demo(model, out / "demo.pt", report)
    return report


def _eval_clips(root: Path, recipe: DemoRecipe) -> list[Path]:
    clips = []
    for i in range(recipe.eval_scenes):
        seed = 1000 + i  # held out: training uses seeds 0..train_scenes-1
        path = root / f"eval{seed}_{recipe.size[0]}x{recipe.size[1]}.mp4"
        if not path.exists():
            write_clip(path, SceneConfig(height=recipe.size[0], width=recipe.size[1], seed=seed),
                       recipe.frames_per_scene, gop=recipe.gop, bitrate=800_000)
        clips.append(path)
    return clips


def evaluate_demo(model, lr_only, root: Path, recipe: DemoRecipe = DemoRecipe()) -> dict:
    """mIoU_d (d = 0..gop-1) and TC of HR per-frame, LR-only and AR-Seg on held-out synthetic clips."""
    root.mkdir(parents=True, exist_ok=True)
    clips = _eval_clips(root, recipe)
    k = model.spec.num_classes
    metrics = {name: (KeyDistanceMIoU(k, recipe.gop - 1), TemporalConsistency(k, direction="backward"))
               for name in ("HR per-frame", "LR-only 0.5x", "AR-Seg 0.5x")}
    engines = {
        "HR per-frame": Engine(EngineConfig(method="per-frame", device="cpu"), model=model),
        "AR-Seg 0.5x": Engine(EngineConfig(method="arseg", keyframes="interval", keyframe_interval=recipe.gop,
                                           device="cpu"), model=model),
    }
    for clip in clips:
        gts = {}
        preds: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
        for name, engine in engines.items():
            for result in engine.run(str(clip)):
                preds[name].append(result.labels)
        from vidseg.video.decode import open_video

        with open_video(clip) as source:
            for frame in source:
                preds["LR-only 0.5x"].append(_lr_only_labels(model, lr_only, frame.image))
        for t in range(len(preds["HR per-frame"])):
            gts[t] = load_ground_truth(clip, t)
        for name, (per_d, tc) in metrics.items():
            for t, labels in enumerate(preds[name]):
                gt = gts[t]
                per_d.update(labels, gt["labels"], t - gt["key_index"])
                if t > 0:
                    tc.update(preds[name][t - 1], labels, flow=gt["flow_prev"])
    for engine in engines.values():
        engine.close()
    return {
        "eval_clips": [c.name for c in clips],
        "methods": {name: {"miou_per_distance": per_d.per_distance(), "miou_mean": per_d.mean(),
                           "miou_min": per_d.min(), "tc_bwd": tc.value()}
                    for name, (per_d, tc) in metrics.items()},
    }


@torch.inference_mode()
def _lr_only_labels(model, lr_only, image: np.ndarray) -> np.ndarray:
    x = model.preprocess(torch.from_numpy(image).permute(2, 0, 1)[None])
    h, w = x.shape[-2:]
    x = F.interpolate(x, size=(int(h * model.spec.lr_scale), int(w * model.spec.lr_scale)), mode="bilinear",
                      align_corners=True)
    logits, _ = lr_only.forward_key(x)
    return logits_to_labels(logits, (h, w), align_corners=model.spec.logits_align_corners)[0].numpy()


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

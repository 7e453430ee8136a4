"""Training recipes over a model's own stages, so what is trained is exactly what the engine runs.

- `train_hr`: the HR (key) network per frame: cross-entropy with ignore index, poly LR; optionally ETC's
  temporal-consistency (motion) loss on consecutive frames with their optical flow (etc.md section 5).
- `train_lr_only`: AR-Seg's stage 1: the LR network alone on the downscaled frame (no CReFF), with the HR
  classifier copied and frozen and FST on the LR feature (arseg.md section 4, stage1_epoch). Its weights are
  the "LR-only" baseline of AR-Seg's tables.
- `train_arseg`: AR-Seg's stage 2: LR network + CReFF on (keyframe, frame at distance d) pairs with the real
  codec motion chain, loss = CE + MSE(fused LR feature, HR feature of the same frame); HR frozen, classifier
  frozen (copied from HR). Two additions that are vidseg's recipe choices, not AR-Seg's (both off by default):
  `degrade`, camera/codec degradations of the non-keyframe the LR branch sees (the HR targets come from the
  undegraded frame), and `kd_weight`, a distillation term KL(HR logits || fused logits) at temperature
  `kd_temperature` towards the HR network's output on the same frame (AR-Seg's FST distils features only).
- `init_lr_from_hr`: start the LR branch from the trained HR weights (the same architecture; AR-Seg starts it
  from ImageNet weights).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidseg.errors import ConfigError
from vidseg.models.base import VideoSegModel, upsample_logits
from vidseg.train.data import SyntheticClips
from vidseg.train.loop import TrainConfig, Trainer
from vidseg.train.losses import (
    distillation_loss,
    feature_similarity_loss,
    segmentation_loss,
    temporal_consistency_loss,
)
from vidseg.video.motion import dense_mode_for

__all__ = ["train_hr", "train_lr_only", "train_arseg", "copy_classifier", "init_lr_from_hr"]


def _key_net(model: VideoSegModel) -> nn.Module:
    return model.hr if hasattr(model, "hr") else model.net


def _require_pair(model: VideoSegModel) -> None:
    if not (hasattr(model, "hr") and hasattr(model, "lr")):
        raise ConfigError(f"model {model.spec.name!r} has no HR/LR pair; AR-Seg training needs an arseg-* model")


def copy_classifier(model: VideoSegModel) -> None:
    """AR-Seg's `load_decoder`: the LR net's final 1x1 classifier is the HR one, copied and frozen."""
    model.lr.final_conv.load_state_dict(model.hr.final_conv.state_dict())
    model.lr.final_conv.requires_grad_(False)


def init_lr_from_hr(model: VideoSegModel) -> None:
    """Copy the HR network's weights into the LR branch (same architecture; CReFF keeps its own)."""
    _require_pair(model)
    missing, unexpected = model.lr.load_state_dict(model.hr.state_dict(), strict=False)
    if unexpected or any(not k.startswith("fuse_attention.") for k in missing):
        raise ConfigError(f"the HR and LR networks of {model.spec.name!r} differ: missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}")


def train_hr(model: VideoSegModel, data: SyntheticClips, config: TrainConfig, out_dir: str | Path, *,
             batch: int = 8, device: str = "cpu", temporal_weight: float = 0.0, crop: tuple[int, int] | None = None,
             class_weight: Tensor | None = None, degrade: float = 0.0, progress: bool = True) -> list[dict]:
    """Train the key stage's network per frame (+ ETC's motion loss when temporal_weight > 0); degrade: strength
    of the camera/codec degradations applied to the frames (`vidseg.train.augment`)."""
    device = torch.device(device)
    model.to(device)
    net = _key_net(model)
    net.requires_grad_(True)
    key = model.stages()["key"]
    full = functools.partial(_seed_logits, model)
    rng = np.random.default_rng(config.seed)
    weight = None if class_weight is None else class_weight.to(device)

    def step(_: int) -> dict[str, Tensor]:
        if temporal_weight > 0:
            b = {k: v.to(device) for k, v in data.consecutive(batch, rng).items()}
            logits, prev_logits = full(key(b["image"])[0]), full(key(b["prev_image"])[0])
            ce = segmentation_loss(logits, b["labels"], weight=weight)
            tc = temporal_consistency_loss(logits, prev_logits, key.preprocess(b["image"]),
                                           key.preprocess(b["prev_image"]), b["flow"], weight=temporal_weight)
            return {"loss": ce + tc, "ce": ce, "temporal": tc}
        images, labels = data.frames(batch, rng, crop, degrade=degrade)
        ce = segmentation_loss(full(key(images.to(device))[0]), labels.to(device), weight=weight)
        return {"loss": ce, "ce": ce}

    trainer = Trainer({"net": net}, config, out_dir, device)
    trainer.resume()
    return trainer.fit(step, progress=progress)


def _seed_logits(model: VideoSegModel, logits: Tensor) -> Tensor:
    """The logits the seed's network outputs (its final upsample, `ModelSpec.logits_upsample`, which the stages
    leave to the labels step): the losses see what they saw when the network upsampled them itself."""
    return upsample_logits(logits, model.spec.logits_upsample)


def _hr_targets(model: VideoSegModel, images: Tensor) -> Tensor:
    """The frozen HR net's feature. Calls the net directly: `model.stages()` would also set every part's
    train/eval mode from the model's and so switch the LR branch being trained to eval."""
    return _hr_outputs(model, images)[1]


def _hr_outputs(model: VideoSegModel, images: Tensor) -> tuple[Tensor, Tensor]:
    """The frozen HR net's (logits, feature) of images."""
    with torch.no_grad():
        return model.hr.forward_key(model.preprocess(images))


def _prepare_lr_training(model: VideoSegModel, device: torch.device) -> None:
    """HR frozen in eval mode; LR trainable with the HR classifier copied in and frozen (AR-Seg's load_decoder)."""
    _require_pair(model)
    model.to(device)
    model.hr.requires_grad_(False).eval()
    model.lr.requires_grad_(True)
    copy_classifier(model)


def train_lr_only(model: VideoSegModel, data: SyntheticClips, config: TrainConfig, out_dir: str | Path, *,
                  batch: int = 8, device: str = "cpu", lr_scale: float | None = None,
                  crop: tuple[int, int] | None = None, class_weight: Tensor | None = None, degrade: float = 0.0,
                  progress: bool = True) -> list[dict]:
    """AR-Seg stage 1: the LR net without CReFF on downscaled frames; CE + FST(LR feature, HR feature)."""
    device = torch.device(device)
    _prepare_lr_training(model, device)
    model.lr.fuse_attention.requires_grad_(False)
    scale = model.spec.lr_scale if lr_scale is None else lr_scale
    rng = np.random.default_rng(config.seed)
    weight = None if class_weight is None else class_weight.to(device)

    def step(_: int) -> dict[str, Tensor]:
        images, labels = data.frames(batch, rng, crop, degrade=degrade)
        images, labels = images.to(device), labels.to(device)
        hr_feat = _hr_targets(model, images)
        x = model.preprocess(images)
        x = F.interpolate(x, size=(int(x.shape[-2] * scale), int(x.shape[-1] * scale)), mode="bilinear",
                          align_corners=True)
        logits, feat = model.lr.forward_key(x)
        ce = segmentation_loss(_seed_logits(model, logits), labels, weight=weight)
        fst = feature_similarity_loss(feat, hr_feat)
        return {"loss": ce + fst, "ce": ce, "fst": fst}

    trainer = Trainer({"lr": model.lr}, config, out_dir, device)
    trainer.resume()
    history = trainer.fit(step, progress=progress)
    model.hr.eval()
    return history


def train_arseg(model: VideoSegModel, data: SyntheticClips, config: TrainConfig, out_dir: str | Path, *,
                batch: int = 8, device: str = "cpu", lr_scale: float | None = None,
                crop: tuple[int, int] | None = None, class_weight: Tensor | None = None, degrade: float = 0.0,
                degrade_share: float = 0.8, lr_degrade: float | None = None, kd_weight: float = 0.0,
                kd_temperature: float = 1.0, progress: bool = True) -> list[dict]:
    """AR-Seg stage 2 (FST): LR + CReFF on keyframe pairs with codec motion; CE + MSE(fused, HR feature), plus
    kd_weight * KL towards the HR logits of the same frame; degrade, degrade_share, lr_degrade:
    `SyntheticClips.pairs`."""
    device = torch.device(device)
    _prepare_lr_training(model, device)
    nonkey = model.stages(lr_scale=lr_scale)["nonkey"]
    dense_mode = dense_mode_for(model.spec.motion_convention)
    rng = np.random.default_rng(config.seed)
    weight = None if class_weight is None else class_weight.to(device)
    probe = torch.zeros(1, 3, *data.size, dtype=torch.uint8)
    grid = tuple(_hr_targets(model, probe.to(device)).shape[-2:])

    def step(_: int) -> dict[str, Tensor]:
        b = {k: v.to(device) for k, v in data.pairs(batch, rng, grid, dense_mode=dense_mode, crop=crop,
                                                    degrade=degrade, degrade_share=degrade_share,
                                                    lr_degrade=lr_degrade).items()}
        key_feat = _hr_targets(model, b["key_image"])
        hr_logits, hr_feat = _hr_outputs(model, b["image"])
        logits, fused = nonkey(b["lr_image"], key_feat, b["motion"])
        logits, hr_logits = _seed_logits(model, logits), _seed_logits(model, hr_logits)
        ce = segmentation_loss(logits, b["labels"], weight=weight)
        fst = feature_similarity_loss(fused, hr_feat)
        losses = {"loss": ce + fst, "ce": ce, "fst": fst}
        if kd_weight > 0:
            kd = distillation_loss(logits, hr_logits, kd_temperature)
            losses.update(loss=losses["loss"] + kd_weight * kd, kd=kd)
        return losses

    trainer = Trainer({"lr": model.lr}, config, out_dir, device)
    trainer.resume()
    history = trainer.fit(step, progress=progress)
    model.hr.eval()
    return history

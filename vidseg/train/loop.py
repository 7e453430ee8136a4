"""A small, resumable training loop shared by every vidseg training recipe.

A recipe supplies the trainable modules and a `step(batch_index) -> {"loss": ..., other named losses}`
function; the loop owns the optimiser, the poly learning-rate schedule, AMP on CUDA, the progress bar, a JSONL
log of losses and resumable checkpoints (`last.pt`, loaded with weights_only=True).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from vidseg.errors import CheckpointError, ConfigError

__all__ = ["TrainConfig", "Trainer", "poly_lr"]


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    lr: float = 0.01
    optimizer: str = "sgd"  # "sgd" (momentum 0.9, as the seeds on Cityscapes) or "adam"
    weight_decay: float = 5e-4
    poly_power: float = 0.9  # lr = base * (1 - step/steps) ** power, per iteration
    warmup_steps: int = 0
    amp: bool = True  # mixed precision on CUDA only
    log_every: int = 10
    checkpoint_every: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.lr <= 0:
            raise ConfigError(f"steps must be >= 1 and lr > 0, got steps={self.steps} lr={self.lr}")
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")


def poly_lr(base: float, step: int, total: int, power: float, warmup: int = 0) -> float:
    """Poly schedule with optional linear warm-up."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    return base * max(0.0, 1.0 - step / total) ** power


class Trainer:
    """Runs `step_fn` for config.steps iterations over the parameters of `modules` that require grad."""

    def __init__(self, modules: dict[str, nn.Module], config: TrainConfig, out_dir: str | Path,
                 device: torch.device | str = "cpu") -> None:
        self.modules = modules
        self.config = config
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(device)
        params = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("nothing to train: every parameter is frozen")
        if config.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        self.use_amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.step = 0
        self.log_path = self.out_dir / "log.jsonl"

    # -- checkpoints ---------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "last.pt"

    def save(self) -> None:
        state = {
            "step": self.step,
            "modules": {name: m.state_dict() for name, m in self.modules.items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": torch.get_rng_state(),
            "config": asdict(self.config),
        }
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.checkpoint_path)  # atomic: an interrupted save never corrupts last.pt

    def resume(self) -> bool:
        """Load last.pt if present; True when training continues from it."""
        if not self.checkpoint_path.exists():
            return False
        try:
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file is the same user-facing problem
            raise CheckpointError(
                f"cannot resume from {self.checkpoint_path}: {err}. Delete it to start over."
            ) from err
        for name, module in self.modules.items():
            module.load_state_dict(state["modules"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        self.step = int(state["step"])
        return True

    # -- loop ----------------------------------------------------------------------------------------------
    def fit(self, step_fn: Callable[[int], dict[str, Tensor]], *, progress: bool = True) -> list[dict]:
        cfg = self.config
        history: list[dict] = []
        for m in self.modules.values():
            m.train()
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not progress, desc="train", dynamic_ncols=True)
        t0 = time.perf_counter()
        try:
            with self.log_path.open("a") as log:
                while self.step < cfg.steps:
                    lr = poly_lr(cfg.lr, self.step, cfg.steps, cfg.poly_power, cfg.warmup_steps)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr * group.get("lr_mult", 1.0)
                    with torch.autocast(self.device.type, enabled=self.use_amp):
                        losses = step_fn(self.step)
                    loss = losses["loss"]
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise FloatingPointError(f"loss became {value} at step {self.step}; lower the lr")
                    self.optimizer.zero_grad(set_to_none=True)
                    self.scaler.scale(loss).backward()
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                    self.step += 1
                    bar.update(1)
                    record = {"step": self.step, "lr": lr, **{k: float(v.detach()) for k, v in losses.items()}}
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        record["elapsed_s"] = round(time.perf_counter() - t0, 2)
                        log.write(json.dumps(record) + "\n")
                        log.flush()
                        bar.set_postfix(loss=f"{record['loss']:.4f}")
                    history.append(record)
                    if self.step % cfg.checkpoint_every == 0:
                        self.save()
        finally:
            bar.close()
            self.save()  # an interrupted run resumes from where it stopped
            for m in self.modules.values():
                m.eval()
        return history

import json

import pytest
import torch
from torch import nn

from vidseg.errors import CheckpointError, ConfigError
from vidseg.train.loop import TrainConfig, Trainer, poly_lr


def _regression_step(model):
    x = torch.linspace(-1, 1, 32).view(-1, 1)
    y = 3 * x + 1

    def step(_: int):
        loss = ((model(x) - y) ** 2).mean()
        return {"loss": loss}

    return step


def test_poly_lr_schedule():
    assert poly_lr(0.1, 0, 100, 0.9) == pytest.approx(0.1)
    assert poly_lr(0.1, 100, 100, 0.9) == 0.0
    assert poly_lr(0.1, 0, 100, 0.9, warmup=10) == pytest.approx(0.01)


def test_trainer_reduces_loss_logs_and_resumes(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    cfg = TrainConfig(steps=60, lr=0.1, optimizer="adam", weight_decay=0.0, log_every=10, checkpoint_every=30)
    hist = Trainer({"m": model}, cfg, tmp_path).fit(_regression_step(model), progress=False)
    assert hist[-1]["loss"] < 0.1 * hist[0]["loss"]
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [10, 20, 30, 40, 50, 60]

    # Resume: a new trainer with more steps continues from step 60 with the trained weights.
    model2 = nn.Linear(1, 1)
    trainer = Trainer({"m": model2}, TrainConfig(steps=70, lr=0.1, optimizer="adam", weight_decay=0.0), tmp_path)
    assert trainer.resume() and trainer.step == 60
    assert torch.equal(model2.weight, model.weight)
    assert len(trainer.fit(_regression_step(model2), progress=False)) == 10


def test_trainer_rejects_corrupt_checkpoint_and_frozen_models(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    model = nn.Linear(1, 1)
    with pytest.raises(CheckpointError, match="cannot resume"):
        Trainer({"m": model}, TrainConfig(steps=1), tmp_path).resume()
    model.requires_grad_(False)
    with pytest.raises(ConfigError, match="frozen"):
        Trainer({"m": model}, TrainConfig(steps=1), tmp_path)

"""vidseg.eval.consistency: agreement of a keyframe method with the per-frame network, without labels.

The model is the engine tests' tiny model (tests/engine/engine_tiny.py); a variant whose non-key stage is the
key stage itself must agree exactly, the real one must not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from torch import Tensor

from vidseg.cli import eval as cli
from vidseg.config import EngineConfig
from vidseg.errors import ConfigError, DatasetError
from vidseg.eval.consistency import AgreementMeter, find_videos, measure_agreement
from vidseg.models.base import Stage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from engine_tiny import TinyModel, encode_clip, make_frames  # noqa: E402


class _KeyAsNonKey(Stage):
    """A non-key stage that ignores the key's features and motion and runs the key stage on the frame."""

    input_names = ("image", "key_features", "motion")
    output_names = ("logits", "features")

    def __init__(self, key: Stage, real: Stage) -> None:
        super().__init__()
        self.key, self.real = key, real

    def forward(self, image: Tensor, key_features: Tensor, motion: Tensor) -> tuple[Tensor, Tensor]:
        return self.key(image)

    def input_shapes(self, height: int, width: int, batch: int = 1):
        return self.real.input_shapes(height, width, batch)


class KeyOnlyModel(TinyModel):
    def stages(self, *, lr_scale: float | None = None):
        out = super().stages(lr_scale=lr_scale)
        out["nonkey"] = _KeyAsNonKey(out["key"], out["nonkey"])
        return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return encode_clip(tmp_path_factory.mktemp("agree") / "clip.mp4", make_frames(14))


def test_meter_counts_non_keyframes_only():
    meter = AgreementMeter()
    a = np.zeros((4, 5), np.uint8)
    b = a.copy()
    assert meter.update(a, b, 0) is None  # a keyframe
    b[0, :] = 1  # 5 of 20 pixels differ
    assert meter.update(a, b, 1, video="v", index=1) == 0.75
    assert meter.update(a, a, 2, video="v", index=2) == 1.0
    assert meter.update(a, b, 1, video="v", index=3) == 0.75
    assert meter.keyframes == 1 and len(meter.frames) == 3
    assert meter.mean() == pytest.approx(2.5 / 3) and meter.min() == 0.75
    assert meter.per_distance() == {1: 0.75, 2: 1.0}
    assert meter.worst(1)[0].index == 1
    summary = meter.summary()
    assert summary["agreement_per_distance"] == {"1": 0.75, "2": 1.0} and summary["nonkey_frames"] == 3
    assert np.isnan(AgreementMeter().mean())
    ignoring = AgreementMeter(ignore_index=255)
    ref = b.copy()
    ref[0, :] = 255  # the differing row is ignored
    assert ignoring.update(a, ref, 1) == 1.0


def test_agreement_is_exactly_one_when_the_non_key_path_is_the_key_path(clip):
    config = EngineConfig(method="arseg", keyframe_interval=5, device="cpu", channels_last=False, drift_limit=None)
    meter, info = measure_agreement(config, [str(clip)], model=KeyOnlyModel())
    # GOP 6 under interval 5: keys at 0, 5, 6, 11, 12 (the I-frames restart the motion chain).
    assert meter.keyframes == 5 and len(meter.frames) == 9
    assert meter.mean() == 1.0 and meter.min() == 1.0
    assert "I-frames" in info["policy"] and info["reference"] == "per-frame"


def test_agreement_is_below_one_for_a_real_non_key_path(clip):
    config = EngineConfig(method="arseg", keyframe_interval=5, device="cpu", channels_last=False, drift_limit=None)
    meter, _ = measure_agreement(config, [str(clip), str(clip)], model=TinyModel(), max_frames=8)
    assert len(meter.frames) == 2 * 5  # frames 1-4 and 7 of each run; 0, 5 and 6 are keys
    assert 0.0 < meter.min() <= meter.mean() < 1.0
    assert set(meter.per_distance()) == {1, 2, 3, 4}


def test_per_frame_method_is_refused(clip):
    with pytest.raises(ConfigError, match="agrees with itself"):
        measure_agreement(EngineConfig(method="per-frame", device="cpu"), [str(clip)], model=TinyModel())


def test_find_videos(tmp_path, clip):
    assert find_videos(clip) == [clip]
    (tmp_path / "b.mkv").write_bytes(b"")
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_videos(tmp_path)] == ["a.mp4", "b.mkv"]
    with pytest.raises(DatasetError, match="no video file"):
        find_videos(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else tmp_path)
    with pytest.raises(DatasetError, match="no such file"):
        find_videos(tmp_path / "nowhere")


def test_cli_consistency_prints_and_writes_json(tmp_path, capsys):
    from vidseg.synthetic import SceneConfig, write_clip

    write_clip(tmp_path / "street.mp4", SceneConfig(height=64, width=128, seed=1), 6, gop=6, ground_truth=False)
    out = tmp_path / "agree.json"
    code = cli.main(["--dataset", "consistency", "--data", str(tmp_path), "--model", "demo", "--device", "cpu",
                     "--keyframe-interval", "3", "--drift-limit", "off", "--json", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "agreement mean" in printed and "agreement d=2" in printed
    record = json.loads(out.read_text())
    results = record["results"]
    assert results["nonkey_frames"] == 4 and results["keyframes"] == 2
    assert 0.0 < results["agreement_min"] <= results["agreement_mean"] <= 1.0
    assert record["config"]["dataset"] == "consistency" and record["config"]["engine"]["keyframe_interval"] == 3


def test_cli_make_renders_heldout_clips_then_evaluates(tmp_path, capsys):
    data = tmp_path / "made"
    code = cli.main(["--dataset", "synthetic", "--make", "2", "--size", "64x128", "--frames", "3", "--data",
                     str(data), "--model", "demo", "--device", "cpu", "--no-progress"])
    assert code == 0
    assert len(list(data.glob("road*_64x128_g12.mp4"))) == 2 and len(list(data.glob("*_gt/meta.json"))) == 2
    captured = capsys.readouterr()
    assert "rendered 2 held-out road clips" in captured.err and "2 items, 6 frames scored" in captured.out
    # A folder that already holds clips is evaluated as it is.
    assert cli.main(["--dataset", "synthetic", "--make", "5", "--data", str(data), "--model", "demo",
                     "--device", "cpu", "--no-progress"]) == 0
    assert "already holds synthetic clips" in capsys.readouterr().err
    assert len(list(data.glob("*.mp4"))) == 2


def test_cli_make_needs_the_synthetic_dataset(tmp_path, capsys):
    assert cli.main(["--dataset", "consistency", "--make", "2", "--data", str(tmp_path)]) == 2
    assert "--make renders synthetic clips" in capsys.readouterr().err

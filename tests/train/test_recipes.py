"""The AR-Seg recipes train what they should: BN statistics of the trained branch move, the frozen parts do not."""

import pytest
import torch

from vidseg.errors import ConfigError
from vidseg.models.demo import build_demo
from vidseg.train.data import SyntheticClips
from vidseg.train.loop import TrainConfig
from vidseg.train.recipes import train_arseg, train_lr_only


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return SyntheticClips(tmp_path_factory.mktemp("clips"), seeds=[0], size=(64, 128), num_frames=13)


def _bn_means(module):
    return torch.cat([m.running_mean.clone() for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)])


@pytest.mark.parametrize("recipe", [train_lr_only, train_arseg])
def test_lr_branch_trains_in_train_mode_and_hr_stays_frozen(recipe, clips, tmp_path):
    model = build_demo(pretrained=False)
    hr_before = {k: v.clone() for k, v in model.hr.state_dict().items()}
    lr_bn_before = _bn_means(model.lr)
    recipe(model, clips, TrainConfig(steps=1, lr=0.01), tmp_path, batch=2, progress=False)
    assert not torch.equal(_bn_means(model.lr), lr_bn_before), "LR BatchNorm statistics did not update"
    assert all(torch.equal(hr_before[k], v) for k, v in model.hr.state_dict().items()), "HR net changed"
    # AR-Seg's load_decoder: the LR classifier is the HR one, frozen.
    assert torch.equal(model.lr.final_conv.weight, model.hr.final_conv.weight)
    assert not model.lr.final_conv.weight.requires_grad


def test_class_weights_favour_rare_classes(clips):
    w = clips.class_weights(19)
    counts = torch.bincount(torch.from_numpy(clips.clips[0].labels).long().ravel(), minlength=19)[:19]
    present = counts > 0
    assert w.shape == (19,) and torch.all(w[~present] == 1.0)
    rare, common = counts.masked_fill(~present, 10**12).argmin(), counts.argmax()
    assert w[rare] > w[common]
    assert 0.25 <= float(w.min()) and float(w.max()) <= 8.0


def test_lr_branch_can_start_from_the_hr_weights():
    from vidseg.train.recipes import init_lr_from_hr

    model = build_demo(pretrained=False)
    creff = {k: v.clone() for k, v in model.lr.fuse_attention.state_dict().items()}
    init_lr_from_hr(model)
    lr = model.lr.state_dict()
    assert all(torch.equal(v, lr[k]) for k, v in model.hr.state_dict().items())
    assert all(torch.equal(v, model.lr.fuse_attention.state_dict()[k]) for k, v in creff.items())


def test_arseg_stage_with_degraded_non_keyframes_and_distillation(clips, tmp_path):
    model = build_demo(pretrained=False)
    history = train_arseg(model, clips, TrainConfig(steps=2, lr=0.01), tmp_path, batch=2, degrade=0.5,
                          kd_weight=1.0, kd_temperature=2.0, progress=False)
    assert all(r["kd"] > 0 and r["loss"] > r["ce"] + r["fst"] for r in history)


def test_pairs_degrade_the_non_keyframe_for_the_lr_branch_only(clips):
    import numpy as np

    grid = (8, 16)
    plain = clips.pairs(4, np.random.default_rng(0), grid)
    assert torch.equal(plain["lr_image"], plain["image"])
    b = clips.pairs(8, np.random.default_rng(0), grid, degrade=0.5, degrade_share=1.0)
    assert b["lr_image"].shape == b["image"].shape and b["lr_image"].dtype == torch.uint8
    differs = [(b["lr_image"][i].float() - b["image"][i].float()).abs().mean() > 1.0 for i in range(8)]
    assert sum(differs) >= 6


def test_clips_of_two_scene_kinds_mix_into_one_set_of_the_same_shape(clips, tmp_path):
    road = SyntheticClips(tmp_path, seeds=[0], size=(64, 128), num_frames=13, scenes="road")
    road.extend(clips)
    assert len(road.clips) == 2 and road.clips[1] is clips.clips[0]
    other = SyntheticClips(tmp_path, seeds=[0], size=(64, 128), num_frames=13, gop=6)
    with pytest.raises(ConfigError, match="cannot mix"):
        road.extend(other)

"""The model registry: names, specs beside builders, unknown names."""

from __future__ import annotations

import pytest

import vidseg
from vidseg.errors import ConfigError
from vidseg.models import build, list_models
from vidseg.models.base import VideoSegModel

ARSEG_ETC = [
    "arseg-psp18-camvid",
    "arseg-bise18-camvid",
    "arseg-psp18-cityscapes",
    "arseg-bise18-cityscapes",
    "psp18-camvid",
    "bise18-camvid",
    "psp18-cityscapes",
    "bise18-cityscapes",
    "etc-psp18-cityscapes",
]


def test_list_models_names_every_seed_model():
    names = list_models()
    assert set(ARSEG_ETC) <= set(names)
    assert names == sorted(names)
    assert vidseg.list_models() == names


@pytest.mark.parametrize("name", ARSEG_ETC)
def test_models_build_in_eval_mode_with_their_spec(name):
    model = build(name)
    assert isinstance(model, VideoSegModel) and not model.training
    spec = model.spec
    assert spec.name == name and spec.seed and spec.source
    assert spec.palette == ("camvid12" if "camvid" in name else "cityscapes19")
    assert spec.num_classes == (12 if "camvid" in name else 19)
    assert spec.input_size == ((720, 960) if "camvid" in name else (1024, 2048))
    stages = model.stages()
    assert set(stages) == ({"key", "nonkey"} if name.startswith("arseg-") else {"key"})
    assert set(spec.methods) == ({"per-frame", "arseg"} if name.startswith("arseg-") else {"per-frame"})
    assert all(not stage.training for stage in stages.values())


def test_unknown_model_suggests_close_names():
    with pytest.raises(ConfigError, match=r"unknown model 'arseg-psp18-camvd'\. Did you mean arseg-psp18-camvid"):
        build("arseg-psp18-camvd")
    with pytest.raises(ConfigError, match="unknown model 'zzz'"):
        vidseg.build_model("zzz")

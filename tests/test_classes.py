"""vidseg.classes: one label-set table read by the sinks, the evaluation, the synthetic scenes and model specs."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from vidseg.classes import (
    CAMVID11,
    CAMVID12,
    CITYSCAPES,
    CITYSCAPES_LABEL_TO_TRAIN,
    IGNORE_INDEX,
    LABEL_SETS,
    label_set,
)
from vidseg.errors import InputError


def test_every_name_finds_one_record():
    assert label_set("cityscapes19") is label_set("cityscapes") is CITYSCAPES
    assert label_set("camvid12") is label_set("camvid") is CAMVID12 and label_set("camvid11") is CAMVID11
    assert set(LABEL_SETS) == {"cityscapes19", "camvid11", "camvid12"}
    with pytest.raises(InputError, match="ade20k.*cityscapes19"):
        label_set("ade20k")


def test_records_are_consistent_and_read_only():
    for ls in LABEL_SETS.values():
        assert ls.colours.shape == (ls.num_classes, 3) and ls.colours.dtype == np.uint8
        assert not ls.colours.flags.writeable and ls.ignore_index == IGNORE_INDEX == 255
        assert len(set(ls.classes)) == ls.num_classes
        legend = ls.legend()
        assert [name for name, _ in legend] == list(ls.classes)
        assert legend[0][1] == tuple(int(c) for c in ls.colours[0])
    assert CAMVID11.classes == CAMVID12.classes[:11] and np.array_equal(CAMVID11.colours, CAMVID12.colours[:11])
    assert CITYSCAPES.legend()[13] == ("car", (0, 0, 142))


def test_cityscapes_label_ids_invert():
    train = np.arange(19, dtype=np.uint8)
    assert np.array_equal(CITYSCAPES_LABEL_TO_TRAIN[CITYSCAPES.train_to_label[train]], train)
    unused = np.setdiff1d(np.arange(256), CITYSCAPES.train_to_label[:19])
    assert (CITYSCAPES_LABEL_TO_TRAIN[unused] == IGNORE_INDEX).all()
    with pytest.raises(InputError, match="train ids"):
        CAMVID12.label_to_train()


def test_every_model_spec_names_a_label_set_of_its_class_count():
    from vidseg.models.base import ModelSpec
    from vidseg.models.registry import list_models

    list_models()  # imports every model module
    specs = []
    for name, module in list(sys.modules.items()):
        if name.startswith("vidseg.models."):
            for value in vars(module).values():
                values = value.values() if isinstance(value, dict) else [value]
                specs += [v for v in values if isinstance(v, ModelSpec)]
    assert len(specs) >= 6
    for spec in specs:
        assert spec.label_set().num_classes == spec.num_classes, spec.name


def test_sinks_and_synthetic_read_the_table():
    from vidseg.synthetic import CLASS_NAMES
    from vidseg.video.sinks import PALETTES, get_palette

    assert CLASS_NAMES == CITYSCAPES.classes
    for ls in LABEL_SETS.values():
        for name in ls.names:
            assert get_palette(name) is PALETTES[name] is ls.colours

"""The label sets vidseg knows: class names, colours, ignore index and label-id tables, one record per dataset.

    label_set("cityscapes19")            # or "cityscapes": the same record
    label_set(spec.palette).legend()     # [(name, (r, g, b)), ...] for a model's classes

`ModelSpec.palette` names a label set ("cityscapes19", "camvid11", "camvid12"); the sinks, the evaluation and
the synthetic scenes read the same records, so a colour or a class name is written once. This module sits low
in the tree (numpy and vidseg.errors only), so video/, models/, eval/ and cli/ may all import it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidseg.errors import InputError

__all__ = [
    "LabelSet",
    "LABEL_SETS",
    "label_set",
    "IGNORE_INDEX",
    "CITYSCAPES",
    "CAMVID11",
    "CAMVID12",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_PALETTE",
    "CITYSCAPES_TRAINID_TO_LABELID",
    "CITYSCAPES_LABEL_TO_TRAIN",
    "CAMVID11_CLASSES",
    "CAMVID11_PALETTE",
    "CAMVID12_CLASSES",
    "CAMVID12_PALETTE",
]

IGNORE_INDEX = 255  # "no class" in every label map vidseg reads or writes


@dataclass(frozen=True, eq=False)
class LabelSet:
    """One dataset's classes: ids 0..K-1 in the order a model's logits use them.

    name: the canonical name (the `ModelSpec.palette` value); aliases: other names it is found by.
    classes: K class names; colours: uint8 [K, 3] RGB (read-only). train_to_label: for datasets whose label files
    use other ids than the training ids (Cityscapes labelIds), a 256-entry uint8 table train id -> label id
    (ignore and unused ids -> 0, "unlabeled"); None where the files hold the training ids.
    """

    name: str
    aliases: tuple[str, ...]
    classes: tuple[str, ...]
    colours: np.ndarray
    train_to_label: np.ndarray | None = None
    ignore_index: int = IGNORE_INDEX

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name this set is found by: the canonical one first."""
        return (self.name, *self.aliases)

    def label_to_train(self) -> np.ndarray:
        """The inverse table: 256-entry uint8 label id -> train id, every id without a class -> ignore_index."""
        if self.train_to_label is None:
            raise InputError(f"label set {self.name!r} has no separate label ids; its label files hold train ids")
        table = np.full(256, self.ignore_index, np.uint8)
        table[self.train_to_label[: self.num_classes]] = np.arange(self.num_classes, dtype=np.uint8)
        table.setflags(write=False)
        return table

    def legend(self) -> list[tuple[str, tuple[int, int, int]]]:
        """(class name, RGB colour) per class id, for drawing a colour legend."""
        return [(n, (int(r), int(g), int(b))) for n, (r, g, b) in zip(self.classes, self.colours, strict=True)]


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


# Cityscapes trainIds 0..18 (cityscapesScripts labels.py): name, colour, labelId.
_CITYSCAPES = (
    ("road", (128, 64, 128), 7),
    ("sidewalk", (244, 35, 232), 8),
    ("building", (70, 70, 70), 11),
    ("wall", (102, 102, 156), 12),
    ("fence", (190, 153, 153), 13),
    ("pole", (153, 153, 153), 17),
    ("traffic light", (250, 170, 30), 19),
    ("traffic sign", (220, 220, 0), 20),
    ("vegetation", (107, 142, 35), 21),
    ("terrain", (152, 251, 152), 22),
    ("sky", (70, 130, 180), 23),
    ("person", (220, 20, 60), 24),
    ("rider", (255, 0, 0), 25),
    ("car", (0, 0, 142), 26),
    ("truck", (0, 0, 70), 27),
    ("bus", (0, 60, 100), 28),
    ("train", (0, 80, 100), 31),
    ("motorcycle", (0, 0, 230), 32),
    ("bicycle", (119, 11, 32), 33),
)
_train_to_label = np.zeros(256, np.uint8)
_train_to_label[: len(_CITYSCAPES)] = [label_id for _, _, label_id in _CITYSCAPES]

CITYSCAPES = LabelSet(
    name="cityscapes19",
    aliases=("cityscapes",),
    classes=tuple(name for name, _, _ in _CITYSCAPES),
    colours=_frozen(np.array([colour for _, colour, _ in _CITYSCAPES], np.uint8)),
    train_to_label=_frozen(_train_to_label),
)

# CamVid, 11 classes (SegNet's split) and AR-Seg's 12 = the 11 + void (class 11, which counts in AR-Seg's mIoU),
# colours of the CamVid label images in AR-Seg's pre-process/camvid-pre-process.py order.
_CAMVID = (
    ("sky", (128, 128, 128)),
    ("building", (128, 0, 0)),
    ("column_pole", (192, 192, 128)),
    ("road", (128, 64, 128)),
    ("sidewalk", (0, 0, 192)),
    ("tree", (128, 128, 0)),
    ("sign_symbol", (192, 128, 128)),
    ("fence", (64, 64, 128)),
    ("car", (64, 0, 128)),
    ("pedestrian", (64, 64, 0)),
    ("bicyclist", (0, 128, 192)),
    ("void", (0, 0, 0)),
)
CAMVID12 = LabelSet(
    name="camvid12",
    aliases=("camvid",),
    classes=tuple(name for name, _ in _CAMVID),
    colours=_frozen(np.array([colour for _, colour in _CAMVID], np.uint8)),
)
CAMVID11 = LabelSet(name="camvid11", aliases=(), classes=CAMVID12.classes[:11], colours=CAMVID12.colours[:11])

LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (CITYSCAPES, CAMVID11, CAMVID12)}
_BY_NAME = {name: s for s in LABEL_SETS.values() for name in s.names}


def label_set(name: str) -> LabelSet:
    """The label set called `name` (its canonical name or an alias); InputError naming the known ones if none is."""
    found = _BY_NAME.get(name) if isinstance(name, str) else None
    if found is None:
        raise InputError(f"unknown label set / palette {name!r}; known: {', '.join(_BY_NAME)}")
    return found


# Flat names for the tables most code reads (the same arrays as the records').
CITYSCAPES_CLASSES = CITYSCAPES.classes
CITYSCAPES_PALETTE = CITYSCAPES.colours
CITYSCAPES_TRAINID_TO_LABELID = CITYSCAPES.train_to_label
CITYSCAPES_LABEL_TO_TRAIN = CITYSCAPES.label_to_train()
CAMVID11_CLASSES, CAMVID11_PALETTE = CAMVID11.classes, CAMVID11.colours
CAMVID12_CLASSES, CAMVID12_PALETTE = CAMVID12.classes, CAMVID12.colours

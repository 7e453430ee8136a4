"""Evaluation datasets: Cityscapes sequences, CamVid in AR-Seg's processed layout, vidseg's synthetic clips.

Each reader checks its layout when constructed and raises `DatasetError` with the layout it expected and the
first paths that were missing. Frames load as uint8 RGB [H, W, 3] numpy arrays and labels as uint8 train ids
[H, W] (255 = ignore), read with Pillow only when an item is asked for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vidseg.classes import CAMVID12, CITYSCAPES_CLASSES, CITYSCAPES_LABEL_TO_TRAIN
from vidseg.errors import DatasetError
from vidseg.synthetic.truth import FORMAT as GT_FORMAT
from vidseg.synthetic.truth import ground_truth_dir, load_ground_truth

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABEL_TO_TRAIN",
    "CAMVID_CLASSES",
    "Clip",
    "Sample",
    "CityscapesSequence",
    "CityscapesImages",
    "CamVidSample",
    "CamVidARSeg",
    "SYNTHETIC_LAYOUT",
    "SyntheticClip",
    "read_mv_bin",
    "load_rgb",
    "load_label",
]

# Cityscapes labelId -> trainId (every labelId without a train id, incl. unlabeled, -> 255) and AR-Seg's CamVid
# classes (camvid-pre-process.py colour order; void is class 11 and counts in the mIoU, arseg.md §3.4) come from
# the one class table, vidseg.classes.
CAMVID_CLASSES = CAMVID12.classes


def load_rgb(path: Path) -> np.ndarray:
    """uint8 RGB [H, W, 3]."""
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))
    except (OSError, ValueError) as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err


def load_label(path: Path, lut: np.ndarray | None = None) -> np.ndarray:
    """uint8 [H, W] label ids from a single-channel PNG, mapped through `lut` when given."""
    try:
        with Image.open(path) as img:
            label = np.array(img)
    except (OSError, ValueError) as err:
        raise DatasetError(f"cannot read label map {path}: {err}") from err
    if label.ndim != 2:
        raise DatasetError(f"label map {path} has shape {label.shape}; expected one channel of class ids")
    return lut[label] if lut is not None else label.astype(np.uint8, copy=False)


def _missing(layout: str, root: Path, missing: Sequence[Path | str], total: int | None = None) -> DatasetError:
    shown = "\n  ".join(str(p) for p in list(missing)[:5])
    count = f"{len(missing)} of {total}" if total is not None else f"{len(missing)}"
    more = "" if len(missing) <= 5 else f"\n  ... and {len(missing) - 5} more"
    return DatasetError(
        f"{root} is not in the expected layout; {count} expected path(s) missing:\n  {shown}{more}\n"
        f"expected layout:\n{layout}"
    )


@dataclass(frozen=True)
class Clip:
    """Frames from a keyframe to a labelled frame: frames[0] is the keyframe, frames[-1] carries `label`."""

    name: str
    distance: int  # keyframe distance of the labelled frame (len(frames) - 1)
    frames: tuple[np.ndarray, ...]  # uint8 RGB [H, W, 3]
    label: np.ndarray  # uint8 train ids [H, W], 255 = ignore
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class Sample:
    name: str
    image: np.ndarray  # uint8 RGB [H, W, 3]
    label: np.ndarray | None  # uint8 train ids [H, W], 255 = ignore; None when not labelled
    path: Path


# -- Cityscapes ---------------------------------------------------------------------------------------------

CITYSCAPES_SEQUENCE_LAYOUT = """\
  <root>/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png   30-frame snippets
  <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png             annotated frame (19th)"""

CITYSCAPES_IMAGES_LAYOUT = """\
  <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
  <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png   (when labels are read)"""

_GT_SUFFIX = "_gtFine_labelIds.png"
_IMG_SUFFIX = "_leftImg8bit.png"


def _split_cs_name(stem: str, path: Path) -> tuple[str, str, int]:
    parts = stem.rsplit("_", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise DatasetError(f"{path}: not a Cityscapes name <city>_<seq>_<frame>{_GT_SUFFIX}")
    return parts[0], parts[1], int(parts[2])


class CityscapesSequence:
    """Cityscapes annotated frames with their preceding sequence frames (GSVNet / AR-Seg protocol).

    Item i is the annotated frame gt (the 20th of its 30-frame snippet) of the i-th `gtFine` label map (sorted
    by name). `clip(i, d)` gives frames gt-d .. gt from `leftImg8bit_sequence`, frames[0] being the keyframe,
    and the label of frame gt mapped from labelIds to the 19 train ids (255 = ignore). The constructor checks
    that every frame down to distance `max_distance` exists. `snippet(i)` gives the whole 30-frame snippet
    (gt-19 .. gt+10) that ETC's temporal consistency is measured on.
    """

    layout = CITYSCAPES_SEQUENCE_LAYOUT

    def __init__(self, root: str | Path, split: str = "val", max_distance: int = 11):
        self.root = Path(root)
        self.split = split
        self.max_distance = int(max_distance)
        gt_dir = self.root / "gtFine" / split
        self._seq_dir = self.root / "leftImg8bit_sequence" / split
        missing = [p for p in (gt_dir, self._seq_dir) if not p.is_dir()]
        if missing:
            raise _missing(self.layout, self.root, missing)
        self._gt = sorted(gt_dir.glob(f"*/*{_GT_SUFFIX}"))
        if not self._gt:
            raise _missing(self.layout, self.root, [gt_dir / "<city>" / f"*{_GT_SUFFIX}"])
        self._keys = [_split_cs_name(p.name[: -len(_GT_SUFFIX)], p) for p in self._gt]
        missing = [self.frame_path(i, -d) for i in range(len(self._gt)) for d in range(self.max_distance + 1)]
        missing = [p for p in missing if not p.is_file()]
        if missing:
            raise _missing(self.layout, self.root, missing, len(self._gt) * (self.max_distance + 1))

    def __len__(self) -> int:
        return len(self._gt)

    @property
    def names(self) -> list[str]:
        return [f"{c}_{s}_{f:06d}" for c, s, f in self._keys]

    def frame_path(self, index: int, offset: int) -> Path:
        """Path of the sequence frame `offset` frames after (negative: before) annotated frame `index`."""
        city, seq, frame = self._keys[index]
        return self._seq_dir / city / f"{city}_{seq}_{frame + offset:06d}{_IMG_SUFFIX}"

    def label(self, index: int) -> np.ndarray:
        return load_label(self._gt[index], CITYSCAPES_LABEL_TO_TRAIN)

    def clip(self, index: int, distance: int) -> Clip:
        if not 0 <= distance <= self.max_distance:
            raise DatasetError(f"keyframe distance {distance} outside 0..{self.max_distance} of this dataset")
        paths = tuple(self.frame_path(index, -d) for d in range(distance, -1, -1))
        return Clip(self.names[index], distance, tuple(load_rgb(p) for p in paths), self.label(index), paths)

    def clips(self, distance: int) -> Iterator[Clip]:
        for i in range(len(self)):
            yield self.clip(i, distance)

    def snippet(self, index: int, before: int = 19, after: int = 10) -> tuple[list[np.ndarray], list[Path]]:
        """Frames gt-before .. gt+after (ETC's 30-frame clip) and their paths."""
        paths = [self.frame_path(index, k) for k in range(-before, after + 1)]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise _missing(self.layout, self.root, missing, len(paths))
        return [load_rgb(p) for p in paths], paths


class CityscapesImages:
    """Cityscapes `leftImg8bit` images (no sequence), with their train-id labels from `gtFine` if `labels`."""

    layout = CITYSCAPES_IMAGES_LAYOUT

    def __init__(self, root: str | Path, split: str = "val", labels: bool = True):
        self.root = Path(root)
        self.split = split
        img_dir = self.root / "leftImg8bit" / split
        if not img_dir.is_dir():
            raise _missing(self.layout, self.root, [img_dir])
        self._images = sorted(img_dir.glob(f"*/*{_IMG_SUFFIX}"))
        if not self._images:
            raise _missing(self.layout, self.root, [img_dir / "<city>" / f"*{_IMG_SUFFIX}"])
        self._labels: list[Path] | None = None
        if labels:
            gt_dir = self.root / "gtFine" / split
            self._labels = [gt_dir / p.parent.name / (p.name[: -len(_IMG_SUFFIX)] + _GT_SUFFIX) for p in self._images]
            missing = [p for p in self._labels if not p.is_file()]
            if missing:
                raise _missing(self.layout, self.root, missing, len(self._labels))

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> Sample:
        path = self._images[index]
        label = None if self._labels is None else load_label(self._labels[index], CITYSCAPES_LABEL_TO_TRAIN)
        return Sample(path.name[: -len(_IMG_SUFFIX)], load_rgb(path), label, path)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]


# -- CamVid, AR-Seg's processed layout ----------------------------------------------------------------------

CAMVID_ARSEG_LAYOUT = """\
  <root>/<br>-GOP<g>/decoded_GOP<g>_dist_<d>/<split>/<name>.png                      decoded frame at GOP position d
  <root>/<br>-GOP<g>/decoded_GOP<g>_dist_<d>/<split>_labels_with_ignored/<name>.png  uint8 ids 0..11, 255 ignore
  <root>/<br>-GOP<g>/MVmap_GOP<g>_dist_<d>/<SEQ>/<name>.bin                          int16 [H,W,2], quarter-pel, d >= 1
  <root>/<br>-GOP<g>/frames/<SEQ>/<SEQ>_<raw frame:06d>.png                          decoded I-frame (keyframe), d >= 1
  (<root> = AR-Seg's camvid-sequence; <name> e.g. 0001TP_006690, 0006R0_f00930; <br> = 3M, <g> = 12)"""

# Sequence -> (first dataset frame index, its frame number in the raw video), AR-Seg camvid.py scene_length_info.
CAMVID_SEQUENCES = {"0001TP": (6690, 31), "0006R0": (930, 932), "0016E5": (390, 392), "Seq05VD": (30, 32)}

_CAMVID_NAME = re.compile(r"^(?P<seq>[^_]+)_f?(?P<idx>\d+)$")


def read_mv_bin(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """AR-Seg's accumulated motion (.bin, int16 [H, W, 2] quarter-pel) as float32 pixels [H, W, 2].

    Vector (dx, dy) at pixel p of the current frame points to where p was in the keyframe, p + (dx, dy): a
    backward map in pixels, vidseg's motion convention. Displacements are whole pixels after AR-Seg's chaining.
    """
    path = Path(path)
    h, w = size
    try:
        raw = np.fromfile(path, dtype="<i2")
    except OSError as err:
        raise DatasetError(f"cannot read motion file {path}: {err}") from err
    if raw.size != h * w * 2:
        raise DatasetError(
            f"motion file {path} holds {raw.size * 2} bytes; a {h}x{w} int16 [H,W,2] map needs {h * w * 4}"
        )
    return raw.reshape(h, w, 2).astype(np.float32) / 4.0


@dataclass(frozen=True)
class CamVidSample:
    """One annotated CamVid frame encoded at GOP position `distance` (AR-Seg's mIoU_d protocol)."""

    name: str
    distance: int
    frame: np.ndarray  # decoded frame at GOP position d, uint8 RGB [H, W, 3]
    label: np.ndarray  # uint8 ids 0..11 (11 = void, counted), 255 = ignore
    keyframe: np.ndarray  # decoded I-frame of the GOP (the frame itself at d = 0)
    motion: np.ndarray | None  # float32 [H, W, 2] pixels to the keyframe; None at d = 0


class CamVidARSeg:
    """CamVid test frames in AR-Seg's compressed layout (arseg.md §3.4): one fresh GOP per distance d.

    Names come from `decoded_GOP<g>_dist_<first distance>/<split>`; every requested distance must hold the same
    names (AR-Seg pairs images and labels by sorted order; here they are paired by name).
    """

    layout = CAMVID_ARSEG_LAYOUT

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        distances: Sequence[int] | None = None,
        bitrate: str = "3M",
        gop: int = 12,
    ):
        self.root = Path(root)
        self.split = split
        self.gop = gop
        self.distances = list(range(gop)) if distances is None else sorted(set(distances))
        bad = [d for d in self.distances if not 0 <= d < gop]
        if bad:
            raise DatasetError(f"keyframe distances {bad} outside 0..{gop - 1} for GOP {gop}")
        self._base = self.root / f"{bitrate}-GOP{gop}"
        first = self._decoded_dir(self.distances[0])
        if not first.is_dir():
            raise _missing(self.layout, self.root, [first])
        self.names = sorted(p.stem for p in first.glob("*.png"))
        if not self.names:
            raise _missing(self.layout, self.root, [first / "<name>.png"])
        self._raw = {}
        for name in self.names:
            m = _CAMVID_NAME.match(name)
            if m is None or m["seq"] not in CAMVID_SEQUENCES:
                raise DatasetError(
                    f"{first / name}.png: not a CamVid test name <SEQ>_[f]<index> with SEQ in "
                    f"{sorted(CAMVID_SEQUENCES)}"
                )
            start, raw_start = CAMVID_SEQUENCES[m["seq"]]
            self._raw[name] = (m["seq"], int(m["idx"]) - start + raw_start)
        expected = [p for d in self.distances for name in self.names for p in self._paths(name, d)]
        missing = [p for p in expected if not p.is_file()]
        if missing:
            raise _missing(self.layout, self.root, missing, len(expected))

    def _decoded_dir(self, d: int) -> Path:
        return self._base / f"decoded_GOP{self.gop}_dist_{d}" / self.split

    def _paths(self, name: str, d: int) -> list[Path]:
        """frame, label, then (d >= 1) motion and I-frame."""
        dist = self._base / f"decoded_GOP{self.gop}_dist_{d}"
        paths = [dist / self.split / f"{name}.png", dist / f"{self.split}_labels_with_ignored" / f"{name}.png"]
        if d:
            seq, raw = self._raw[name]
            paths.append(self._base / f"MVmap_GOP{self.gop}_dist_{d}" / seq / f"{name}.bin")
            paths.append(self._base / "frames" / seq / f"{seq}_{raw - d:06d}.png")
        return paths

    def __len__(self) -> int:
        return len(self.names)

    def sample(self, index: int, distance: int) -> CamVidSample:
        if distance not in self.distances:
            raise DatasetError(f"keyframe distance {distance} not loaded; this reader has {self.distances}")
        name = self.names[index]
        paths = self._paths(name, distance)
        frame = load_rgb(paths[0])
        label = load_label(paths[1])
        if label.shape != frame.shape[:2]:
            raise DatasetError(f"{paths[1]}: label {label.shape} does not match frame {frame.shape[:2]}")
        if not distance:
            return CamVidSample(name, 0, frame, label, frame, None)
        motion = read_mv_bin(paths[2], frame.shape[:2])
        return CamVidSample(name, distance, frame, label, load_rgb(paths[3]), motion)

    def samples(self, distance: int) -> Iterator[CamVidSample]:
        for i in range(len(self)):
            yield self.sample(i, distance)


# -- vidseg's synthetic clips -------------------------------------------------------------------------------

SYNTHETIC_LAYOUT = """\
  <dir>/<stem>.<ext>                  the encoded clip (vidseg.synthetic.write_clip)
  <dir>/<stem>_gt/meta.json           format "vidseg-synthetic-gt", num_frames, gop, classes, conventions
  <dir>/<stem>_gt/labels/%06d.png     uint8 Cityscapes trainIds per frame
  <dir>/<stem>_gt/flow/%06d.npz       flow_prev, occ_prev (to frame t-1), flow_key, occ_key, key_index"""


class SyntheticClip:
    """A clip written by `vidseg.synthetic.write_clip`, given its video path or its `<stem>_gt` folder.

    Every frame is labelled (19 Cityscapes train ids), so every frame scores: its keyframe distance is
    t - key_index with key_index = t // gop * gop, the clip's I-frames. The flow ground truth is backward
    (vidseg's motion convention): `pair_flow(t)` is the flow and occlusion of frame t+1 into frame t, which
    `TemporalConsistency(direction="backward")` takes for the pair (t, t+1). Decode the frames with
    `vidseg.open_video(clip.video)`.
    """

    layout = SYNTHETIC_LAYOUT

    def __init__(self, path: str | Path):
        p = Path(path)
        self.gt_dir = ground_truth_dir(p)
        meta_path = self.gt_dir / "meta.json"
        if not meta_path.is_file():
            raise _missing(self.layout, p, [meta_path])
        try:
            self.meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as err:
            raise DatasetError(f"cannot read {meta_path}: {err}") from err
        if self.meta.get("format") != GT_FORMAT:
            raise DatasetError(f"{meta_path} is not vidseg synthetic ground truth (format {self.meta.get('format')!r})")
        try:
            self.num_frames = int(self.meta["num_frames"])
            self.gop = int(self.meta["gop"])
            self.classes = tuple(self.meta["classes"])
            self.ignore_index = int(self.meta.get("ignore_index", 255))
            self.video = self.gt_dir.parent / self.meta["video"]
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"{meta_path} lacks a valid {err} entry; rewrite the clip with write_clip") from err
        expected = [self.video] + [
            self.gt_dir / sub / f"{t:06d}.{ext}"
            for t in range(self.num_frames)
            for sub, ext in (("labels", "png"), ("flow", "npz"))
        ]
        missing = [q for q in expected if not q.is_file()]
        if missing:
            raise _missing(self.layout, self.gt_dir.parent, missing, len(expected))

    def __len__(self) -> int:
        return self.num_frames

    def label(self, index: int) -> np.ndarray:
        return load_label(self.gt_dir / "labels" / f"{index:06d}.png")

    def key_distance(self, index: int) -> int:
        return index % self.gop

    def ground_truth(self, index: int) -> dict:
        """Labels, flow_prev / occ_prev, flow_key / occ_key and key_index of one frame (load_ground_truth)."""
        return load_ground_truth(self.gt_dir, index)

    def pair_flow(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(flow [H,W,2], occlusion [H,W]) of frame index+1 into frame index: the pair (index, index+1)."""
        if not 0 <= index < self.num_frames - 1:
            raise DatasetError(f"pair ({index}, {index + 1}) is not in a clip of {self.num_frames} frames")
        gt = self.ground_truth(index + 1)
        return gt["flow_prev"], gt["occ_prev"]

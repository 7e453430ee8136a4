"""Accuracy evaluation of an engine on a dataset: mIoU per keyframe distance, and temporal consistency.

    result = evaluate(EngineConfig(model="arseg-bise18-cityscapes", method="arseg"), "cityscapes", "data/cs",
                      max_distance=11)
    table = result.table()            # rows for a rich table; table.data is the same as JSON-able numbers
    result.to_dict()                  # results + protocol notes (the CLI adds config and environment)

Protocols (reference digests: arseg.md §3.1 and §5, gsvnet.md §9, etc.md §4):
  cityscapes  For each annotated frame gt (frame 19 of its 30-frame snippet) and each d in 0..D, the engine runs
              on frames gt-d .. gt with the first one as the keyframe (interval policy, interval D+1) and the
              last frame's labels are scored against the gtFine trainIds at the label resolution. The sequence
              PNGs carry no codec motion, so for the arseg method the d+1 frames are re-encoded with H.264
              (PyAV libx264, one I-frame then P-frames, no B-frames, one reference frame) into a temporary file
              and decoded with their motion vectors, as AR-Seg re-encodes each clip (arseg.md §3.1; AR-Seg used
              x265, whose motion FFmpeg does not export). The engine then sees the decoded frames. Other methods
              see the PNGs. A per-frame method's answer for gt does not depend on earlier frames: it is computed
              once per annotated frame and counted at every d.
  camvid      AR-Seg's processed layout: for d >= 1 the decoded I-frame runs as the keyframe, then the decoded
              frame at GOP position d with the stored motion (already chained to the key) as a per-pixel
              MotionField; at d = 0 the decoded frame runs as a keyframe (AR-Seg's HR model at d = 0).
  synthetic   Clips written by `vidseg.synthetic.write_clip`: the engine runs over each whole clip
              (keyframes: the GOP's I-frames, or the config's interval); every frame is scored at its keyframe
              distance (per-frame methods: at its position in the GOP, as AR-Seg's HR rows). TC uses the ground-
              truth flow, which is each frame's backward flow to the previous frame, so it is measured with
              `TemporalConsistency(direction="backward")` (named tc_bwd), plus its occlusion-masked variant.

Scores: `KeyDistanceMIoU` gives mIoU_d, their plain mean (AR-Seg), the pooled "avg" and the "min" (GSVNet).
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidseg.config import EngineConfig
from vidseg.errors import ConfigError, DatasetError, InputError
from vidseg.eval.datasets import (
    CAMVID_CLASSES,
    CITYSCAPES_CLASSES,
    CamVidARSeg,
    CityscapesSequence,
)
from vidseg.eval.metrics import MIOU_DEFINITIONS, KeyDistanceMIoU
from vidseg.eval.tables import Table, format_table
from vidseg.eval.temporal import TemporalConsistency
from vidseg.video.encode import VideoWriter, fixed_gop_options

__all__ = ["DATASETS", "EvalResult", "evaluate", "encode_h264", "find_synthetic_clips", "CITYSCAPES_ENCODE"]

DATASETS = ("cityscapes", "camvid", "synthetic")
_DEFAULT_SPLIT = {"cityscapes": "val", "camvid": "test", "synthetic": None}
_DEFAULT_MAX_DISTANCE = 11  # AR-Seg's and GSVNet's GOP of 12: d = 0..11

# How Cityscapes clips are re-encoded for codec motion (x264 settings; bitrate scaled from AR-Seg's 5 Mb/s at
# 2048x1024 by the frame area). One reference frame keeps every P-frame's vectors pointing at the previous frame.
CITYSCAPES_ENCODE = {
    "codec": "libx264",
    "fps": 17,
    "bitrate_at_2048x1024": 5_000_000,
    "keyint": 250,
    "bframes": 0,
    "refs": 1,
}

Progress = Callable[[int, int], Any]  # (items done, items in all)


@dataclass
class EvalResult:
    """What one evaluation measured, and how.

    key_distance: mIoU per keyframe distance. tc: temporal-consistency metrics (synthetic with tc=True).
    items: annotated frames (cityscapes), test frames (camvid) or clips (synthetic) evaluated; frames: frames
    scored. notes: protocol details and every fallback the engine took (it warns; they are collected here).
    """

    dataset: str
    data: str
    split: str | None
    method: str
    class_names: tuple[str, ...]
    key_distance: KeyDistanceMIoU
    tc: list[TemporalConsistency] = field(default_factory=list)
    items: int = 0
    frames: int = 0
    unscored_frames: int = 0  # synthetic: frames farther from their key than max_distance
    motion_source: str = "none"
    keyframes: str = ""
    absent: str = "skip"
    notes: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)

    def table(self, per_class: bool = False) -> Table:
        title = f"vidseg-eval: {self.dataset} ({self.method}, {self.items} items, {self.frames} frames scored)"
        return format_table(
            key_distance=self.key_distance,
            tc=self.tc,
            class_names=self.class_names,
            absent=self.absent,
            per_class=per_class,
            title=title,
        )

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.table().data)
        data.update(
            dataset=self.dataset,
            data=self.data,
            split=self.split,
            method=self.method,
            keyframes=self.keyframes,
            motion_source=self.motion_source,
            items=self.items,
            frames=self.frames,
            unscored_frames=self.unscored_frames,
            classes=list(self.class_names),
            per_class_iou_pooled=self.key_distance.pooled().to_dict(self.class_names, self.absent)["iou"],
            notes=list(self.notes),
            fallbacks=list(self.fallbacks),
        )
        return data


def evaluate(
    config: EngineConfig,
    dataset: str,
    data: str | Path,
    *,
    model: Any = None,
    max_distance: int | None = None,
    limit: int | None = None,
    split: str | None = None,
    tc: bool = False,
    absent: str = "skip",
    progress: Progress | None = None,
) -> EvalResult:
    """Evaluate `config` (or an already-built `model` run as `config` says) on a dataset (module docstring).

    dataset: "cityscapes", "camvid" or "synthetic"; data: its root (synthetic: a folder of clips or one clip).
    max_distance: largest keyframe distance D scored (default: 11 for Cityscapes and CamVid, else the clip's
        GOP - 1 or the config's interval - 1). For Cityscapes and CamVid the keyframe policy is set to an
        interval of D + 1 (the protocol puts the key at distance d); for synthetic the config's policy is used.
    limit: only the first N items (annotated frames, test frames, clips). tc: temporal consistency (synthetic).
    absent: mIoU definition (`vidseg.eval.metrics.MIOU_DEFINITIONS`).
    """
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    if absent not in MIOU_DEFINITIONS:
        raise ConfigError(f"unknown mIoU definition {absent!r}; choose one of: {', '.join(MIOU_DEFINITIONS)}")
    if max_distance is not None and max_distance < 0:
        raise ConfigError(f"max_distance must be >= 0, got {max_distance}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be >= 1, got {limit}")
    if tc and dataset != "synthetic":
        raise ConfigError(
            "temporal consistency needs optical flow between consecutive frames; vidseg has it as ground truth "
            "for synthetic clips only (ETC's Cityscapes TC uses FlowNet2, which vidseg does not ship)"
        )
    root = Path(data)
    if not root.exists():
        raise DatasetError(f"{root}: no such file or directory (give the {dataset} dataset root with --data)")
    split = split or _DEFAULT_SPLIT[dataset]
    from vidseg.engine.engine import Engine, load_model

    if model is None and config.model is not None:  # a misspelt name fails before any data is read
        from vidseg.models.registry import model_builder

        model_builder(config.model)

    def model_of() -> Any:  # loaded once the dataset is known to be readable: a bad --data fails at once
        return model if model is not None else load_model(config)

    run = {"cityscapes": _cityscapes, "camvid": _camvid, "synthetic": _synthetic}[dataset]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = run(config, model_of, Engine, root, split, max_distance, limit, tc, absent, progress)
    seen = set(result.fallbacks)
    for w in caught:
        message = str(w.message)
        if issubclass(w.category, RuntimeWarning) and message not in seen:
            seen.add(message)
            result.fallbacks.append(message)
    return result


# -- Cityscapes ---------------------------------------------------------------------------------------------


def _cityscapes(config, model_of, Engine, root, split, max_distance, limit, tc, absent, progress) -> EvalResult:
    d_max = _DEFAULT_MAX_DISTANCE if max_distance is None else max_distance
    reader = CityscapesSequence(root, split, max_distance=d_max)
    model = model_of()
    classes = _check_classes(model, CITYSCAPES_CLASSES, "cityscapes")
    engine = Engine(config.replace(keyframes="interval", keyframe_interval=d_max + 1, drift_limit=None), model=model)
    encode = engine.method.uses_motion  # codec motion: re-encode the clip so the decoder exports it
    per_frame = not engine.method.uses_keyframes
    kd = KeyDistanceMIoU(len(classes), d_max)
    n = len(reader) if limit is None else min(limit, len(reader))
    result = _result("cityscapes", root, split, engine, classes, kd, absent, f"interval {d_max + 1} (key = gt - d)")
    if encode:
        size = tuple(reader.clip(0, 0).label.shape)
        result.motion_source = f"codec (H.264 re-encode: {_encode_description(size)})"
        result.notes.append(
            "arseg: the d+1 frames gt-d..gt are re-encoded with H.264 (one I-frame, then P-frames) and decoded "
            "with motion vectors; the engine sees the decoded frames (AR-Seg's protocol re-encodes each clip "
            "with x265, arseg.md §3.1)"
        )
    elif engine.method.uses_flow:
        result.motion_source = "model flow stage"
    elif per_frame:
        result.keyframes = "every frame"
        result.notes.append(
            "per-frame: the labelled frame's prediction does not depend on earlier frames; it is "
            "computed once per annotated frame and counted at every distance"
        )
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vidseg-eval-"))) if encode else None
        for i in range(n):
            if per_frame:
                clip = reader.clip(i, 0)
                labels = _last(engine.run(clip.frames[-1]))
                for d in range(d_max + 1):
                    _score(kd, labels, clip.label, d, clip.paths[-1])
                    result.frames += 1
            else:
                for d in range(d_max + 1):
                    clip = reader.clip(i, d)
                    if encode:
                        source: Any = encode_h264(tmp / f"{clip.name}_d{d}.mp4", clip.frames)
                    else:
                        source = np.stack(clip.frames)
                    labels = _last(engine.run(source))
                    _score(kd, labels, clip.label, d, clip.paths[-1])
                    result.frames += 1
            result.items += 1
            if progress is not None:
                progress(i + 1, n)
    engine.close()
    return result


def _encode_description(size: tuple[int, int]) -> str:
    c = CITYSCAPES_ENCODE
    return (
        f"PyAV {c['codec']}, {_bitrate(size) / 1e6:.2f} Mb/s, keyint {c['keyint']}, {c['bframes']} B-frames, "
        f"{c['refs']} reference, {c['fps']} fps"
    )


def _bitrate(size: tuple[int, int]) -> int:
    c = CITYSCAPES_ENCODE
    return max(50_000, int(c["bitrate_at_2048x1024"] * size[0] * size[1] / (1024 * 2048)))


def encode_h264(path: str | Path, frames: Sequence[np.ndarray]) -> Path:
    """Encode uint8 RGB frames (even H and W) as H.264: an I-frame, then P-frames predicted from the previous
    frame (no B-frames, one reference), with the settings of `CITYSCAPES_ENCODE`. Returns the path."""
    path = Path(path)
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:
        raise InputError(f"H.264 (yuv420p) needs an even frame size to re-encode for codec motion; got {h}x{w}")
    c = CITYSCAPES_ENCODE
    options = fixed_gop_options(c["codec"], c["keyint"], c["bframes"], {"ref": c["refs"]})
    with VideoWriter(path, width=w, height=h, rate=c["fps"], codec=c["codec"], bitrate=_bitrate((h, w)),
                     options=options) as writer:
        for image in frames:
            writer.write(image)
    return path


# -- CamVid (AR-Seg's layout) -------------------------------------------------------------------------------


def _camvid(config, model_of, Engine, root, split, max_distance, limit, tc, absent, progress) -> EvalResult:
    gop = 12  # the GOP of AR-Seg's processed CamVid (3M-GOP12)
    d_max = _DEFAULT_MAX_DISTANCE if max_distance is None else max_distance
    if d_max >= gop:
        raise ConfigError(f"max distance {d_max} does not fit AR-Seg's GOP of {gop} frames (d = 0..{gop - 1})")
    reader = CamVidARSeg(root, split, distances=range(d_max + 1), gop=gop)
    model = model_of()
    classes = _check_classes(model, CAMVID_CLASSES, "camvid")
    engine = Engine(config.replace(keyframes="interval", keyframe_interval=d_max + 1, drift_limit=None), model=model)
    arseg = engine.method.uses_motion
    per_frame = not engine.method.uses_keyframes
    kd = KeyDistanceMIoU(len(classes), d_max)
    result = _result("camvid", root, split, engine, classes, kd, absent, "decoded I-frame of the GOP (d >= 1)")
    result.motion_source = (
        "stored AR-Seg motion (.bin, chained to the key), per-pixel MotionField"
        if arseg
        else ("none" if per_frame else "model flow stage")
    )
    result.notes.append("frames are AR-Seg's decoded frames (x265, 3 Mb/s); d = 0 runs the frame as a keyframe")
    if per_frame:
        result.keyframes = "every frame"
    n = len(reader) if limit is None else min(limit, len(reader))
    for i in range(n):
        for d in range(d_max + 1):
            sample = reader.sample(i, d)
            engine.reset()
            if d == 0:
                labels = engine.process_frame(sample.frame, pict_type="I", index=0).labels
            elif per_frame:  # AR-Seg's HR rows: the HR model on the decoded frame at d
                labels = engine.process_frame(sample.frame, pict_type="P", index=0).labels
            else:
                engine.process_frame(sample.keyframe, pict_type="I", index=0)
                motion = None
                if arseg:
                    from vidseg.video.motion import MotionField

                    motion = MotionField.from_dense(np.moveaxis(sample.motion, -1, 0))
                out = engine.process_frame(sample.frame, motion=motion, pict_type="P", index=d)
                if out.is_key or out.key_distance != d:
                    raise ConfigError(f"engine made frame at distance {d} a keyframe ({out.reason})")
                labels = out.labels
            _score(kd, labels, sample.label, d, f"{sample.name} (d={d})")
            result.frames += 1
        result.items += 1
        if progress is not None:
            progress(i + 1, n)
    engine.reset()
    engine.close()
    return result


# -- synthetic clips ----------------------------------------------------------------------------------------


def find_synthetic_clips(path: str | Path) -> list:
    """The clips under `path` (`SyntheticClip`s): a `<stem>_gt` folder or a video with one beside it, or a folder
    of such clips."""
    from vidseg.eval.datasets import SYNTHETIC_LAYOUT, SyntheticClip

    p = Path(path)
    if p.is_file() or (p / "meta.json").is_file():
        return [SyntheticClip(p)]
    gt_dirs = sorted(q.parent for q in p.glob("*_gt/meta.json"))
    if not gt_dirs:
        raise DatasetError(
            f"{p} holds no synthetic clip (no <stem>_gt/meta.json); expected layout: "
            + "; ".join(line.strip() for line in SYNTHETIC_LAYOUT.splitlines())
        )
    return [SyntheticClip(g) for g in gt_dirs]


def _synthetic(config, model_of, Engine, root, split, max_distance, limit, tc, absent, progress) -> EvalResult:
    clips = find_synthetic_clips(root)
    model = model_of()
    if limit is not None:
        clips = clips[:limit]
    classes = tuple(clips[0].classes)
    for clip in clips[1:]:
        if tuple(clip.classes) != classes:
            raise DatasetError(f"{clip.gt_dir}: classes differ from {clips[0].gt_dir}'s")
    _check_classes(model, classes, "synthetic")
    engine = Engine(config, model=model)
    keyed = engine.method.uses_keyframes
    if max_distance is None:  # the farthest a frame can be from its key (per-frame: from the GOP's I-frame)
        gop = max(c.gop for c in clips)
        max_distance = (config.keyframe_interval if keyed and config.keyframes != "gop" else gop) - 1
    kd = KeyDistanceMIoU(len(classes), max_distance, ignore_index=clips[0].ignore_index)
    result = _result("synthetic", root, split, engine, classes, kd, absent, engine.policy.describe())
    result.motion_source = (
        "codec (the clip's own H.264 motion vectors)" if engine.method.uses_motion
        else ("model flow stage" if engine.method.uses_flow else "none")
    )
    if not keyed:
        result.keyframes = "every frame"
        result.notes.append(
            "per-frame: frames are scored at their position in the clip's GOP (distance to the "
            "I-frame), as AR-Seg's HR rows"
        )
    tcs: list[TemporalConsistency] = []
    if tc:
        source = "ground truth (synthetic; frame t+1 -> t, backward)"
        tcs = [
            TemporalConsistency(
                len(classes),
                direction="backward",
                flow_source=source,
                ignore_index=clips[0].ignore_index,
                occlusion_masked=masked,
            )
            for masked in (False, True)
        ]
        result.tc = tcs
        result.notes.append(
            "TC: the synthetic flow ground truth is each frame's flow to the previous frame, so TC "
            "is measured backward (tc_bwd: P_t warped into t+1), plus its occlusion-masked variant"
        )
    for i, clip in enumerate(clips):
        previous = None
        with contextlib.closing(engine.run(clip.video)) as results:
            for r in results:
                d = r.key_distance if keyed else clip.key_distance(r.index)
                if d <= max_distance:
                    _score(kd, r.labels, clip.label(r.index), d, f"{clip.video} frame {r.index}")
                    result.frames += 1
                else:
                    result.unscored_frames += 1
                if tcs and previous is not None:
                    if r.index != previous[0] + 1:
                        raise InputError(f"{clip.video}: frame {r.index} followed frame {previous[0]}")
                    flow, occ = clip.pair_flow(previous[0])
                    for metric in tcs:
                        metric.update(previous[1], r.labels, flow=flow, occlusion=occ)
                previous = (r.index, r.labels)
        result.items += 1
        if progress is not None:
            progress(i + 1, len(clips))
    if result.unscored_frames:
        result.notes.append(
            f"{result.unscored_frames} frames were farther than {max_distance} from their key and were not scored"
        )
    engine.close()
    return result


# -- helpers ------------------------------------------------------------------------------------------------


def _result(dataset, root, split, engine, classes, kd, absent, keyframes) -> EvalResult:
    return EvalResult(
        dataset=dataset,
        data=str(root),
        split=split,
        method=engine.method.name,
        class_names=classes,
        key_distance=kd,
        absent=absent,
        keyframes=keyframes,
    )


def _check_classes(model: Any, classes: Sequence[str], dataset: str) -> tuple[str, ...]:
    k = model.spec.num_classes
    if k != len(classes):
        raise ConfigError(
            f"model {model.spec.name!r} predicts {k} classes but {dataset} is scored on "
            f"{len(classes)}; use a model trained for {dataset}"
        )
    return tuple(classes)


def _last(results: Iterator[Any]) -> np.ndarray:
    last = None
    with contextlib.closing(results):
        for r in results:
            last = r
    if last is None:
        raise InputError("the engine produced no frame")
    return last.labels


def _score(kd: KeyDistanceMIoU, labels: np.ndarray, label: np.ndarray, d: int, where: Any) -> None:
    if labels.shape != label.shape:
        raise DatasetError(
            f"{where}: prediction {labels.shape} and label {label.shape} differ in size; the "
            "frames and label maps of a sample must have the same size"
        )
    kd.update(labels, label, d)

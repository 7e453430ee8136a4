"""The ground-truth format of a synthetic clip: what `write_clip` writes beside the video and how it is read.

    <stem>_gt/labels/%06d.png   uint8 Cityscapes trainIds (255 = ignore)
    <stem>_gt/flow/%06d.npz     flow_prev [H,W,2] float32, occ_prev [H,W] bool (frame 0: zeros / all True),
                                flow_key, occ_key: the same to the frame's keyframe key_index = t // gop * gop
                                (identity at the keyframe itself), key_index int
    <stem>_gt/meta.json         the scene config, clip settings, class names and the flow conventions
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from vidseg.classes import CITYSCAPES
from vidseg.errors import InputError
from vidseg.synthetic.config import ClipInfo, SceneConfig, SyntheticFrame

__all__ = ["FORMAT", "ground_truth_dir", "save_frame", "save_meta", "load_ground_truth"]

FORMAT = "vidseg-synthetic-gt"


def ground_truth_dir(path: str | Path) -> Path:
    """The ground-truth folder of a clip, given the video path or the folder itself (which holds meta.json)."""
    p = Path(path)
    return p if (p.is_dir() and (p / "meta.json").is_file()) else p.parent / f"{p.stem}_gt"


def save_frame(gt_dir: Path, frame: SyntheticFrame, key: tuple[np.ndarray, np.ndarray], key_index: int, *,
               compress: bool = False) -> None:
    """Write one frame's labels and flows; key is its (flow, occlusion) to frame key_index. compress: deflate the
    .npz (about 3x slower to write, and float flow shrinks little)."""
    from PIL import Image

    t = frame.index
    (gt_dir / "labels").mkdir(parents=True, exist_ok=True)
    (gt_dir / "flow").mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame.labels).save(gt_dir / "labels" / f"{t:06d}.png")
    save = np.savez_compressed if compress else np.savez
    save(gt_dir / "flow" / f"{t:06d}.npz", flow_prev=frame.flow_prev, occ_prev=frame.occlusion_prev,
         flow_key=key[0], occ_key=key[1], key_index=np.int64(key_index))


def save_meta(info: ClipInfo, config: SceneConfig) -> None:
    """Write meta.json, the clip's description, into info.gt_dir (after its frames: it marks the clip complete)."""
    meta = {
        "format": FORMAT,
        "version": 1,
        "video": info.path.name,
        "num_frames": info.num_frames,
        "fps": info.fps,
        "size": list(info.size),
        "gop": info.gop,
        "bframes": info.bframes,
        "codec": info.codec,
        "bitrate": info.bitrate,
        "config": asdict(config),
        "classes": list(CITYSCAPES.classes),
        "ignore_index": CITYSCAPES.ignore_index,
        "labels": "labels/%06d.png (uint8 Cityscapes trainIds)",
        "flow": "flow/%06d.npz: flow_prev, occ_prev (to frame t-1), flow_key, occ_key (to key_index = "
                "t // gop * gop), key_index",
        "flow_convention": "backward, pixels, (x, y): pixel p of frame t was at p + flow(p) in the reference "
                           "frame; pixel centres at integer coordinates",
        "occlusion": "True where p is not visible in the reference frame (disoccluded, out of frame, behind "
                     "the camera); frame 0 has occ_prev all True and flow_prev zeros",
    }
    (info.gt_dir / "meta.json").write_text(json.dumps(meta, indent=2))


def load_ground_truth(path_or_dir, index: int) -> dict:
    """Read what `write_clip` wrote for frame `index`, given the video path or its <stem>_gt folder.

    Returns {"index", "labels" uint8 [H,W], "flow_prev" float32 [H,W,2], "occ_prev" bool [H,W], "flow_key",
    "occ_key", "key_index" int, "meta" dict}. Raises InputError when the ground truth or the frame is missing.
    """
    p = Path(path_or_dir)
    gt_dir = ground_truth_dir(p)
    meta_path = gt_dir / "meta.json"
    if not meta_path.is_file():
        raise InputError(f"no synthetic ground truth for {p}: expected {meta_path} (write the clip with "
                         f"write_clip(..., ground_truth=True))")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read {meta_path}: {err}") from err
    n = int(meta.get("num_frames", 0))
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < n:
        raise InputError(f"frame {index!r} is not in {gt_dir} (it has frames 0..{n - 1})")
    index = int(index)
    label_path = gt_dir / "labels" / f"{index:06d}.png"
    flow_path = gt_dir / "flow" / f"{index:06d}.npz"
    for needed in (label_path, flow_path):
        if not needed.is_file():
            raise InputError(f"ground truth file {needed} is missing; rewrite the clip with write_clip")
    from PIL import Image

    try:
        with Image.open(label_path) as img:
            labels = np.array(img, dtype=np.uint8)
        with np.load(flow_path) as data:
            out = {k: data[k] for k in ("flow_prev", "occ_prev", "flow_key", "occ_key", "key_index")}
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"cannot read the ground truth of frame {index} in {gt_dir}: {err}") from err
    return {
        "index": index,
        "labels": labels,
        "flow_prev": out["flow_prev"],
        "occ_prev": out["occ_prev"],
        "flow_key": out["flow_key"],
        "occ_key": out["occ_key"],
        "key_index": int(out["key_index"]),
        "meta": meta,
    }

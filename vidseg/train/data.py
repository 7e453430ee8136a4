"""Training data from the synthetic street generator, as the deployed engine will see it.

`SyntheticClips` renders scenes with `vidseg.synthetic.write_clip` (H.264, fixed GOP), decodes them back
with codec motion vectors, chains the motion of every frame back to its keyframe (`MotionChain`), and keeps
decoded frames, labels and chained motion in memory. It serves:

- `frames(batch)`: (image, labels) for HR per-frame training;
- `pairs(batch, grid)`: (keyframe image, frame at distance d >= 1, motion to the key on a feature grid, labels,
  d) for AR-Seg's LR + CReFF feature-similarity training, with the real codec motion chain, as arseg.md section 4
  trains on (keyframe, frame at distance d) pairs.

Scenes: "city" (the default SceneConfig street of each seed, GOP `gop`, one bitrate) or "road"
(`vidseg.synthetic.road_clip`'s training split: city, suburb and rural roads with their own lighting, camera
effects and bitrate, drawn from the seed).

Augmentation: horizontal flip applied jointly (the motion's x component negated), a brightness/contrast jitter
per sample, and with `degrade` > 0 the camera and codec degradations of `vidseg.train.augment` (pairs: on the
non-keyframe more often and more strongly than on its key; the clean frame is returned beside it as the HR
targets' input). Clips are cached on disk under `root` so a resumed run does not re-render them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vidseg.errors import ConfigError, InputError
from vidseg.synthetic import SceneConfig, load_ground_truth, road_clip, write_clip
from vidseg.train.augment import degrade as degrade_image
from vidseg.video.decode import open_video
from vidseg.video.motion import MotionChain, MotionField

__all__ = ["ClipData", "SyntheticClips"]


@dataclass
class ClipData:
    images: np.ndarray  # uint8 [T, H, W, 3] decoded frames
    labels: np.ndarray  # uint8 [T, H, W] trainIds
    key_index: np.ndarray  # int [T]
    motion: list[MotionField]  # chained backward motion of frame t to its keyframe
    flow_prev: np.ndarray | None = None  # float16 [T, 2, H, W] exact backward flow to frame t-1 (ETC loss)


class SyntheticClips:
    """Encoded synthetic clips, decoded with their codec motion chained to the keyframe (see module doc)."""

    def __init__(self, root: str | Path, *, seeds: range | list[int], size: tuple[int, int] = (256, 512),
                 num_frames: int = 24, gop: int = 12, bitrate: int = 800_000, chain_mode: str = "exact",
                 with_flow: bool = False, progress: bool = False, scenes: str = "city") -> None:
        if scenes not in ("city", "road"):
            raise ConfigError(f"unknown scenes {scenes!r}; choose 'city' or 'road'")
        self.root = Path(root)
        self.size = size
        self.gop = gop
        self.clips: list[ClipData] = []
        seeds = list(seeds)
        iterator = seeds
        if progress:
            from tqdm import tqdm

            iterator = tqdm(seeds, desc="synthetic clips", dynamic_ncols=True)
        for seed in iterator:
            stem = "scene" if scenes == "city" else "road"
            path = self.root / f"{stem}{seed:04d}_{size[0]}x{size[1]}_g{gop}.mp4"
            if not (path.exists() and (path.parent / f"{path.stem}_gt" / "meta.json").exists()):
                if scenes == "city":
                    config, rate = SceneConfig(height=size[0], width=size[1], seed=seed), bitrate
                else:
                    clip = road_clip(seed, size, split="train")
                    config, rate = clip.config, clip.bitrate
                write_clip(path, config, num_frames, gop=gop, bframes=0, bitrate=rate)
            self.clips.append(_decode_clip(path, chain_mode, with_flow))

    def extend(self, other: SyntheticClips) -> None:
        """Sample from other's clips too (same frame size and GOP): one training set from several scene kinds."""
        if (other.size, other.gop) != (self.size, self.gop):
            raise ConfigError(f"cannot mix clips of size {other.size}, GOP {other.gop} into clips of size "
                              f"{self.size}, GOP {self.gop}")
        self.clips.extend(other.clips)

    def class_weights(self, num_classes: int, *, power: float = 0.5, clip: tuple[float, float] = (0.25, 8.0)
                      ) -> Tensor:
        """Cross-entropy class weights ~ frequency^-power (mean 1 over present classes, clipped): small classes
        (poles, signs, people) otherwise vanish under road, building and sky. Absent classes get weight 1."""
        counts = np.zeros(num_classes, np.float64)
        for clip_data in self.clips:
            valid = clip_data.labels[clip_data.labels < num_classes]
            counts += np.bincount(valid.ravel(), minlength=num_classes)[:num_classes]
        present = counts > 0
        weights = np.ones(num_classes)
        weights[present] = (counts[present] / counts[present].sum()) ** -power
        weights[present] /= weights[present].mean()
        return torch.from_numpy(np.clip(weights, *clip)).float()

    # -- sampling ------------------------------------------------------------------------------------------
    def _crop_box(self, rng: np.random.Generator, crop: tuple[int, int] | None) -> tuple[slice, slice]:
        """A random crop window, its corner on a 32-pixel lattice so feature grids stay aligned."""
        if crop is None:
            return slice(None), slice(None)
        (h, w), (ch, cw) = self.size, crop
        if ch > h or cw > w or ch % 32 or cw % 32:
            raise InputError(f"crop {crop} must be multiples of 32 within the clips' size {self.size}")
        y = int(rng.integers((h - ch) // 32 + 1)) * 32
        x = int(rng.integers((w - cw) // 32 + 1)) * 32
        return slice(y, y + ch), slice(x, x + cw)

    def frames(self, batch: int, rng: np.random.Generator, crop: tuple[int, int] | None = None, *,
               degrade: float = 0.0) -> tuple[Tensor, Tensor]:
        """A batch of (uint8 images [B,3,H,W], int64 labels [B,H,W]), optionally random crops; degrade: strength
        of the camera/codec degradations (`vidseg.train.augment`), 0 for none."""
        images, labels = [], []
        for _ in range(batch):
            clip = self.clips[rng.integers(len(self.clips))]
            t = int(rng.integers(len(clip.images)))
            flip = bool(rng.integers(2))
            ys, xs = self._crop_box(rng, crop)
            image = _jitter(_flip(clip.images[t][ys, xs], flip), rng)
            images.append(degrade_image(image, rng, degrade) if degrade > 0 else image)
            labels.append(_flip(clip.labels[t][ys, xs], flip))
        return _to_images(images), torch.from_numpy(np.stack(labels)).long()

    def consecutive(self, batch: int, rng: np.random.Generator) -> dict[str, Tensor]:
        """(image t, image t-1, exact backward flow t -> t-1, labels t) for ETC's temporal loss (needs with_flow)."""
        images, prevs, flows, labels = [], [], [], []
        for _ in range(batch):
            clip = self.clips[rng.integers(len(self.clips))]
            if clip.flow_prev is None:
                raise InputError("SyntheticClips(with_flow=True) is needed for the temporal-consistency loss")
            t = int(rng.integers(1, len(clip.images)))
            flip = bool(rng.integers(2))
            flow = clip.flow_prev[t].astype(np.float32)
            if flip:
                flow = flow[:, :, ::-1] * np.array([-1.0, 1.0], np.float32).reshape(2, 1, 1)
            gain = rng.uniform(0.8, 1.2)  # the same jitter on both frames keeps them photometrically consistent
            images.append(_jitter(_flip(clip.images[t], flip), rng, gain))
            prevs.append(_jitter(_flip(clip.images[t - 1], flip), rng, gain))
            flows.append(np.ascontiguousarray(flow))
            labels.append(_flip(clip.labels[t], flip))
        return {
            "image": _to_images(images),
            "prev_image": _to_images(prevs),
            "flow": torch.from_numpy(np.stack(flows)),
            "labels": torch.from_numpy(np.stack(labels)).long(),
        }

    def pairs(self, batch: int, rng: np.random.Generator, grid: tuple[int, int], *, max_distance: int | None = None,
              dense_mode: str = "area", crop: tuple[int, int] | None = None, degrade: float = 0.0,
              degrade_share: float = 0.8, lr_degrade: float | None = None) -> dict[str, Tensor]:
        """A batch of keyframe/non-keyframe pairs with the chained codec motion densified to `grid` (h, w).

        grid is the feature grid of the full clip frame; with `crop`, images, labels and motion are cut to the
        same window (motion at grid resolution, so the crop corner must fall on the grid: 32-pixel lattice).
        degrade > 0: "lr_image" is the non-keyframe degraded (in `degrade_share` of the samples, at strength
        `lr_degrade`, default twice `degrade`), "image" the same frame without it (the HR targets' input); the key
        is degraded at `degrade` in half of the samples. Without degrade, "lr_image" is "image".
        """
        max_d = (max_distance or self.gop - 1)
        keys, images, lr_images, motions, labels, dists = [], [], [], [], [], []
        for _ in range(batch):
            clip = self.clips[rng.integers(len(self.clips))]
            candidates = np.flatnonzero((np.arange(len(clip.images)) - clip.key_index >= 1)
                                        & (np.arange(len(clip.images)) - clip.key_index <= max_d))
            if candidates.size == 0:
                raise InputError("synthetic clips have no non-keyframes; use num_frames > 1 and gop > 1")
            t = int(rng.choice(candidates))
            k = int(clip.key_index[t])
            flip = bool(rng.integers(2))
            motion, _valid = clip.motion[t].to_dense(grid, mode=dense_mode)
            ys, xs = self._crop_box(rng, crop)
            if crop is not None:
                sy, sx = grid[0] / self.size[0], grid[1] / self.size[1]
                motion = motion[:, int(ys.start * sy): int(ys.stop * sy), int(xs.start * sx): int(xs.stop * sx)]
            if flip:
                motion = motion[:, :, ::-1] * np.array([-1.0, 1.0], np.float32).reshape(2, 1, 1)
            key = _jitter(_flip(clip.images[k][ys, xs], flip), rng)
            image = _jitter(_flip(clip.images[t][ys, xs], flip), rng)
            if degrade > 0 and rng.random() < 0.5:
                key = degrade_image(key, rng, degrade)
            keys.append(key)
            images.append(image)
            lr_images.append(degrade_image(image, rng, 2 * degrade if lr_degrade is None else lr_degrade)
                             if degrade > 0 and rng.random() < degrade_share else image)
            motions.append(np.ascontiguousarray(motion))
            labels.append(_flip(clip.labels[t][ys, xs], flip))
            dists.append(t - k)
        return {
            "key_image": _to_images(keys),
            "image": _to_images(images),
            "lr_image": _to_images(lr_images),
            "motion": torch.from_numpy(np.stack(motions)),
            "labels": torch.from_numpy(np.stack(labels)).long(),
            "distance": torch.tensor(dists),
        }


def _decode_clip(path: Path, chain_mode: str, with_flow: bool) -> ClipData:
    images, labels, keys, motion, flows = [], [], [], [], []
    with open_video(path, motion=True) as source:
        chain = MotionChain(source.size, mode=chain_mode, cell=source.cell)
        for frame in source:
            gt = load_ground_truth(path, frame.index)
            motion.append(chain.push(frame, is_key=frame.index == gt["key_index"]))
            images.append(frame.image)
            labels.append(gt["labels"])
            keys.append(gt["key_index"])
            if with_flow:
                flows.append(gt["flow_prev"].transpose(2, 0, 1).astype(np.float16))
    flow = np.stack(flows) if with_flow else None
    return ClipData(np.stack(images), np.stack(labels), np.asarray(keys), motion, flow)


def _flip(a: np.ndarray, flip: bool) -> np.ndarray:
    return np.ascontiguousarray(a[:, ::-1]) if flip else a


def _jitter(image: np.ndarray, rng: np.random.Generator, gain: float | None = None) -> np.ndarray:
    bias = rng.uniform(-20, 20) if gain is None else 0.0  # a given gain means "same jitter for a pair": no bias
    gain = rng.uniform(0.8, 1.2) if gain is None else gain
    return np.clip(image.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)


def _to_images(images: list[np.ndarray]) -> Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()

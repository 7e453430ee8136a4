"""Road scenes drawn at random from a seed: the demo model's training data and the held-out "realistic" set.

`road_clip(seed, split=...)` draws everything a clip is made of (setting, terrain, hills, clouds, lighting,
exposure and white balance, sensor noise, motion blur, camera, traffic, and the encoder's bitrate) from the seed.
The two splits differ on purpose, so that the held-out set measures how far a model generalises and not only
how well it fits: the held-out split has more open roads, stronger lighting drift, under- and over-exposure,
more noise and motion blur, harsher compression (about a third of the bitrate) and other camera geometry, and
its seeds (`HELDOUT_SEED0` on) never occur in training.

    clip = road_clip(1003, (256, 512), split="heldout")
    write_clip(path, clip.config, clip.num_frames, gop=clip.gop, bitrate=clip.bitrate)
    write_road_set(folder, 8, split="heldout")   # what `vidseg-eval --dataset synthetic --make 8` renders
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidseg.errors import ConfigError
from vidseg.synthetic.clip import write_clip
from vidseg.synthetic.config import SceneConfig

__all__ = ["SPLITS", "HELDOUT_SEED0", "RoadClip", "road_clip", "write_road_set"]

SPLITS = ("train", "heldout")
HELDOUT_SEED0 = 100_000  # held-out seeds start here; training seeds stay below
_BITRATE_AREA = 256 * 512  # bitrates below are for this frame area and scale with it


@dataclass(frozen=True)
class RoadClip:
    """A clip to render: its scene, length and how it is encoded (H.264, no B-frames)."""

    config: SceneConfig
    num_frames: int
    gop: int
    bitrate: int


def _pick(rng: np.random.Generator, options: dict[str, float]) -> str:
    names = list(options)
    return str(rng.choice(names, p=np.array([options[n] for n in names]) / sum(options.values())))


def road_clip(seed: int, size: tuple[int, int] = (256, 512), *, split: str = "train", num_frames: int = 24,
              gop: int = 12) -> RoadClip:
    """The clip of `seed` in `split` ("train" or "heldout"; see the module docstring). Deterministic."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {SPLITS}")
    held = split == "heldout"
    rng = np.random.default_rng([seed, 97, int(held)])
    u = rng.uniform
    setting = _pick(rng, {"city": 0.25, "suburb": 0.3, "rural": 0.45} if held
                    else {"city": 0.4, "suburb": 0.3, "rural": 0.3})
    terrain = _pick(rng, {"grass": 0.45, "dry": 0.3, "meadow": 0.25})
    hills = {"city": u(0.0, 0.06) * (rng.random() < 0.4), "suburb": u(0.0, 0.1), "rural": u(0.03, 0.14)}[setting]
    speed = {"city": u(5, 12), "suburb": u(6, 14), "rural": u(10, 22)}[setting]
    people = {"city": u(0.6, 1.5), "suburb": u(0.3, 1.0), "rural": u(0.0, 0.4)}[setting]
    if held:
        exposure = u(0.65, 0.85) if rng.random() < 0.5 else u(1.15, 1.45)
        look = dict(clouds=u(0, 3), exposure=exposure, white_balance=tuple(u(0.88, 1.12, 3)), lighting=u(1.5, 3.0),
                    noise=u(3, 8), motion_blur=u(0.3, 0.7), focal=u(0.6, 1.0), horizon=u(0.36, 0.54),
                    camera_height=u(1.2, 2.0))
        bitrate = u(0.2e6, 0.5e6)
    else:
        look = dict(clouds=u(0, 2.2), exposure=u(0.8, 1.2), white_balance=tuple(u(0.94, 1.06, 3)),
                    lighting=u(0.3, 1.5), noise=u(0, 3), motion_blur=u(0, 0.3), focal=u(0.65, 0.9),
                    horizon=u(0.4, 0.5), camera_height=u(1.3, 1.7))
        bitrate = u(0.5e6, 1.5e6)
    config = SceneConfig(
        height=int(size[0]), width=int(size[1]), seed=int(seed), setting=setting, terrain=terrain,
        hills=float(hills), speed=float(speed), pan_amplitude=float(u(2, 8)), cars=float(u(0.4, 1.5)),
        pedestrians=float(people),
        **{k: tuple(float(x) for x in v) if isinstance(v, tuple) else float(v) for k, v in look.items()},
    )
    area = size[0] * size[1] / _BITRATE_AREA
    return RoadClip(config, int(num_frames), int(gop), int(bitrate * area))


def write_road_set(folder: str | Path, count: int, size: tuple[int, int] = (256, 512), *, split: str = "heldout",
                   num_frames: int = 24, gop: int = 12, first_seed: int | None = None,
                   progress: bool = False) -> list[Path]:
    """Render `count` clips of `split` into folder (clips already there are kept); returns their paths.

    Seeds run from first_seed (default: HELDOUT_SEED0 for held-out clips, 0 for training ones); files are named
    road<seed>_<H>x<W>_g<gop>.mp4 with write_clip's ground truth beside them.
    """
    if count < 1:
        raise ConfigError(f"the number of clips to render must be >= 1, got {count}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    start = (HELDOUT_SEED0 if split == "heldout" else 0) if first_seed is None else first_seed
    seeds = range(start, start + count)
    if progress:
        from tqdm import tqdm

        seeds = tqdm(seeds, desc=f"rendering {split} clips", dynamic_ncols=True)
    paths = []
    for seed in seeds:
        clip = road_clip(seed, size, split=split, num_frames=num_frames, gop=gop)
        path = folder / f"road{seed}_{size[0]}x{size[1]}_g{gop}.mp4"
        if not (path.is_file() and (folder / f"{path.stem}_gt" / "meta.json").is_file()):
            write_clip(path, clip.config, clip.num_frames, gop=clip.gop, bitrate=clip.bitrate)
        paths.append(path)
    return paths

"""Agreement of a keyframe method with the per-frame network: a consistency figure for any video, no labels.

A keyframe method (arseg, flowwarp) promises that its cheap non-key path approximates running the full network
on every frame. On any video that promise can be checked without ground truth: run the same model per frame and
with the keyframe method over the same decoded frames, and count, for each non-keyframe, the share of pixels whose
labels agree. Keyframes run the same network on the same frame in both runs and are not counted.

    result = measure_agreement(EngineConfig(model="demo", method="arseg"), ["road.mp4"])
    result.mean(), result.min(), result.per_distance()      # over non-keyframes; per keyframe distance d

`AgreementMeter` is the accumulator, for callers that already hold both label maps (the demo's report).
The figure measures consistency with the per-frame network, not accuracy: where that network is wrong, agreeing
with it is no merit; where the two differ, the keyframe method departs from what the model would have said.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidseg.config import EngineConfig
from vidseg.errors import ConfigError, DatasetError, InputError

__all__ = ["VIDEO_SUFFIXES", "FrameAgreement", "AgreementMeter", "measure_agreement", "find_videos"]

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".ts", ".m4v", ".mpg", ".mpeg", ".h264", ".264", ".hevc")


@dataclass(frozen=True)
class FrameAgreement:
    """One non-keyframe: its video, frame index, distance to its keyframe and share of agreeing pixels."""

    video: str
    index: int
    key_distance: int
    agreement: float


@dataclass
class AgreementMeter:
    """Per non-keyframe agreement between a keyframe method's labels and the per-frame network's.

    update(labels, reference, key_distance, ...): both uint8/int label maps of one frame; keyframes
    (key_distance 0) only count as keyframes. ignore_index pixels of the reference (none from a network) are left
    out of the share.
    """

    ignore_index: int | None = None
    frames: list[FrameAgreement] = field(default_factory=list)
    keyframes: int = 0

    def update(self, labels: np.ndarray, reference: np.ndarray, key_distance: int, *, video: str = "",
               index: int = -1) -> float | None:
        if labels.shape != reference.shape:
            raise InputError(f"{video} frame {index}: label maps {labels.shape} and {reference.shape} differ in size")
        if key_distance == 0:
            self.keyframes += 1
            return None
        same = labels == reference
        if self.ignore_index is not None:
            keep = reference != self.ignore_index
            share = float(same[keep].mean()) if keep.any() else float("nan")
        else:
            share = float(same.mean())
        self.frames.append(FrameAgreement(video, int(index), int(key_distance), share))
        return share

    def _values(self) -> np.ndarray:
        return np.array([f.agreement for f in self.frames if not np.isnan(f.agreement)], np.float64)

    def mean(self) -> float:
        """Mean over non-keyframes of each frame's share of agreeing pixels (nan without non-keyframes)."""
        values = self._values()
        return float(values.mean()) if values.size else float("nan")

    def min(self) -> float:
        """The least-agreeing non-keyframe's share (nan without non-keyframes)."""
        values = self._values()
        return float(values.min()) if values.size else float("nan")

    def per_distance(self) -> dict[int, float]:
        """Mean agreement per keyframe distance d >= 1."""
        out: dict[int, list[float]] = {}
        for f in self.frames:
            if not np.isnan(f.agreement):
                out.setdefault(f.key_distance, []).append(f.agreement)
        return {d: float(np.mean(v)) for d, v in sorted(out.items())}

    def worst(self, n: int = 3) -> list[FrameAgreement]:
        return sorted((f for f in self.frames if not np.isnan(f.agreement)), key=lambda f: f.agreement)[:n]

    def summary(self) -> dict[str, Any]:
        """mean, min, per-distance means and counts (fractions): what reports and benchmarks keep."""
        return {"agreement_mean": self.mean(), "agreement_min": self.min(),
                "agreement_per_distance": {str(d): v for d, v in self.per_distance().items()},
                "nonkey_frames": len(self.frames), "keyframes": self.keyframes}

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(),
                "frames": [{"video": f.video, "index": f.index, "key_distance": f.key_distance,
                            "agreement": f.agreement} for f in self.frames]}


def find_videos(path: str | Path) -> list[Path]:
    """A video file, or the video files (by suffix, `VIDEO_SUFFIXES`) directly inside a folder, sorted."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise DatasetError(f"{p}: no such file or directory (give a video or a folder of videos)")
    videos = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise DatasetError(f"{p} holds no video file (looked for {', '.join(VIDEO_SUFFIXES)})")
    return videos


def measure_agreement(config: EngineConfig, sources: Sequence[Any], *, model: Any = None,
                      max_frames: int | None = None, progress: Callable[[int, int], Any] | None = None
                      ) -> tuple[AgreementMeter, dict[str, Any]]:
    """Run `config`'s keyframe method and the per-frame method of the same model over each source (a video path,
    arrays, any `open_source` input) and measure their agreement on every non-keyframe.

    model: an already-built model (else the config's is loaded). max_frames: only the first frames of each
    source. Returns the meter and what was run: method, reference, keyframe policy ("policy"), and the
    fallbacks and notices of both engines ("notes").
    """
    from vidseg.engine.engine import Engine, load_model
    from vidseg.engine.methods import baseline_method

    model = model if model is not None else load_model(config)
    keyed = Engine(config, model=model)
    if not keyed.method.uses_keyframes:
        raise ConfigError(f"method {keyed.method.name!r} runs the full network on every frame: it agrees with "
                          "itself; choose a keyframe method (e.g. --method arseg)")
    reference = Engine(config.replace(method=baseline_method()), model=model)
    meter = AgreementMeter()
    notes: list[str] = []
    try:
        for i, source in enumerate(sources):
            name = str(source) if isinstance(source, (str, Path)) else f"input {i}"
            with contextlib.closing(keyed.run(source, max_frames=max_frames)) as fast, \
                    contextlib.closing(reference.run(source, max_frames=max_frames)) as full:
                for a, b in zip(fast, full, strict=True):
                    if a.index != b.index:
                        raise InputError(f"{name}: the two runs decoded different frames ({a.index} vs {b.index})")
                    meter.update(a.labels, b.labels, 0 if a.is_key else a.key_distance, video=name, index=a.index)
            notes += [n for n in (*keyed.notes, *reference.notes) if n not in notes]
            if progress is not None:
                progress(i + 1, len(sources))
    finally:
        keyed.close()
        reference.close()
    info = {"method": keyed.method.describe(), "reference": reference.method.describe(),
            "policy": keyed.policy.describe(), "notes": notes}
    return meter, info

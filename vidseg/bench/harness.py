"""What vidseg-bench measures, as plain functions over `Engine` (see the suite definitions in suites.py).

Model only: the frames of a real encoded clip are decoded once (with codec motion) and kept in memory; each
configuration then processes rounds of `round_frames` frames, each round starting at a keyframe, so keyframes
and non-keyframes appear in their true proportion. Rounds of all configurations are interleaved (A B A B ...)
and every speed-up is a per-round paired ratio. On CUDA, time comes from CUDA events in the engine plus the
host wall clock of each round; peak device memory per configuration is recorded.

End to end: decode (with motion export when the method needs it) + inference + writing label maps from the
file, interleaved with a decode-only pass over the same file, so the report shows how close the pipeline gets to
its decode bound.

Accuracy: mIoU per keyframe distance and temporal consistency on synthetic clips with exact ground truth, for
configurations whose model has trained weights (random weights would make the numbers meaningless).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidseg.bench.stats import paired_ratio, summarize
from vidseg.bench.timing import interleave, synchronize, warm_up
from vidseg.config import EngineConfig
from vidseg.engine.engine import Engine
from vidseg.errors import ConfigError
from vidseg.models.profile import count_macs
from vidseg.models.registry import build
from vidseg.video.decode import open_video
from vidseg.video.synthetic import SceneConfig, write_clip

__all__ = ["BenchCase", "Comparison", "prepare_clip", "decode_all", "ModelOnly", "measure_model_only",
           "measure_end_to_end", "measure_accuracy", "gmacs_per_frame"]


@dataclass(frozen=True)
class BenchCase:
    """One configuration: what `EngineConfig` it runs, plus a short name for tables."""

    model: str
    method: str = "per-frame"
    backend: str = "torch"
    precision: str = "fp32"
    keyframe_interval: int = 12
    lr_scale: float = 0.5
    weights: str | None = None
    label: str | None = None

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        extra = f" L{self.keyframe_interval} s{self.lr_scale:g}" if self.method != "per-frame" else ""
        return f"{self.model} {self.method} {self.backend} {self.precision}{extra}"

    def engine_config(self, device: str) -> EngineConfig:
        return EngineConfig(model=self.model, weights=self.weights, method=self.method, backend=self.backend,
                            precision=self.precision, keyframes="interval",
                            keyframe_interval=self.keyframe_interval, lr_scale=self.lr_scale, device=device)


@dataclass(frozen=True)
class Comparison:
    """A speed-up to report: how many times faster `case` is than `baseline` (names of BenchCase)."""

    baseline: str
    case: str
    what: str  # e.g. "arseg over per-frame", "compiled over eager"


def prepare_clip(out_dir: Path, res: tuple[int, int], num_frames: int, *, gop: int = 12, seed: int = 7,
                 bitrate: int | None = None) -> Path:
    """A synthetic H.264 clip at `res` (cached by name), the default input of vidseg-bench."""
    h, w = res
    path = Path(out_dir) / f"bench_{h}x{w}_{num_frames}f_g{gop}_s{seed}.mp4"
    if not path.exists():
        bitrate = bitrate or int(5_000_000 * (h * w) / (1024 * 2048))  # AR-Seg's Cityscapes 5 Mbit/s, scaled
        write_clip(path, SceneConfig(height=h, width=w, seed=seed), num_frames, gop=gop, bitrate=max(bitrate, 200_000))
    return path


def decode_all(path: Path | str, *, motion: bool = True) -> list:
    """Every frame of a video, decoded once (images and codec motion kept in memory)."""
    with open_video(path, motion=motion) as source:
        return list(source)


def gmacs_per_frame(case: BenchCase, res: tuple[int, int], round_frames: int) -> float:
    """GMACs per frame of the configuration, keyframe and non-keyframe stages in their true proportion."""
    model = build(case.model)
    stages = model.stages(lr_scale=case.lr_scale)
    macs = {}
    for name, stage in stages.items():
        with torch.inference_mode():
            macs[name] = count_macs(stage, *stage.example_inputs(*res))
    keys = math.ceil(round_frames / case.keyframe_interval) if case.method != "per-frame" else round_frames
    non_keys = round_frames - keys
    nonkey = {"arseg": macs.get("nonkey", 0), "flowwarp": macs.get("flow", 0) + macs.get("refine", 0)}
    total = keys * macs["key"] + non_keys * nonkey.get(case.method, 0)
    return total / round_frames / 1e9


@dataclass
class ModelOnly:
    """Per-configuration model-only results."""

    case: BenchCase
    round_s: list[float] = field(default_factory=list)
    latency: dict[str, list[float]] = field(default_factory=lambda: {"key": [], "non-key": []})
    stage_s: dict[str, float] = field(default_factory=dict)
    peak_mem_mib: float | None = None
    warmup_rounds: int = 0
    backend_used: str = ""
    notes: list[str] = field(default_factory=list)

    def row(self, round_frames: int) -> dict:
        frames = round_frames * len(self.round_s)
        lat_all = self.latency["key"] + self.latency["non-key"]
        key, nonkey, every = summarize(self.latency["key"]), summarize(self.latency["non-key"]), summarize(lat_all)
        return {
            "name": self.case.name,
            "fps": frames / sum(self.round_s) if self.round_s else float("nan"),
            "latency_key_p50_ms": key.p50 * 1e3,
            "latency_nonkey_p50_ms": nonkey.p50 * 1e3 if nonkey.n else None,
            "latency_p50_ms": every.p50 * 1e3,
            "latency_p90_ms": every.p90 * 1e3,
            "latency_p99_ms": every.p99 * 1e3,
            "stage_ms_per_frame": {k: v * 1e3 / max(frames, 1) for k, v in self.stage_s.items()},
            "peak_mem_mib": self.peak_mem_mib,
            "rounds": len(self.round_s),
            "warmup_rounds": self.warmup_rounds,
            "backend_used": self.backend_used,
            "notes": self.notes,
        }


def _round_fn(engine: Engine, frames: Sequence, result: ModelOnly, device: torch.device, record: bool
              ) -> Callable[[], float]:
    def run_round() -> float:
        engine.reset()
        synchronize(device)
        t0 = time.perf_counter()
        outs = [engine.process_frame(f.image, motion=f.motion, pict_type=f.pict_type) for f in frames]
        synchronize(device)
        elapsed = time.perf_counter() - t0
        if record:
            result.round_s.append(elapsed)
            for out in outs:
                result.latency["key" if out.is_key else "non-key"].append(out.latency)
                for stage, s in out.timings.items():
                    result.stage_s[stage] = result.stage_s.get(stage, 0.0) + s
        return elapsed

    return run_round


def measure_model_only(cases: Sequence[BenchCase], frames: Sequence, *, rounds: int, round_frames: int,
                       device: str = "cpu", progress: Callable[[str], None] | None = None) -> dict[str, ModelOnly]:
    """Interleaved model-only measurement of every case over the same in-memory frames."""
    if len(frames) < round_frames:
        raise ConfigError(f"the clip has {len(frames)} frames; a round needs {round_frames}")
    for case in cases:
        if case.method != "per-frame" and round_frames % case.keyframe_interval:
            raise ConfigError(f"round_frames={round_frames} must be a multiple of {case.name}'s keyframe interval")
    window = frames[:round_frames]
    engines: dict[str, Engine] = {}
    results: dict[str, ModelOnly] = {}
    timed: dict[str, Callable[[], float]] = {}
    for case in cases:
        if progress:
            progress(f"building {case.name}")
        engine = Engine(case.engine_config(device))
        res = ModelOnly(case)
        dev = engine.device
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        res.warmup_rounds = warm_up(_round_fn(engine, window, res, dev, record=False))
        res.backend_used = engine.runner.describe() if engine.runner else case.backend
        engines[case.name], results[case.name] = engine, res
        timed[case.name] = _round_fn(engine, window, res, dev, record=True)
    if progress:
        progress(f"timing {len(cases)} configurations x {rounds} interleaved rounds")
    interleave(timed, rounds)
    for name, engine in engines.items():
        if engine.device.type == "cuda":
            results[name].peak_mem_mib = torch.cuda.max_memory_allocated(engine.device) / 2**20
        results[name].notes.extend(engine.summary.fallbacks if engine.summary else ())
        engine.close()
    return results


def measure_end_to_end(case: BenchCase, path: Path, *, rounds: int = 2, device: str = "cpu") -> dict:
    """Decode + inference + label maps written, interleaved with decode-only over the same file."""
    from vidseg.video.sinks import LabelPNGSink

    engine = Engine(case.engine_config(device))
    needs_motion = engine.needs_motion

    def pipeline_round() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            n = sum(1 for _ in engine.run(str(path), sinks=[LabelPNGSink(tmp)]))
            return (time.perf_counter() - t0) / n

    def decode_round() -> float:
        t0 = time.perf_counter()
        with open_video(path, motion=needs_motion) as source:
            n = sum(1 for _ in source)
        return (time.perf_counter() - t0) / n

    pipeline_round()  # warm-up (runner build, caches)
    times = interleave({"pipeline": pipeline_round, "decode": decode_round}, rounds)
    engine.close()
    ratio = paired_ratio(times["decode"], times["pipeline"])  # < 1: the pipeline is slower than decoding alone
    return {
        "name": f"{case.name} end-to-end",
        "pipeline_fps": 1.0 / float(np.median(times["pipeline"])),
        "decode_fps": 1.0 / float(np.median(times["decode"])),
        "pipeline_over_decode": ratio.to_dict(),
        "motion_export": needs_motion,
    }


def measure_accuracy(case: BenchCase, clips: Sequence[Path], *, device: str = "cpu") -> dict:
    """mIoU per keyframe distance (AR-Seg's mean, SwiftNet-seq's avg/min) and ETC's TC on synthetic clips."""
    from vidseg.eval.metrics import KeyDistanceMIoU, TemporalConsistency
    from vidseg.video.synthetic import load_ground_truth

    engine = Engine(case.engine_config(device))
    num_classes = engine.spec.num_classes
    per_d = KeyDistanceMIoU(num_classes, max_distance=case.keyframe_interval - 1)
    # The synthetic ground truth gives each frame's flow back to the previous frame: ETC's TC scored mirrored
    # in time (direction="backward"), named tc_bwd / tc_noc_bwd so it is never mixed up with ETC's own numbers.
    tc = TemporalConsistency(num_classes, direction="backward", flow_source="synthetic ground truth")
    tc_masked = TemporalConsistency(num_classes, direction="backward", occlusion_masked=True,
                                    flow_source="synthetic ground truth")
    for clip in clips:
        prev = None
        for result in engine.run(str(clip)):
            gt = load_ground_truth(clip, result.index)
            per_d.update(result.labels, gt["labels"], result.key_distance)
            if prev is not None:
                tc.update(prev, result.labels, flow=gt["flow_prev"])
                tc_masked.update(prev, result.labels, flow=gt["flow_prev"], occlusion=gt["occ_prev"])
            prev = result.labels
    engine.close()
    d = per_d.to_dict()
    return {"miou": d["mean"], "miou_avg": d["avg"], "miou_min": d["min"], "miou_per_distance": d["per_distance"],
            "tc": tc.value(), "tc_name": tc.name, "tc_noc": tc_masked.value(), "tc_noc_name": tc_masked.name}

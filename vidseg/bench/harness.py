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

Device-resident frames: `Engine.process_frame` uploads each image itself, which would put a host-to-device copy
into every "model-only" frame. `ResidentFrames` uploads the round's frames once (through the engine's own
`DeviceIO` via `Engine.upload`, so layout and memory format are what the pipeline gives the stages) and feeds
them through `Engine.process_uploaded`; the labels still come back to the host, as in any use of the engine.

Models without trained weights (the demo before `vidseg-train demo --install`) are timed with random weights,
which cost the same compute, and say so in their notes; their accuracy is not measured.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidseg.bench.stats import paired_ratio, summarize
from vidseg.bench.timing import interleave, synchronize, warm_up
from vidseg.config import EngineConfig
from vidseg.engine.engine import Engine
from vidseg.engine.methods import make_method, method_class
from vidseg.errors import CheckpointError, ConfigError
from vidseg.models.profile import count_macs
from vidseg.models.registry import build_architecture
from vidseg.synthetic import SceneConfig, write_clip
from vidseg.video.decode import open_video

__all__ = ["BenchCase", "Comparison", "prepare_clip", "decode_all", "ModelOnly", "measure_model_only",
           "measure_end_to_end", "measure_accuracy", "gmacs_per_frame", "build_bench_model", "compare",
           "ResidentFrames"]


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
        extra = f" L{self.keyframe_interval} s{self.lr_scale:g}" if self.keyed else ""
        return f"{self.model} {self.method} {self.backend} {self.precision}{extra}"

    @property
    def keyed(self) -> bool:
        """Whether the case's method uses keyframes (its interval and LR scale matter)."""
        return method_class(self.method).uses_keyframes

    def engine_config(self, device: str) -> EngineConfig:
        return EngineConfig(model=self.model, weights=self.weights, random_weights=self.weights is None,
                            method=self.method, backend=self.backend,
                            precision=self.precision, keyframes="interval",
                            keyframe_interval=self.keyframe_interval, lr_scale=self.lr_scale, device=device,
                            drift_limit=None)  # the method at its nominal interval (drift keys depend on the weights)


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


def build_bench_model(case: BenchCase) -> tuple[object, list[str]]:
    """The case's model with its weights (config.weights or built-in), or random weights plus a note when a model
    that needs built-in weights (the demo) has none installed: compute, and so speed, does not depend on them."""
    from vidseg.engine.engine import load_model

    # Random weights are drawn from a fixed seed: the same weights in every run, so the exported artifacts built
    # from them (keyed by a digest of the weights) are found in the cache instead of recompiled (minutes each).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            model = load_model(case.engine_config("cpu"))
            if case.weights is None and not model.spec.builtin_weights:
                return model, [f"{case.model}: random weights (no --weights; timing only, accuracy not measured)"]
            return model, []
        except CheckpointError as err:
            if case.weights:
                raise
            model = build_architecture(case.model)  # random weights; only builders that ship weights take pretrained
            return model, [f"{case.model}: random weights (timing only; accuracy not measured): {err}"]


def gmacs_per_frame(case: BenchCase, res: tuple[int, int], round_frames: int) -> float:
    """GMACs per frame of the configuration, keyframe and non-keyframe stages in their true proportion.

    Counted on the meta device (no compute, any resolution). The key stage's own input scale is part of the
    model (GSVNet's 0.75), and the LR stage follows case.lr_scale. A round of `round_frames` frames starts at a
    keyframe, as in `measure_model_only`.
    """
    with torch.device("meta"):
        model = build_architecture(case.model)  # shapes are all that count: no weights into meta tensors
        stages = model.stages(lr_scale=case.lr_scale)
        macs = {}
        for name, stage in stages.items():
            inputs = [torch.empty(shape, dtype=dtype) for shape, dtype in stage.input_shapes(*res).values()]
            macs[name] = count_macs(stage, *inputs)
    keys = math.ceil(round_frames / case.keyframe_interval) if case.keyed else round_frames
    non_keys = round_frames - keys
    method = make_method(case.method, tuple(stages))
    nonkey = sum(macs[c.stage] for c in method.nonkey_plan().calls) if non_keys else 0
    total = keys * macs["key"] + non_keys * nonkey
    return total / round_frames / 1e9


class ResidentFrames:
    """A round's frames already on the engine's device (uploaded once, outside any timing)."""

    def __init__(self, engine: Engine, frames: Sequence) -> None:
        self.frames = list(frames)
        self.tensors = []
        for frame in self.frames:
            self.tensors.append(engine.upload(frame.image))
        synchronize(engine.device)  # every upload finished: the rounds wait on nothing

    def __iter__(self):
        return zip(self.frames, self.tensors, strict=True)


def _process_resident(engine: Engine, frame, tensor: torch.Tensor):
    """`Engine.process_frame` for a frame whose image is already on the device (no upload in the timing)."""
    return engine.process_uploaded(frame, tensor)


@dataclass
class ModelOnly:
    """Per-configuration model-only results."""

    case: BenchCase
    round_s: list[float] = field(default_factory=list)
    round_seq: list[int] = field(default_factory=list)  # position of each timed round in the whole run's order
    latency: dict[str, list[float]] = field(default_factory=lambda: {"key": [], "non-key": []})
    # per frame: the sum of its stage times (CUDA events on CUDA, so device time; host clock on CPU)
    device_s: dict[str, list[float]] = field(default_factory=lambda: {"key": [], "non-key": []})
    stage_s: dict[str, float] = field(default_factory=dict)
    peak_mem_mib: float | None = None
    warmup_rounds: int = 0
    backend_used: str = ""
    notes: list[str] = field(default_factory=list)
    gmacs: float | None = None

    def row(self, round_frames: int) -> dict:
        frames = round_frames * len(self.round_s)
        lat_all = self.latency["key"] + self.latency["non-key"]
        key, nonkey, every = summarize(self.latency["key"]), summarize(self.latency["non-key"]), summarize(lat_all)
        rounds = summarize(self.round_s)
        return {
            "name": self.case.name,
            "model": self.case.model,
            "method": self.case.method,
            "backend": self.case.backend,
            "precision": self.case.precision,
            "keyframe_interval": self.case.keyframe_interval if self.case.keyed else 1,
            "lr_scale": self.case.lr_scale if method_class(self.case.method).has_lr_branch else None,
            # frames/s of the median round: the same rounds the paired speed-ups compare, so every figure of a
            # report agrees; fps_mean (all frames over all rounds) is kept, but an outlier round moves it.
            "fps": round_frames / rounds.p50 if rounds.n else float("nan"),
            "fps_mean": frames / sum(self.round_s) if self.round_s else float("nan"),
            "round_s": list(self.round_s),
            "keyframes": len(self.latency["key"]),
            "non_keyframes": len(self.latency["non-key"]),
            "latency_key_p50_ms": key.p50 * 1e3,
            "latency_nonkey_p50_ms": nonkey.p50 * 1e3 if nonkey.n else None,
            "latency_p50_ms": every.p50 * 1e3,
            "latency_p90_ms": every.p90 * 1e3,
            "latency_p99_ms": every.p99 * 1e3,
            "latency_key_p90_ms": key.p90 * 1e3,
            "latency_key_p99_ms": key.p99 * 1e3,
            "latency_nonkey_p90_ms": nonkey.p90 * 1e3 if nonkey.n else None,
            "latency_nonkey_p99_ms": nonkey.p99 * 1e3 if nonkey.n else None,
            "device_key_p50_ms": summarize(self.device_s["key"]).p50 * 1e3,
            "device_nonkey_p50_ms": summarize(self.device_s["non-key"]).p50 * 1e3 if nonkey.n else None,
            "gmacs_per_frame": self.gmacs,
            "stage_ms_per_frame": {k: v * 1e3 / max(frames, 1) for k, v in self.stage_s.items()},
            "peak_mem_mib": self.peak_mem_mib,
            "rounds": len(self.round_s),
            "round_seq": list(self.round_seq),
            "warmup_rounds": self.warmup_rounds,
            "backend_used": self.backend_used,
            "notes": self.notes,
        }


def _round_fn(engine: Engine, frames: ResidentFrames, result: ModelOnly, device: torch.device, record: bool,
              seq: list[int] | None = None) -> Callable[[], float]:
    def run_round() -> float:
        engine.reset()
        synchronize(device)
        t0 = time.perf_counter()
        outs = [_process_resident(engine, frame, tensor) for frame, tensor in frames]
        synchronize(device)
        elapsed = time.perf_counter() - t0
        if record:
            result.round_s.append(elapsed)
            if seq is not None:
                result.round_seq.append(seq[0])
                seq[0] += 1
            for out in outs:
                kind = "key" if out.is_key else "non-key"
                result.latency[kind].append(out.latency)
                result.device_s[kind].append(sum(out.timings.values()))
                for stage, s in out.timings.items():
                    result.stage_s[stage] = result.stage_s.get(stage, 0.0) + s
        return elapsed

    return run_round


def measure_model_only(cases: Sequence[BenchCase], frames: Sequence, *, rounds: int, round_frames: int,
                       device: str = "cpu", progress: Callable[[str], None] | None = None,
                       warmup: Mapping[str, float] | None = None) -> dict[str, ModelOnly]:
    """Interleaved model-only measurement of every case over the same frames, resident on the device.

    A case that cannot be built or run (backend not installed, export failing) is left out of the timing and
    comes back with no rounds and the reason in its notes: the others still run, and nothing falls back.
    warmup: keyword arguments of `warm_up` (min_rounds, max_rounds, tol).
    """
    if len(frames) < round_frames:
        raise ConfigError(f"the clip has {len(frames)} frames; a round needs {round_frames}")
    for case in cases:
        if case.keyed and round_frames % case.keyframe_interval:
            raise ConfigError(f"round_frames={round_frames} must be a multiple of {case.name}'s keyframe interval")
    window = frames[:round_frames]
    engines: dict[str, Engine] = {}
    results: dict[str, ModelOnly] = {}
    timed: dict[str, Callable[[], float]] = {}
    seq = [0]
    for case in cases:
        if progress:
            progress(f"building and warming up {case.name}")
        res = results[case.name] = ModelOnly(case)
        engine = None
        try:
            model, notes = build_bench_model(case)  # on the host
            res.notes.extend(notes)
            base = 0
            if torch.device(device).type == "cuda":
                synchronize(torch.device(device))
                base = torch.cuda.memory_allocated(device)  # what the engines built before this one hold
                torch.cuda.reset_peak_memory_stats(device)
            engine = Engine(case.engine_config(device), model=model)
            dev = engine.device
            resident = ResidentFrames(engine, window)
            res.warmup_rounds = warm_up(_round_fn(engine, resident, res, dev, record=False), **(warmup or {}))
            if dev.type == "cuda":  # this case alone: its weights, artifacts, activations and frames
                res.peak_mem_mib = (torch.cuda.max_memory_allocated(dev) - base) / 2**20
        except Exception as err:  # noqa: BLE001 - reported in the case's row; the other cases still run
            res.notes.append(f"not measured: {type(err).__name__}: {err}")
            if engine is not None:
                engine.close()
            continue
        res.backend_used = engine.runner.describe() if engine.runner else case.backend
        engines[case.name] = engine
        timed[case.name] = _round_fn(engine, resident, res, dev, record=True, seq=seq)
    if progress:
        progress(f"timing {len(timed)} configurations x {rounds} interleaved rounds")
        timed = {name: _announce(fn, name, rounds, progress) for name, fn in timed.items()}
    interleave(timed, rounds)
    for name, engine in engines.items():
        # Notices of process_frame runs (fallbacks, motion) live in the engine until a run() resets them.
        for note in engine.notes:
            if note not in results[name].notes:
                results[name].notes.append(note)
        engine.close()
    return results


def _announce(fn: Callable[[], float], name: str, rounds: int, progress: Callable[[str], None]
              ) -> Callable[[], float]:
    done = [0]

    def wrapped() -> float:
        done[0] += 1
        progress(f"round {done[0]}/{rounds}: {name}")
        return fn()

    return wrapped


def compare(results: Mapping[str, ModelOnly], comparisons: Sequence[Comparison]) -> list[dict]:
    """Speed-ups from interleaved rounds (round i of the case against round i of its baseline), with the speed-up
    the GMACs predict and the share of it the engine realises (measured / predicted)."""
    rows = []
    for comp in comparisons:
        base, case = results.get(comp.baseline), results.get(comp.case)
        if base is None or case is None or not base.round_s or not case.round_s:
            rows.append({"what": comp.what, "baseline": comp.baseline, "case": comp.case, "speedup": None,
                         "note": "not measured (see the configurations' notes)"})
            continue
        ratio = paired_ratio(base.round_s, case.round_s)
        predicted = base.gmacs / case.gmacs if base.gmacs and case.gmacs else None
        rows.append({
            "what": comp.what,
            "baseline": comp.baseline,
            "case": comp.case,
            "speedup": ratio.to_dict(),
            "speedup_str": str(ratio),
            "gmacs_predicted": predicted,
            "realised": ratio.median / predicted if predicted else None,
        })
    return rows


def measure_end_to_end(case: BenchCase, path: Path, *, rounds: int = 2, device: str = "cpu") -> dict:
    """Decode + inference + label maps written, interleaved with decode-only over the same file."""
    from vidseg.video.sinks import LabelPNGSink

    model, notes = build_bench_model(case)
    engine = Engine(case.engine_config(device), model=model)
    needs_motion = engine.needs_motion
    outside: list[float] = []  # per pipeline round: share of its wall time outside the model stages

    def pipeline_round() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            n = sum(1 for _ in engine.run(str(path), sinks=[LabelPNGSink(tmp)]))
            outside.append(engine.summary.outside_share)
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
        "outside_stages_share": float(np.median(outside[1:])),  # the timed rounds (the first one warmed up)
        "motion_export": needs_motion,
        "rounds": len(times["pipeline"]),
        "notes": notes + [n for n in engine.notes if n not in notes],
    }


def measure_accuracy(case: BenchCase, clips: Sequence[Path], *, device: str = "cpu") -> dict | None:
    """mIoU per keyframe distance (AR-Seg's mean, SwiftNet-seq's avg/min) and ETC's TC on synthetic clips; for
    keyframe methods also the agreement of their non-keyframes with the per-frame network (`agreement`, mean over
    non-keyframes; `agreement_min`), which needs no labels (`vidseg.eval.consistency`).

    None when the model has no trained weights (see `build_bench_model`): its numbers would mean nothing.
    The clips need write_clip's ground truth, and their GOP should equal the keyframe interval.
    """
    from vidseg.eval.metrics import KeyDistanceMIoU
    from vidseg.eval.temporal import TemporalConsistency
    from vidseg.synthetic import load_ground_truth

    model, notes = build_bench_model(case)
    if notes:
        return None
    engine = Engine(case.engine_config(device), model=model)
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
    row = {"miou": d["mean"], "miou_avg": d["avg"], "miou_min": d["min"], "miou_per_distance": d["per_distance"],
           "tc": tc.value(), "tc_name": tc.name, "tc_noc": tc_masked.value(), "tc_noc_name": tc_masked.name}
    if case.keyed:
        from vidseg.eval.consistency import measure_agreement

        meter, _ = measure_agreement(case.engine_config(device), [str(c) for c in clips], model=model)
        row.update(agreement=meter.mean(), agreement_min=meter.min())
    return row

"""`--engine auto`: measure the engines that can run here on the model's own stages, and keep the fastest.

Which engine is fastest depends on the model, the method, the device and even the machine's load (on a busy
2-core CPU ONNX Runtime beat eager PyTorch by 2x on one clip; on the same machine when quiet eager PyTorch won).
So auto builds every candidate that can run here, times each on the frame mix the method runs (keyframe stage
once per keyframe interval, the non-key stages otherwise) with seeded inputs at the frame size, in interleaved
rounds, keeps the fastest and closes the rest. The decision (with every timing) is stored in the artifact cache,
keyed like the artifacts (stage code and weights, frame size, precision, device, library versions), so later
runs build only the chosen engine; delete the `auto-*.json` files in the cache to measure again.

Candidates are the registered backends (`vidseg.config.BACKENDS`) whose runner names this device type
(`Runner.auto_devices`): CPU: torch, onnx (ONNX Runtime's CPU EP), aoti; CUDA: trt, compile, torch, onnx, aoti.
Engines whose artifacts take minutes to build on this device (`Runner.auto_prebuilt_only`: ONNX and AOTInductor
on a CPU, AOTInductor on a GPU) are tried only when their artifacts are already in the cache, so a first run
starts at once; the summary says how to build them, and the next run measures them. TensorRT engines are built (once,
cached) on a GPU, where they are usually the fastest by far. A candidate that cannot be built or run is skipped
and said once; nothing falls back silently.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from vidseg.config import BACKENDS, EngineConfig
from vidseg.engine.backends.base import Runner, runner_class
from vidseg.errors import BackendUnavailable, VidsegError
from vidseg.models.base import Stage

__all__ = ["AutoChoice", "auto_candidates", "choose_runner", "frame_mix", "ROUNDS"]

ROUNDS = 5  # interleaved timed rounds per candidate, after one warm-up round


@dataclass(frozen=True)
class AutoChoice:
    """What auto chose and why: milliseconds per frame of every candidate measured (the frame mix of the
    method), the candidates skipped with their reason, and whether the decision came from the cache."""

    backend: str
    ms_per_frame: Mapping[str, float]
    skipped: tuple[str, ...] = ()
    cached: bool = False

    def describe(self) -> str:
        if not self.ms_per_frame:
            return f"auto chose {self.backend} (the only engine ready here)"
        timings = ", ".join(f"{b} {ms:.1f} ms" for b, ms in sorted(self.ms_per_frame.items(), key=lambda kv: kv[1]))
        how = "decision cached from an earlier measurement" if self.cached else "measured now"
        return f"auto chose {self.backend} ({timings} per frame; {how})"


def auto_candidates(device: torch.device) -> tuple[str, ...]:
    """The engines auto tries on this device (the registered backends that say so), best rank first."""
    ranked = []
    for name in BACKENDS:
        if name == "auto":
            continue
        try:
            cls = runner_class(name)
        except BackendUnavailable:
            continue  # its module's package is missing: it cannot be a candidate here
        if device.type in cls.auto_devices:
            ranked.append((cls.auto_rank, name))
    return tuple(name for _, name in sorted(ranked))


def prebuilt_only(backend: str, device: torch.device) -> bool:
    """Whether auto tries `backend` only when its artifacts are already built (it takes minutes to build here)."""
    try:
        return device.type in runner_class(backend).auto_prebuilt_only
    except BackendUnavailable:
        return False


def choose_runner(config: EngineConfig, stages: dict[str, Stage], frame_size: tuple[int, int],
                  device: torch.device, mix: Mapping[str, float], *, cache_dir=None,
                  candidates: Sequence[str] | None = None) -> tuple[Runner, AutoChoice]:
    """Build and time the candidates; return the fastest runner (the others closed) and the choice.

    mix: stage name -> calls per frame (e.g. arseg with a keyframe every 12 frames: key 1/12, nonkey 11/12).
    """
    from vidseg.export.cache import ArtifactCache

    candidates = tuple(candidates or auto_candidates(device))
    unbuilt = {b for b in candidates
               if prebuilt_only(b, device) and not _is_built(b, config, stages, frame_size, device)}
    cache = ArtifactCache(cache_dir if cache_dir is not None else config.cache_dir)
    # The key names the candidates that can be tried now: once missing artifacts are built, auto measures again.
    tried = tuple(b for b in candidates if b not in unbuilt)
    decision_path = cache.root / f"auto-{_decision_key(config, stages, frame_size, device, mix, tried)}.json"
    cached = _read_decision(decision_path)
    if cached is not None and cached.backend in candidates:
        try:
            runner = _build(cached.backend, config, stages, frame_size, device)
            return runner, cached
        except (BackendUnavailable, VidsegError):
            pass  # the cached engine no longer builds here: measure again
    runners: dict[str, Runner] = {}
    skipped: list[str] = []
    for backend in candidates:
        if backend in unbuilt:
            skipped.append(f"{backend}: its artifacts for this model and frame size are not built yet (one run "
                           f"with --engine {backend} builds them into the cache; auto then measures it too)")
            continue
        try:
            runners[backend] = _build(backend, config, stages, frame_size, device)
        except (BackendUnavailable, VidsegError) as err:
            skipped.append(f"{backend}: {err}")
    if not runners:
        raise BackendUnavailable("no engine can run here: " + "; ".join(skipped))
    if len(runners) == 1:  # nothing to choose between: no measurement, no decision to keep
        (only,) = runners
        return runners[only], AutoChoice(only, {}, tuple(skipped))
    timings = _measure(runners, stages, frame_size, device, mix, skipped)
    if not timings:
        raise BackendUnavailable("every engine failed on the model's stages: " + "; ".join(skipped))
    best = min(timings, key=lambda b: (timings[b], candidates.index(b)))
    for backend, runner in runners.items():
        if backend != best:
            runner.close()
    choice = AutoChoice(best, timings, tuple(skipped))
    _write_decision(decision_path, choice)
    return runners[best], choice


def _is_built(backend: str, config: EngineConfig, stages: dict[str, Stage], frame_size: tuple[int, int],
              device: torch.device) -> bool:
    cls = runner_class(backend)
    is_built = getattr(cls, "is_built", None)
    return True if is_built is None else is_built(stages, config.replace(backend=backend), frame_size, device)


def _build(backend: str, config: EngineConfig, stages: dict[str, Stage], frame_size: tuple[int, int],
           device: torch.device) -> Runner:
    return runner_class(backend)(stages, config.replace(backend=backend), frame_size, device)


def _measure(runners: Mapping[str, Runner], stages: Mapping[str, Stage], frame_size: tuple[int, int],
             device: torch.device, mix: Mapping[str, float], skipped: list[str]) -> dict[str, float]:
    """Milliseconds per frame of each runner on the mix, median over interleaved rounds (the first round of each
    is a warm-up). A runner that fails is dropped, with its reason in `skipped`."""
    inputs = {name: _example(stages[name], frame_size, device) for name in mix}
    rounds: dict[str, list[float]] = {b: [] for b in runners}
    for r in range(ROUNDS + 1):
        for backend, runner in list(runners.items()):
            if backend not in rounds:
                continue
            try:
                seconds = _time_mix(runner, inputs, mix, device)
            except Exception as err:  # noqa: BLE001 - any failure of a candidate rules it out, said once
                skipped.append(f"{backend}: failed on the model's stages ({type(err).__name__}: {err})")
                del rounds[backend]
                continue
            if r:
                rounds[backend].append(seconds)
    return {b: statistics.median(s) * 1000.0 for b, s in rounds.items() if s}


def _time_mix(runner: Runner, inputs: Mapping[str, dict[str, Tensor]], mix: Mapping[str, float],
              device: torch.device) -> float:
    total = 0.0
    for stage, weight in mix.items():
        _sync(device)
        start = time.perf_counter()
        runner.run(stage, dict(inputs[stage]))
        _sync(device)
        total += weight * (time.perf_counter() - start)
    return total


def _example(stage: Stage, frame_size: tuple[int, int], device: torch.device) -> dict[str, Tensor]:
    height, width = frame_size
    shapes = stage.input_shapes(height, width)
    return {name: t.to(device) for name, t in zip(shapes, stage.example_inputs(height, width), strict=True)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _decision_key(config: EngineConfig, stages: Mapping[str, Stage], frame_size: tuple[int, int],
                  device: torch.device, mix: Mapping[str, float], candidates: Sequence[str]) -> str:
    from vidseg.export.cache import stage_fingerprint

    try:
        import onnxruntime as ort

        ort_version = ort.__version__
    except ImportError:
        ort_version = "-"
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    parts = {
        "stages": {name: stage_fingerprint(stages[name]) for name in sorted(mix)},
        "mix": {k: round(v, 6) for k, v in sorted(mix.items())},
        "frame_size": list(frame_size),
        "precision": config.precision,
        "batch": config.batch,
        "channels_last": config.channels_last,
        "device": f"{device.type}:{gpu}",
        "threads": torch.get_num_threads(),
        "candidates": list(candidates),
        "versions": [torch.__version__, ort_version],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _read_decision(path) -> AutoChoice | None:
    try:
        data = json.loads(path.read_text())
        return AutoChoice(data["backend"], dict(data["ms_per_frame"]), tuple(data.get("skipped", ())), True)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or unreadable: measure


def _write_decision(path, choice: AutoChoice) -> None:
    """Best effort: a cache that cannot be written costs a measurement next time, nothing else."""
    tmp = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({k: v for k, v in asdict(choice).items() if k != "cached"}, indent=1))
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)


def frame_mix(method, keyframe_interval: int) -> dict[str, float]:
    """Stage calls per frame of a method: the key stage once per keyframe interval (every frame when the method
    uses no keyframes), the non-key plan's stages on the other frames."""
    interval = keyframe_interval if method.uses_keyframes else 1
    mix = {"key": 1.0 / interval}
    if interval > 1:
        for stage_call in method.nonkey_plan().calls:
            mix[stage_call.stage] = mix.get(stage_call.stage, 0.0) + (interval - 1) / interval
    return mix


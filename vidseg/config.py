"""EngineConfig: everything that decides what the engine runs, frozen.

Derived values (the resolved device, an artifact's cache key) are computed into new objects and never written
back, so one config can be shared by threads and streams.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from vidseg.errors import ConfigError

__all__ = ["EngineConfig", "METHODS", "BACKENDS", "PRECISIONS", "KEYFRAME_POLICIES", "MOTION_CHAINS", "SAVE_KINDS"]

# Methods by name -> the class implementing them ("module:Class", imported only when chosen): adding a method is
# its module in vidseg/engine/methods/ plus one line here.
METHODS = {
    "per-frame": "vidseg.engine.methods.perframe:PerFrame",
    "arseg": "vidseg.engine.methods.arseg:ARSeg",
    "flowwarp": "vidseg.engine.methods.flowwarp:FlowWarp",
}
# Backends by name -> their Runner class ("module:Class", imported only when chosen): adding a backend is its
# module in vidseg/engine/backends/ plus one line here. "auto" measures the ones that can run and keeps the fastest.
BACKENDS = {
    "auto": "vidseg.engine.backends.auto:choose_runner",
    "torch": "vidseg.engine.backends.eager:EagerRunner",
    "compile": "vidseg.engine.backends.compiled:CompiledRunner",
    "onnx": "vidseg.engine.backends.onnxrt:OnnxRuntimeRunner",
    "aoti": "vidseg.engine.backends.aoti:AOTInductorRunner",
    "trt": "vidseg.engine.backends.tensorrt:TensorRTRunner",
}
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
KEYFRAME_POLICIES = ("interval", "gop", "adaptive")
MOTION_CHAINS = ("exact", "arseg")
SAVE_KINDS = ("overlay", "labels", "npz", "probs")  # what vidseg-run --save writes (vidseg.video.save)


@dataclass(frozen=True)
class EngineConfig:
    """What to run and how.

    model: a registry name (see `vidseg.models.list_models()`), or None for the built-in demo model.
    weights: checkpoint path(s); for two-branch models (AR-Seg) a "HR.pth,AR.pth" pair.
    random_weights: run a model that has no built-in weights without `weights` (untrained: for benchmarking
        compute only); without it such a model is refused, since its labels would be confident noise.
    method: "per-frame" (HR on every frame), "arseg" (HR keyframes, LR+CReFF non-keyframes fed by codec
        motion), "flowwarp" (HR keyframes, light flow + warp + guided refinement); None: the model's default
        (its first keyframe method).
    keyframes: "interval" (every `keyframe_interval` frames), "gop" (every codec I-frame), "adaptive"
        (motion/residual energy since the key passes `adaptive_threshold`, at most `keyframe_interval` apart).
    drift_limit: a non-keyframe whose drift from the keyframe (the share of the map where its labels depart from
        the key's carried along the motion) grew by this much since the interval's first non-keyframe runs again
        as a keyframe (files), or makes the next frame one (live runs, process_frame) (arseg;
        `vidseg.engine.schedule.DriftGuard`); None: off.
    lr_scale: downscale factor of the non-keyframe LR branch (AR-Seg); None: the scale an AR-Seg checkpoint's
        file name carries (`PSPNet_resnet18_0.3_99_.pth` -> 0.3), else the model's own (0.5).
    motion_chain: how codec motion is chained back to the keyframe (arseg): "exact" (sub-pixel, on the codec's
        cell grid) or "arseg" (the seed's per-pixel integer chaining, for checkpoint fidelity; slower).
    device: "cpu", "cuda", "cuda:N" or "auto".
    live: drop frames that arrive while the engine is busy (latency bounded) instead of processing all.
    providers: ONNX Runtime execution providers for the onnx backend (e.g. ("CUDAExecutionProvider",)); never
        silently replaced. calibration_video: frames for int8 TensorRT calibration.
    """

    model: str | None = None
    weights: str | None = None
    random_weights: bool = False
    method: str | None = None
    backend: str = "auto"
    precision: str = "fp32"
    keyframes: str = "interval"
    keyframe_interval: int = 12
    adaptive_threshold: float = 2.0
    drift_limit: float | None = 0.05
    lr_scale: float | None = None
    motion_chain: str = "exact"
    device: str = "auto"
    channels_last: bool = True
    live: bool = False
    batch: int = 1
    queue_depth: int = 4
    cache_dir: str | None = None
    return_logits: bool = False
    providers: tuple[str, ...] | None = None  # ONNX Runtime execution providers, in order (None: best present)
    calibration_video: str | None = None  # int8 TensorRT engines: calibrate on frames of this video

    def __post_init__(self) -> None:
        if self.method is not None:
            _check_choice("method", self.method, METHODS)
        _check_choice("backend", self.backend, BACKENDS)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("keyframes", self.keyframes, KEYFRAME_POLICIES)
        _check_choice("motion_chain", self.motion_chain, MOTION_CHAINS)
        if self.keyframe_interval < 1:
            raise ConfigError(f"keyframe_interval (--keyframe-interval) must be >= 1 (1: every frame is a "
                              f"keyframe), got {self.keyframe_interval}")
        if self.drift_limit is not None and not 0.0 < self.drift_limit <= 1.0:
            raise ConfigError(f"drift_limit (--drift-limit) must be in (0, 1] (a share of the label grid) or off, "
                              f"got {self.drift_limit}")
        if self.lr_scale is not None and not 0.0 < self.lr_scale <= 1.0:
            raise ConfigError(f"lr_scale (--lr-scale) must be in (0, 1] (AR-Seg uses 0.3-0.9; 0.5 by "
                              f"default), got {self.lr_scale}")
        if self.queue_depth < 1 or self.batch < 1:
            raise ConfigError("queue_depth and batch must be >= 1")

    def replace(self, **changes: object) -> EngineConfig:
        """A copy with some fields changed (the config itself is never mutated)."""
        return dataclasses.replace(self, **changes)


def _check_choice(field: str, value: str, choices: Iterable[str]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {field} {value!r}; choose one of: {', '.join(choices)}")

"""The `trt` backend: one TensorRT engine per stage, run on torch's CUDA stream with torch-owned buffers.

Engines come from the artifact builder (`vidseg.export.builder`): the validated ONNX artifact, TensorRT's
operator check, then the engine, cached by the ONNX bytes, precision, shapes, TensorRT version and GPU (a stale or
corrupt engine is rebuilt, never loaded); or from an export folder (`vidseg.export.load_export`).

At load the engine's I/O tensors are compared with the stage's declared names (`vidseg.export.trt_engine`).
Each run enqueues `execute_async_v3` on torch's current stream, so it orders with the surrounding torch work
without host synchronisation. Memory freed by torch after the call is reused only by later work on the same
stream, so no buffer is recycled while the engine reads it.

Precision: fp32, fp16, bf16 (builder flags), int8 (entropy calibration on frames of a video: pass
`calibration_video`; layers without INT8 kernels run in FP16). With batch > 1 the engines have a dynamic batch
(1..batch, optimised for batch).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from vidseg.config import EngineConfig
from vidseg.engine.backends.base import ArtifactRunner
from vidseg.errors import BackendUnavailable, ConfigError
from vidseg.export.tensorrt import TRT_PRECISIONS, gpu_identity, import_tensorrt
from vidseg.export.trt_engine import TrtEngine
from vidseg.models.base import Stage

__all__ = ["TensorRTRunner"]


class TensorRTRunner(ArtifactRunner):
    """TensorRT engines for a model's stages at one frame size, on one GPU."""

    name = "trt"
    format = "trt"
    max_in_flight = 2
    auto_devices = ("cuda",)
    auto_rank = 10

    def __init__(
        self,
        stages: dict[str, Stage],
        config: EngineConfig,
        frame_size: tuple[int, int],
        device: torch.device,
        *,
        calibration_video: str | os.PathLike | None = None,
        calibration_frames_count: int = 64,
        workspace_bytes: int | None = None,
        cache=None,
        artifacts=None,
    ) -> None:
        self.calibration_video = calibration_video or config.calibration_video
        self.calibration_frames_count = calibration_frames_count
        self.workspace_bytes = workspace_bytes
        self.engines: dict[str, TrtEngine] = {}
        self.trt = import_tensorrt()
        if device.type != "cuda":
            raise BackendUnavailable(f"the TensorRT backend needs a CUDA device, not {device}")
        self.gpu = gpu_identity(device)
        # Builder, runtime and contexts work on the current GPU: make it this runner's (cuda:N)
        with torch.cuda.device(device):
            super().__init__(stages, config, frame_size, device, artifacts=artifacts, cache=cache)

    def check_request(self) -> None:
        if self.config.precision not in TRT_PRECISIONS:
            raise ConfigError(f"precision {self.config.precision!r} is not a TensorRT precision {TRT_PRECISIONS}")
        if self.config.precision == "int8" and self.calibration_video is None:
            raise ConfigError("int8 on the trt backend needs a calibration video (real frames of your scenes)")

    def build_request(self, **extra):
        from vidseg.export.builder import Calibration

        calibration = None
        if self.calibration_video is not None:
            calibration = Calibration(str(self.calibration_video), frames=self.calibration_frames_count)
        return super().build_request(calibration=calibration, workspace_bytes=self.workspace_bytes, **extra)

    def load(self, name: str, artifact) -> None:
        engine = TrtEngine(self.trt, artifact.path.read_bytes(), label=f"{name} engine {artifact.path.name}")
        engine.check_bindings(artifact.io, name)
        self.engines[name] = engine

    def run(self, stage: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        stream = torch.cuda.current_stream(self.device)
        with torch.cuda.device(self.device):  # TensorRT enqueues on the current GPU
            return self.engines[stage].run(inputs, stream.cuda_stream, self.device)

    def describe(self) -> str:
        name, capability = self.gpu
        return (
            f"{self.name} on {self.device} ({self.config.precision}; TensorRT {self.trt.__version__}, "
            f"{name} {capability})"
        )

    def close(self) -> None:
        self.engines.clear()

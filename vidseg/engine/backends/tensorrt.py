"""The `trt` backend: one TensorRT engine per stage, run on torch's CUDA stream with torch-owned buffers.

Per stage: the validated ONNX artifact (`vidseg.export.onnx.onnx_artifact`), checked against TensorRT's
operator table, then the engine from the artifact cache (`vidseg.export.tensorrt.engine_artifact`), keyed by
the ONNX bytes, precision, shapes, TensorRT version and GPU; a stale or corrupt engine is rebuilt, never loaded.

At load the engine's I/O tensors are compared with the stage's declared names. A run binds torch tensors by
address (`set_tensor_address`): inputs as given (uint8 frames stay uint8: TensorRT 10 takes UINT8 inputs),
outputs freshly allocated by torch, and `execute_async_v3` is enqueued on torch's current stream, so it orders
with the surrounding torch work without host synchronisation and without pycuda. Memory freed by torch after the
call is reused only by later work on the same stream, so no buffer is recycled while the engine reads it.

Precision: fp32, fp16, bf16 (builder flags), int8 (entropy calibration on frames of a video: pass
`calibration_video`; layers without INT8 kernels run in FP16). With batch > 1 the engines have a dynamic batch
(1..batch, optimised for batch).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import ModuleType

import onnx
import torch
from torch import Tensor

from vidseg.config import EngineConfig
from vidseg.engine.backends.base import Runner
from vidseg.errors import BackendUnavailable, ConfigError, ExportError, ShapeError
from vidseg.export.cache import ArtifactCache
from vidseg.export.onnx import check_trt_ops, onnx_artifact
from vidseg.export.tensorrt import (
    TRT_PRECISIONS,
    CalibrationBatcher,
    ShapeProfile,
    calibration_frames,
    calibration_samples,
    engine_artifact,
    gpu_identity,
    import_tensorrt,
    make_entropy_calibrator,
)
from vidseg.models.base import Stage

__all__ = ["TensorRTRunner", "TrtEngine", "trt_to_torch_dtype"]


def trt_to_torch_dtype(trt: ModuleType, dtype) -> torch.dtype:
    table = {
        "FLOAT": torch.float32,
        "HALF": torch.float16,
        "BF16": torch.bfloat16,
        "INT8": torch.int8,
        "UINT8": torch.uint8,
        "INT32": torch.int32,
        "INT64": torch.int64,
        "BOOL": torch.bool,
    }
    for name, torch_dtype in table.items():
        if hasattr(trt.DataType, name) and dtype == getattr(trt.DataType, name):
            return torch_dtype
    raise ShapeError(f"TensorRT tensor type {dtype} has no torch equivalent")


class TrtEngine:
    """A deserialized engine and its execution context; runs named torch tensors on a given stream."""

    def __init__(self, trt: ModuleType, plan: bytes, *, label: str = "engine") -> None:
        self.trt = trt
        self.label = label
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise ExportError(
                f"TensorRT could not deserialize {label} (built by another TensorRT or for another GPU?); "
                "delete it from the cache to rebuild"
            )
        self.context = self.engine.create_execution_context()
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.dtypes: dict[str, torch.dtype] = {}
        self.dynamic: set[str] = set()
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append(name)
            self.dtypes[name] = trt_to_torch_dtype(trt, self.engine.get_tensor_dtype(name))
            if is_input and any(int(d) < 0 for d in self.engine.get_tensor_shape(name)):
                self.dynamic.add(name)

    def check_bindings(self, stage: Stage, stage_name: str) -> None:
        if self.inputs != list(stage.input_names) or self.outputs != list(stage.output_names):
            raise ShapeError(
                f"TensorRT engine for stage {stage_name!r} has inputs {self.inputs} and outputs {self.outputs}; "
                f"the stage declares {list(stage.input_names)} and {list(stage.output_names)}"
            )

    def run(self, inputs: Mapping[str, Tensor], stream: int, device: torch.device) -> dict[str, Tensor]:
        """Enqueue one inference on `stream` (a cudaStream_t as int); outputs are torch tensors on device."""
        keep = []
        for name in self.inputs:
            if name not in inputs:
                raise ShapeError(f"{self.label} needs input {name!r}; got {sorted(inputs)}")
            t = inputs[name]
            if t.dtype != self.dtypes[name]:
                raise ShapeError(f"{self.label} input {name!r} must be {self.dtypes[name]}, got {t.dtype}")
            t = t.to(device, non_blocking=True).contiguous()
            if name in self.dynamic and not self.context.set_input_shape(name, tuple(t.shape)):
                raise ShapeError(f"{self.label}: shape {tuple(t.shape)} of {name!r} is outside its profile")
            self.context.set_tensor_address(name, t.data_ptr())
            keep.append(t)
        outputs = {}
        for name in self.outputs:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=self.dtypes[name], device=device)
            self.context.set_tensor_address(name, out.data_ptr())
            outputs[name] = out
        if not self.context.execute_async_v3(stream):
            raise RuntimeError(f"TensorRT failed to enqueue {self.label}")
        return outputs


class TensorRTRunner(Runner):
    """TensorRT engines for a model's stages at one frame size, on one GPU."""

    name = "trt"
    max_in_flight = 2

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
        cache: ArtifactCache | None = None,
    ) -> None:
        super().__init__(stages, config, frame_size, device)
        calibration_video = calibration_video or config.calibration_video
        trt = import_tensorrt()
        if device.type != "cuda":
            raise BackendUnavailable(f"the TensorRT backend needs a CUDA device, not {device}")
        if config.precision not in TRT_PRECISIONS:
            raise ConfigError(f"precision {config.precision!r} is not a TensorRT precision {TRT_PRECISIONS}")
        if config.precision == "int8" and calibration_video is None:
            raise ConfigError("int8 on the trt backend needs a calibration video (real frames of your scenes)")
        self.trt = trt
        self.cache = cache if cache is not None else ArtifactCache(config.cache_dir)
        self.gpu = gpu_identity(device)
        height, width = frame_size
        model_name = config.model or "demo"
        self.engines: dict[str, TrtEngine] = {}
        # Builder, runtime and contexts work on the current GPU: make it this runner's (cuda:N)
        with torch.cuda.device(device):
            for stage_name, stage in stages.items():
                onnx_path, _ = onnx_artifact(
                    stage,
                    height,
                    width,
                    stage_name=stage_name,
                    model_name=model_name,
                    batch=config.batch,
                    dynamic_batch=config.batch > 1,
                    cache=self.cache,
                )
                problems = check_trt_ops(onnx.load(str(onnx_path)))
                if problems:
                    raise ExportError(
                        f"stage {stage_name!r} has operators TensorRT cannot parse: {'; '.join(problems)}"
                    )
                shapes = stage.input_shapes(height, width, config.batch)
                if config.batch > 1:
                    profiles = {n: ShapeProfile.batch(s, config.batch) for n, (s, _) in shapes.items()}
                else:
                    profiles = {n: ShapeProfile.static(s) for n, (s, _) in shapes.items()}

                def calibrator(trt_module, calib_cache, stage_name=stage_name):
                    frames = calibration_frames(calibration_video, frame_size, count=calibration_frames_count)
                    samples = calibration_samples(stages, stage_name, frames, frame_size)
                    batches = CalibrationBatcher(samples, stages[stage_name].input_names, config.batch)
                    return make_entropy_calibrator(trt_module, batches, device, calib_cache, log=self.cache.log)

                calibration_id = ""
                if calibration_video is not None:
                    st = os.stat(calibration_video)
                    calibration_id = f"{os.path.abspath(calibration_video)}:{st.st_size}:{st.st_mtime_ns}:"
                    calibration_id += f"{calibration_frames_count}"
                engine_path, _ = engine_artifact(
                    onnx_path,
                    label=f"{model_name}-{stage_name}-{height}x{width}-b{config.batch}",
                    precision=config.precision,
                    profiles=profiles,
                    gpu=self.gpu,
                    cache=self.cache,
                    calibrator_factory=calibrator,
                    calibration_id=calibration_id,
                    workspace_bytes=workspace_bytes,
                    trt=trt,
                )
                engine = TrtEngine(trt, engine_path.read_bytes(), label=f"{stage_name} engine {engine_path.name}")
                engine.check_bindings(stage, stage_name)
                self.engines[stage_name] = engine

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

"""The `onnx` backend: one ONNX Runtime InferenceSession per stage, tensors bound in place.

Artifacts come from the artifact cache (`vidseg.export.onnx.onnx_artifact`): exported, checked and validated
against PyTorch once per (stage code+weights, frame size, batch), then reused.

Providers are an explicit, ordered list (TensorRT EP, CUDA EP, CPU EP), defaulting to the runner's device:
CUDA EP on cuda, CPU EP on cpu. Nothing falls back silently: a requested provider that this onnxruntime lacks
raises BackendUnavailable listing those it has; a GPU session forbids ONNX Runtime's per-node CPU fallback
(`session.disable_cpu_ep_fallback`), and a session whose first provider is not the one asked for is refused.
`describe()` prints the providers actually in use.

Tensors stay where they are: inputs and preallocated outputs are torch tensors bound by data pointer through
IO binding (CUDA memory on cuda, host memory on cpu), so consecutive stages never round-trip through the host.
On CUDA, ONNX Runtime runs on its own stream: the runner waits for torch's current stream before a run, and
`run_with_iobinding` returns after the outputs are written.

The CPU EP uses one intra-op thread per physical core (SMT siblings do not help convolutions) and one
inter-op thread (stages are sequential graphs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor

from vidseg.config import EngineConfig
from vidseg.device import physical_cores
from vidseg.engine.backends.base import Runner
from vidseg.errors import BackendUnavailable, ConfigError, ShapeError
from vidseg.export.cache import ArtifactCache
from vidseg.export.onnx import np_to_torch_dtype, onnx_artifact
from vidseg.models.base import Stage

__all__ = ["OnnxRuntimeRunner", "default_providers", "ORT_TYPES"]

CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"

# ONNX Runtime's type strings -> numpy dtypes (the ones stages use)
ORT_TYPES = {
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
}


def default_providers(device: torch.device) -> list[str]:
    """CUDA EP on a GPU, CPU EP on the host. The TensorRT EP is opt-in (providers=[...])."""
    return [CUDA_EP] if device.type == "cuda" else [CPU_EP]


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime sessions for a model's stages at one frame size."""

    name = "onnx"
    max_in_flight = 1  # run_with_iobinding is synchronous

    def __init__(
        self,
        stages: dict[str, Stage],
        config: EngineConfig,
        frame_size: tuple[int, int],
        device: torch.device,
        *,
        providers: Sequence[str] | None = None,
        cache: ArtifactCache | None = None,
    ) -> None:
        super().__init__(stages, config, frame_size, device)
        providers = providers or config.providers
        self.providers = list(providers) if providers else default_providers(device)
        self._check_request()
        self.cache = cache if cache is not None else ArtifactCache(config.cache_dir)
        height, width = frame_size
        self.batch = config.batch
        self.sessions: dict[str, ort.InferenceSession] = {}
        self._outputs: dict[str, list[tuple[str, tuple[int | str, ...], np.dtype]]] = {}
        self._inputs: dict[str, list[tuple[str, np.dtype, tuple[int | str, ...]]]] = {}
        for stage_name, stage in stages.items():
            path, _ = onnx_artifact(
                stage,
                height,
                width,
                stage_name=stage_name,
                model_name=config.model or "demo",
                batch=self.batch,
                dynamic_batch=self.batch > 1,
                cache=self.cache,
            )
            session = self._session(str(path))
            self._check_io(stage_name, stage, session)
            self.sessions[stage_name] = session
        first = next(iter(self.sessions.values()), None)
        self.active_providers = first.get_providers() if first is not None else list(self.providers)

    # -- set-up ----------------------------------------------------------------------------------------------

    def _check_request(self) -> None:
        available = ort.get_available_providers()
        missing = [p for p in self.providers if p not in available]
        if missing:
            hint = " (pip install onnxruntime-gpu for CUDA/TensorRT)" if set(missing) & {CUDA_EP, TRT_EP} else ""
            raise BackendUnavailable(
                f"ONNX Runtime {ort.__version__} has no {', '.join(missing)}; it has {', '.join(available)}{hint}"
            )
        on_gpu = any(p in (CUDA_EP, TRT_EP) for p in self.providers)
        if on_gpu != (self.device.type == "cuda"):
            raise ConfigError(
                f"providers {self.providers} do not match device {self.device}: tensors are bound in place, so "
                "GPU providers need a cuda device and the CPU provider a cpu device"
            )
        precision = self.config.precision
        if precision == "fp16" and self.providers[0] != TRT_EP:
            raise ConfigError(
                "precision fp16 on the onnx backend needs the TensorRT execution provider first "
                "(providers=['TensorrtExecutionProvider', ...]); use fp32, or the trt backend"
            )
        if precision not in ("fp32", "fp16"):
            raise ConfigError(f"precision {precision!r} is not available on the onnx backend; use fp32 (or trt)")

    def _provider_options(self) -> list[tuple[str, dict[str, str]]]:
        index = self.device.index if self.device.index is not None else 0
        out = []
        for p in self.providers:
            if p == CUDA_EP:
                out.append((p, {"device_id": str(index)}))
            elif p == TRT_EP:
                out.append(
                    (
                        p,
                        {
                            "device_id": str(index),
                            "trt_fp16_enable": str(self.config.precision == "fp16"),
                            "trt_engine_cache_enable": "True",
                            "trt_engine_cache_path": str(self.cache.root / "ort-trt"),
                        },
                    )
                )
            else:
                out.append((p, {}))
        return out

    def _session(self, path: str) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if CPU_EP in self.providers:
            options.intra_op_num_threads = physical_cores()
        else:
            options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        provider_options = self._provider_options()
        try:
            session = ort.InferenceSession(
                path,
                options,
                providers=[p for p, _ in provider_options],
                provider_options=[o for _, o in provider_options],
            )
        except Exception as err:  # onnxruntime raises its own exception types
            raise BackendUnavailable(
                f"ONNX Runtime could not create a session with {self.providers} for {path}: {err}"
            ) from err
        used = session.get_providers()
        if not used or used[0] != self.providers[0]:
            raise BackendUnavailable(
                f"ONNX Runtime fell back to {used} instead of {self.providers}; refusing to run silently elsewhere"
            )
        return session

    def _check_io(self, stage_name: str, stage: Stage, session: ort.InferenceSession) -> None:
        height, width = self.frame_size
        declared = stage.input_shapes(height, width, self.batch)
        got_in = [(i.name, i.type) for i in session.get_inputs()]
        got_out = [(o.name, o.type) for o in session.get_outputs()]
        if [n for n, _ in got_in] != list(stage.input_names) or [n for n, _ in got_out] != list(stage.output_names):
            raise ShapeError(
                f"ONNX artifact for stage {stage_name!r} binds inputs {[n for n, _ in got_in]} and outputs "
                f"{[n for n, _ in got_out]}; the stage declares {list(stage.input_names)} and "
                f"{list(stage.output_names)}. Delete the cache entry in {self.cache.root} and retry"
            )
        self._inputs[stage_name] = []
        for name, type_str in got_in:
            want = np.dtype(torch.empty((), dtype=declared[name][1]).numpy().dtype)
            have = ORT_TYPES.get(type_str)
            if have != want:
                raise ShapeError(
                    f"stage {stage_name!r} input {name!r}: artifact takes {type_str}, stage declares {want}"
                )
            shape = tuple(next(i.shape for i in session.get_inputs() if i.name == name))
            self._inputs[stage_name].append((name, have, shape))
        self._outputs[stage_name] = []
        for out in session.get_outputs():
            dtype = ORT_TYPES.get(out.type)
            if dtype is None or not np.issubdtype(dtype, np.floating):
                raise ShapeError(f"stage {stage_name!r} output {out.name!r} has type {out.type}; expected float")
            self._outputs[stage_name].append((out.name, tuple(out.shape), dtype))

    # -- running ---------------------------------------------------------------------------------------------

    def run(self, stage: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        session = self.sessions[stage]
        binding = session.io_binding()
        device_type = "cuda" if self.device.type == "cuda" else "cpu"
        device_id = self.device.index or 0
        keep = []  # tensors bound by pointer must outlive the run
        batch = None
        for name, dtype, shape in self._inputs[stage]:
            if name not in inputs:
                raise ShapeError(f"stage {stage!r} needs input {name!r}; got {sorted(inputs)}")
            t = inputs[name]
            if t.dtype != np_to_torch_dtype(dtype):
                raise ShapeError(f"stage {stage!r} input {name!r} must be {dtype}, got {t.dtype}")
            if t.dim() != len(shape) or any(isinstance(d, int) and d != n for d, n in zip(shape, t.shape, strict=True)):
                raise ShapeError(
                    f"stage {stage!r} input {name!r} has shape {tuple(t.shape)}; this runner was built for "
                    f"{shape} (frame size {self.frame_size[0]}x{self.frame_size[1]})"
                )
            t = t.to(self.device, non_blocking=True).contiguous()
            batch = t.shape[0] if batch is None else batch
            keep.append(t)
            binding.bind_input(name, device_type, device_id, dtype, list(t.shape), t.data_ptr())
        outputs = {}
        for name, shape, dtype in self._outputs[stage]:
            concrete = [batch if isinstance(d, str) or d is None else d for d in shape]
            out = torch.empty(concrete, dtype=np_to_torch_dtype(dtype), device=self.device)
            binding.bind_output(name, device_type, device_id, dtype, concrete, out.data_ptr())
            outputs[name] = out
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        session.run_with_iobinding(binding)
        del keep
        return outputs

    def describe(self) -> str:
        return (
            f"{self.name} on {self.device} ({self.config.precision}; onnxruntime {ort.__version__}, "
            f"providers {' > '.join(self.active_providers)})"
        )

    def close(self) -> None:
        self.sessions.clear()

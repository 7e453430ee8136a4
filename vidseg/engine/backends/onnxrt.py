"""The `onnx` backend: one ONNX Runtime InferenceSession per stage, tensors bound in place.

Artifacts come from the artifact builder (`vidseg.export.builder`): exported, checked and validated against
PyTorch once per (stage code+weights, frame size, batch), cached, then reused; or from an export folder
(`vidseg.export.load_export`), graphs of fixed or dynamic height/width.

Providers are an explicit, ordered list (TensorRT EP, CUDA EP, CPU EP), defaulting to the runner's device:
CUDA EP on cuda, CPU EP on cpu. Nothing falls back silently: a requested provider that this onnxruntime lacks
raises BackendUnavailable listing those it has; a GPU session forbids ONNX Runtime's per-node CPU fallback
(`session.disable_cpu_ep_fallback`), and a session whose first provider is not the one asked for is refused.
`describe()` prints the providers actually in use.

Tensors stay where they are: inputs and preallocated outputs are torch tensors bound by data pointer through
IO binding (CUDA memory on cuda, host memory on cpu), so consecutive stages never round-trip through the host.
Output shapes come from the graph when its output dimensions are fixed (or the batch); a graph with dynamic
height/width is run once with ONNX Runtime allocating the outputs at each new input shape, to learn them.
On CUDA, ONNX Runtime runs on its own stream: the runner waits for torch's current stream before a run, and
`run_with_iobinding` returns after the outputs are written.

Session options (threads, optimisation level) come from `vidseg.export.ort_session`, as in export validation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor

from vidseg.config import EngineConfig
from vidseg.engine.backends.base import ArtifactRunner
from vidseg.errors import BackendUnavailable, ConfigError
from vidseg.export.ort_session import ORT_TYPES, check_session_io, np_to_torch_dtype, session_options
from vidseg.models.base import Stage

__all__ = ["OnnxRuntimeRunner", "default_providers"]

CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"
_NUMPY_TYPES = {dtype.name: dtype for dtype in ORT_TYPES.values()}  # "float32" -> np.float32, ...


def default_providers(device: torch.device) -> list[str]:
    """CUDA EP on a GPU, CPU EP on the host. The TensorRT EP is opt-in (providers=[...])."""
    return [CUDA_EP] if device.type == "cuda" else [CPU_EP]


class OnnxRuntimeRunner(ArtifactRunner):
    """ONNX Runtime sessions for a model's stages."""

    name = "onnx"
    format = "onnx"
    max_in_flight = 1  # run_with_iobinding is synchronous
    auto_devices = ("cpu", "cuda")
    auto_prebuilt_only = ("cpu",)
    auto_rank = 40

    def __init__(
        self,
        stages: dict[str, Stage],
        config: EngineConfig,
        frame_size: tuple[int, int],
        device: torch.device,
        *,
        providers: Sequence[str] | None = None,
        cache=None,
        artifacts=None,
    ) -> None:
        providers = providers or config.providers
        self.providers = list(providers) if providers else default_providers(device)
        self.sessions: dict[str, ort.InferenceSession] = {}
        self._outputs: dict[str, list[tuple[str, tuple[int | str | None, ...], np.dtype]]] = {}
        self._shapes: dict[tuple, list[list[int]]] = {}  # (stage, input shapes) -> output shapes, learnt
        super().__init__(stages, config, frame_size, device, artifacts=artifacts, cache=cache)
        first = next(iter(self.sessions.values()), None)
        self.active_providers = first.get_providers() if first is not None else list(self.providers)

    # -- set-up ----------------------------------------------------------------------------------------------

    @classmethod
    def request_for(cls, config, frame_size, device, **extra):
        return super().request_for(config, frame_size, device, precision="fp32", **extra)  # fp16: TensorRT EP's

    def check_request(self) -> None:
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
        options = session_options(on_cpu=CPU_EP in self.providers)
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

    def load(self, name: str, artifact) -> None:
        session = self._session(str(artifact.path))
        check_session_io(session, artifact.io, f"{artifact.path}; delete it to rebuild")
        self.sessions[name] = session
        self._outputs[name] = [(o.name, tuple(o.shape), ORT_TYPES[o.type]) for o in session.get_outputs()]

    # -- running ---------------------------------------------------------------------------------------------

    def run(self, stage: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        io = self.io[stage]
        io.check_inputs(inputs, f" (frame size {self.frame_size[0]}x{self.frame_size[1]})")
        session = self.sessions[stage]
        binding = session.io_binding()
        device_type = "cuda" if self.device.type == "cuda" else "cpu"
        device_id = self.device.index or 0
        keep = []  # tensors bound by pointer must outlive the run
        for decl in io.inputs:
            t = inputs[decl.name].to(self.device, non_blocking=True).contiguous()
            keep.append(t)
            binding.bind_input(decl.name, device_type, device_id, _NUMPY_TYPES[decl.dtype], list(t.shape),
                               t.data_ptr())
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        shapes = self._output_shapes(stage, binding, keep)
        outputs = {}
        for (name, _, dtype), shape in zip(self._outputs[stage], shapes, strict=True):
            out = torch.empty(shape, dtype=np_to_torch_dtype(dtype), device=self.device)
            binding.bind_output(name, device_type, device_id, dtype, shape, out.data_ptr())
            outputs[name] = out
        session.run_with_iobinding(binding)
        del keep
        return outputs

    def _output_shapes(self, stage: str, binding, inputs: list[Tensor]) -> list[list[int]]:
        """Output shapes for these inputs: from the graph when fixed but for the batch, else learnt once per
        input shape by a run in which ONNX Runtime allocates the outputs."""
        batch = inputs[0].shape[0]
        declared = [shape for _, shape, _ in self._outputs[stage]]
        if all(isinstance(d, int) or d == "batch" for shape in declared for d in shape):
            return [[batch if d == "batch" else d for d in shape] for shape in declared]
        key = (stage, *(tuple(t.shape) for t in inputs))
        if key not in self._shapes:
            device_type = "cuda" if self.device.type == "cuda" else "cpu"
            for name, _, _ in self._outputs[stage]:
                binding.bind_output(name, device_type, self.device.index or 0)
            self.sessions[stage].run_with_iobinding(binding)
            self._shapes[key] = [list(value.shape()) for value in binding.get_outputs()]
            binding.clear_binding_outputs()
        return self._shapes[key]

    def describe(self) -> str:
        return (
            f"{self.name} on {self.device} ({self.config.precision}; onnxruntime {ort.__version__}, "
            f"providers {' > '.join(self.active_providers)})"
        )

    def close(self) -> None:
        self.sessions.clear()

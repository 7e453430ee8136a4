"""A deserialized TensorRT engine run on torch tensors: the runtime half of TensorRT, shared by the builder
(which validates a fresh engine against PyTorch) and the `trt` runner.

A run binds torch tensors by address (`set_tensor_address`): inputs as given (uint8 frames stay uint8: TensorRT 10
takes UINT8 inputs), outputs freshly allocated by torch, and `execute_async_v3` is enqueued on the given stream
(torch's current one in the runner), without host synchronisation and without pycuda.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType

import torch
from torch import Tensor

from vidseg.errors import ExportError, ShapeError

__all__ = ["TrtEngine", "trt_to_torch_dtype"]


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

    def check_bindings(self, declared, stage_name: str) -> None:
        """The engine's I/O names equal the declaration's (a Stage or a StageIO: anything with input_names and
        output_names), in order."""
        if self.inputs != list(declared.input_names) or self.outputs != list(declared.output_names):
            raise ShapeError(
                f"TensorRT engine for stage {stage_name!r} has inputs {self.inputs} and outputs {self.outputs}; "
                f"the stage declares {list(declared.input_names)} and {list(declared.output_names)}"
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

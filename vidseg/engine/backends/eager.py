"""The `torch` backend: eager PyTorch stages on CPU or CUDA.

Precision: fp32 runs the stages as they are; fp16 / bf16 run them under autocast (uint8 images stay uint8 and
are normalised inside the stage; float inputs such as motion are cast by autocast where an op needs it), or, with
`cast=True`, with the stage's parameters cast to that dtype and float inputs cast to match (faster on GPUs, a
little less accurate). int8 is a TensorRT precision and is refused here.

Stage modules are moved to the runner's device (and memory format) in place: stages of one model share their
parameters, and moving each once keeps them shared.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from vidseg.config import EngineConfig
from vidseg.engine.backends.base import Runner
from vidseg.errors import ConfigError
from vidseg.models.base import Stage

__all__ = ["EagerRunner", "DTYPES"]

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _channels_last(module: torch.nn.Module) -> None:
    """4-D parameters and buffers (conv weights) in channels_last, in place; other ranks stay as they are
    (`Module.to(memory_format=...)` refuses modules holding 5-D tensors)."""
    with torch.no_grad():
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.dim() == 4:
                tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)


class EagerRunner(Runner):
    """Eager PyTorch, inference_mode, optional channels_last and reduced precision."""

    name = "torch"
    max_in_flight = 2
    auto_devices = ("cpu", "cuda")
    auto_rank = 30

    def __init__(self, stages: dict[str, Stage], config: EngineConfig, frame_size: tuple[int, int],
                 device: torch.device, *, cast: bool = False, warmup: bool = True) -> None:
        super().__init__(stages, config, frame_size, device)
        if config.precision not in DTYPES:
            raise ConfigError(
                f"precision {config.precision!r} is not available on the {self.name!r} backend; it needs the "
                "TensorRT backend (--engine trt) with a calibration set; use fp32, fp16 or bf16 here"
            )
        self.dtype = DTYPES[config.precision]
        self.cast = cast and self.dtype != torch.float32
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        for stage in stages.values():
            stage.eval()
            stage.to(device=device, dtype=self.dtype if self.cast else None)
            if config.channels_last:
                _channels_last(stage)
        if warmup:
            self.warm_up()

    def warm_up(self) -> None:
        """One call of every stage at the frame size, so one-time costs (the first custom-op call imports
        torch._dynamo, ~5 s on CPU; cuDNN algorithm choice; allocator growth) are paid here, not as a latency
        spike on the first keyframe or non-keyframe of a stream."""
        height, width = self.frame_size
        for name, stage in self.stages.items():
            try:
                example = stage.input_shapes(height, width)
            except NotImplementedError:  # a stage that cannot describe its inputs is warmed by its first frame
                continue
            self.run(name, dict(zip(example, stage.example_inputs(height, width), strict=True)))

    def _autocast(self):
        if self.dtype == torch.float32 or self.cast:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def prepare_inputs(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Move to the device, in the runner's memory format; cast float inputs when the stage is cast."""
        out = {}
        for name, tensor in inputs.items():
            tensor = tensor.to(self.device, non_blocking=True)
            if tensor.dim() == 4 and self.memory_format is torch.channels_last:
                tensor = tensor.contiguous(memory_format=torch.channels_last)
            if self.cast and tensor.is_floating_point():
                tensor = tensor.to(self.dtype)
            out[name] = tensor
        return out

    def run(self, stage: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        module = self.stages[stage]
        inputs = self.prepare_inputs(inputs)
        with torch.inference_mode(), self._autocast():
            return module.run(**inputs)

    def describe(self) -> str:
        how = "cast" if self.cast else ("autocast" if self.dtype != torch.float32 else "")
        layout = ", channels_last" if self.memory_format is torch.channels_last else ""
        return f"{self.name} on {self.device} ({self.config.precision}{' ' + how if how else ''}{layout})"

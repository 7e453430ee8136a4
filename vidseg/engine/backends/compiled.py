"""The `compile` backend: each stage through torch.compile (Inductor); on CUDA with CUDA graphs.

Shapes are fixed per runner (dynamic=False), so on CUDA mode="reduce-overhead" records one CUDA graph per stage
and input shape and replays it, which removes the per-kernel launch cost that dominates small real-time models.
CUDA-graph outputs live in memory the next replay overwrites, so outputs are cloned before they are returned
(the engine keeps some of them as state: keyframe features, previous logits).

Compilation happens on the first call of each stage (tens of seconds on a small CPU); a compiler failure is
raised as BackendUnavailable, never replaced by eager execution behind the user's back.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import Tensor

from vidseg.config import EngineConfig
from vidseg.engine.backends.eager import EagerRunner
from vidseg.errors import BackendUnavailable
from vidseg.models.base import Stage

__all__ = ["CompiledRunner"]


class CompiledRunner(EagerRunner):
    name = "compile"
    auto_devices = ("cuda",)  # on a CPU its compile takes minutes per stage and is not kept across runs
    auto_rank = 20

    def __init__(self, stages: dict[str, Stage], config: EngineConfig, frame_size: tuple[int, int],
                 device: torch.device, *, mode: str | None = None, cast: bool | None = None) -> None:
        if device.type == "cuda" and importlib.util.find_spec("triton") is None:
            raise BackendUnavailable("the compile backend on CUDA needs Triton: pip install triton")
        # On CUDA the stage is cast rather than autocast: fewer casts inside the graph. Casting changes the
        # stages' (shared) weights in place, so they are restored if compiling fails: `--engine auto` then
        # runs the next backend on the weights as they were, not on fp16-rounded ones.
        cast = (device.type == "cuda") if cast is None else cast
        saved = _snapshot(stages) if cast and config.precision != "fp32" else None
        try:
            super().__init__(stages, config, frame_size, device, cast=cast, warmup=False)
            self.mode = mode or ("reduce-overhead" if device.type == "cuda" else "default")
            self.cuda_graphs = device.type == "cuda" and self.mode in ("reduce-overhead", "max-autotune")
            self._compiled = {
                name: torch.compile(stage, mode=self.mode, dynamic=False, fullgraph=False)
                for name, stage in stages.items()
            }
            self.warm_up()  # compile (and record CUDA graphs) now, not on the first frames of a stream
        except BaseException:
            if saved is not None:
                _restore(saved)
            raise

    def run(self, stage: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        module = self.stages[stage]
        inputs = self.prepare_inputs(inputs)
        args = [inputs[n] for n in module.input_names]
        try:
            with torch.inference_mode(), self._autocast():
                if self.cuda_graphs:
                    torch.compiler.cudagraph_mark_step_begin()
                outputs = self._compiled[stage](*args)
        except Exception as err:
            if type(err).__module__.startswith("torch._dynamo") or type(err).__name__ == "BackendCompilerFailed":
                raise BackendUnavailable(
                    f"torch.compile could not compile stage {stage!r} on {self.device}: {err}. Use --engine torch, "
                    "or install a C++ compiler (CPU) / Triton (CUDA) for Inductor"
                ) from err
            raise
        if self.cuda_graphs:
            outputs = tuple(o.clone() for o in outputs)
        return dict(zip(module.output_names, outputs, strict=True))

    def describe(self) -> str:
        return super().describe().replace(self.name, f"{self.name} [{self.mode}]", 1)


def _snapshot(stages: dict[str, Stage]) -> list[tuple[Tensor, Tensor]]:
    """Every parameter and buffer of the stages (shared ones once) with a copy of its data."""
    seen: dict[int, tuple[Tensor, Tensor]] = {}
    for stage in stages.values():
        for tensor in (*stage.parameters(), *stage.buffers()):
            seen.setdefault(id(tensor), (tensor, tensor.data.clone()))
    return list(seen.values())


def _restore(saved: list[tuple[Tensor, Tensor]]) -> None:
    with torch.no_grad():
        for tensor, data in saved:
            tensor.data = data

"""The `aoti` backend: each stage as an AOTInductor package (`.pt2`) compiled ahead of time and cached.

Packages come from `vidseg.export.aoti.aoti_artifact` (torch.export with vidseg's custom ops decomposed to the
reference, then AOTInductor), validated against the eager stage when built and loaded with
`torch._inductor.aoti_load_package`, which needs no model code. Compilation takes tens of seconds per stage on
a small CPU, once per (stage code+weights, frame size, batch, precision, device, torch version).

Precision: fp32 everywhere; fp16 / bf16 on CUDA, where float inputs are cast to that dtype on the way in
(uint8 frames stay uint8) and outputs come back in it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidseg.config import EngineConfig
from vidseg.engine.backends.base import Runner
from vidseg.errors import ShapeError
from vidseg.export.aoti import AOTI_DTYPES, aoti_artifact, load_aoti
from vidseg.export.cache import ArtifactCache
from vidseg.models.base import Stage

__all__ = ["AOTInductorRunner"]


class AOTInductorRunner(Runner):
    name = "aoti"
    max_in_flight = 1

    def __init__(
        self,
        stages: dict[str, Stage],
        config: EngineConfig,
        frame_size: tuple[int, int],
        device: torch.device,
        *,
        cache: ArtifactCache | None = None,
    ) -> None:
        super().__init__(stages, config, frame_size, device)
        self.cache = cache if cache is not None else ArtifactCache(config.cache_dir)
        height, width = frame_size
        self.packages = {}
        for stage_name, stage in stages.items():
            path, _ = aoti_artifact(
                stage,
                height,
                width,
                stage_name=stage_name,
                model_name=config.model or "demo",
                batch=config.batch,
                dynamic_batch=config.batch > 1,
                device=device,
                precision=config.precision,
                cache=self.cache,
            )
            self.packages[stage_name] = load_aoti(path, device)
        self.dtype = AOTI_DTYPES[config.precision]

    def run(self, stage: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        module = self.stages[stage]
        args = []
        for name in module.input_names:
            if name not in inputs:
                raise ShapeError(f"stage {stage!r} needs input {name!r}; got {sorted(inputs)}")
            t = inputs[name].to(self.device, non_blocking=True)
            args.append((t.to(self.dtype) if t.is_floating_point() else t).contiguous())
        outputs = self.packages[stage](*args)
        return dict(zip(module.output_names, outputs, strict=True))

    def describe(self) -> str:
        return f"{self.name} on {self.device} ({self.config.precision}; AOTInductor, torch {torch.__version__})"

    def close(self) -> None:
        self.packages.clear()

"""The `aoti` backend: each stage as an AOTInductor package (`.pt2`) compiled ahead of time.

Packages come from the artifact builder (`vidseg.export.builder`: torch.export, then AOTInductor, validated
against the eager stage and cached), or from an export folder (`vidseg.export.load_export`);
`torch._inductor.aoti_load_package` runs them with no model code (on a CPU they call vidseg's kernels for the warp
and CReFF, `vidseg.export.aoti`).
Compilation takes tens of seconds per stage on a small CPU, once per (stage code+weights, frame size, batch,
precision, device, torch version).

Precision: fp32 everywhere; fp16 / bf16 on CUDA, where float inputs are cast to that dtype on the way in
(uint8 frames stay uint8) and outputs come back in it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidseg.engine.backends.base import ArtifactRunner
from vidseg.export.aoti import check_precision, load_aoti

__all__ = ["AOTInductorRunner"]


class AOTInductorRunner(ArtifactRunner):
    name = "aoti"
    format = "aoti"
    max_in_flight = 1
    auto_devices = ("cpu", "cuda")
    auto_prebuilt_only = ("cpu", "cuda")
    auto_rank = 45

    def __init__(self, *args, **kwargs) -> None:
        self.packages = {}
        super().__init__(*args, **kwargs)

    def check_request(self) -> None:
        self.dtype = check_precision(self.config.precision, self.device)

    def load(self, name: str, artifact) -> None:
        self.packages[name] = load_aoti(artifact.path, self.device)

    def run(self, stage: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        io = self.io[stage]
        io.check_inputs(inputs, any_float=True)  # float inputs are cast to the package's dtype below
        args = []
        for name in io.input_names:
            t = inputs[name].to(self.device, non_blocking=True)
            args.append((t.to(self.dtype) if t.is_floating_point() else t).contiguous())
        outputs = self.packages[stage](*args)
        return dict(zip(io.output_names, outputs, strict=True))

    def describe(self) -> str:
        return f"{self.name} on {self.device} ({self.config.precision}; AOTInductor, torch {torch.__version__})"

    def close(self) -> None:
        self.packages.clear()

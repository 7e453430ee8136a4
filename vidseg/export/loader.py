"""Running an export folder on its own: the manifest gives the spec, method and stage declarations, and the
artifacts become a Runner, with no PyTorch model rebuilt (as `yolo predict model=x.engine` runs an engine).

    exported = load_export("deploy/")              # checks the manifest and every file's checksum
    exported.spec, exported.method, exported.stages # ModelSpec, "arseg", {"key": StageIO, ...}
    runner = exported.build_runner("cuda")          # OnnxRuntimeRunner / TensorRTRunner / AOTInductorRunner
    runner.run("key", {"image": frames})            # the Runner interface (vidseg.engine.backends.base)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidseg.errors import BackendUnavailable, ConfigError
from vidseg.export.builder import StageArtifact
from vidseg.export.manifest import SPEC_FIELDS, read_manifest
from vidseg.export.stageio import StageIO
from vidseg.models.base import ModelSpec

__all__ = ["ExportedModel", "load_export"]


@dataclass(frozen=True)
class ExportedModel:
    """An export folder, checked. `spec.methods` are the methods its stages can run; `method` is the one it was
    exported for (the default to run); `warp_convention` is the model's motion convention (AR-Seg's "arseg", or
    "exact"), which decides how codec motion is resized for the nonkey stage."""

    root: Path
    manifest: Mapping[str, Any]
    model_name: str
    spec: ModelSpec
    method: str
    format: str
    precision: str
    frame_size: tuple[int, int]
    batch: int
    dynamic_size: bool
    warp_convention: str
    stages: dict[str, StageIO]
    artifacts: dict[str, StageArtifact]

    @property
    def methods(self) -> tuple[str, ...]:
        return self.spec.methods

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The stages the folder holds (what a method may run)."""
        return tuple(self.stages)

    @property
    def fixed_input_size(self) -> tuple[int, int] | None:
        """(H, W) every frame must have for these artifacts (the engine resizes frames to it), or None for a
        dynamic-size export that takes any size."""
        return None if self.dynamic_size else self.frame_size

    def make_runner(self, config, frame_size: tuple[int, int], device: torch.device):
        """The engine's hook: a model that carries its own compiled artifacts builds its runner from them (at
        the precision they were built for: it is a property of the artifacts, not a choice left at run time)."""
        return self.build_runner(config=config.replace(device=str(device), precision=self.precision))

    def build_runner(self, device: torch.device | str = "auto", *, config=None, **options: Any):
        """A Runner over the artifacts on `device` (or config.device when a config is given).

        config: an EngineConfig (device, providers, cache_dir are used); its backend must be "auto" or this
        folder's format, and for trt/aoti its precision the one the artifacts were built with (ONNX graphs are
        fp32; the onnx backend's fp16 is ONNX Runtime's TensorRT provider). options: backend keyword arguments
        (e.g. providers=[...] for onnx).
        """
        from vidseg.config import EngineConfig
        from vidseg.device import resolve_device
        from vidseg.engine.backends.base import runner_class

        if config is None:
            config = EngineConfig(model=self.model_name, method=self.method, backend=self.format,
                                  precision=self.precision, device=str(device), batch=self.batch)
        if config.backend not in ("auto", self.format):
            raise ConfigError(
                f"{self.root} holds {self.format} artifacts; run them with backend {self.format} or auto, "
                f"not {config.backend}"
            )
        if self.format != "onnx" and config.precision != self.precision:
            raise ConfigError(
                f"{self.root} holds {self.format} artifacts built for {self.precision}, not {config.precision}; "
                f"run them at {self.precision} or export again with --precision {config.precision}"
            )
        device = resolve_device(config.device)
        self._check_runtime(device)
        config = config.replace(backend=self.format, model=self.model_name, batch=self.batch)
        return runner_class(self.format)({}, config, self.frame_size, device, artifacts=self.artifacts, **options)

    def _check_runtime(self, device: torch.device) -> None:
        """The runtime here can load these artifacts: same TensorRT, same torch for AOTInductor, same device type."""
        built = self.manifest.get("versions", {})
        if self.format == "trt":
            from vidseg.export.tensorrt import import_tensorrt

            have = str(import_tensorrt().__version__)
            if built.get("tensorrt") not in (None, have):
                raise BackendUnavailable(
                    f"the engines in {self.root} were built with TensorRT {built['tensorrt']}; this is TensorRT "
                    f"{have}: export again on this machine (engines are specific to a TensorRT version and GPU)"
                )
        if self.format == "aoti":
            if built.get("torch") not in (None, torch.__version__):
                raise BackendUnavailable(
                    f"the packages in {self.root} were compiled with torch {built['torch']}; this is torch "
                    f"{torch.__version__}: export again with this torch"
                )
            compiled_for = torch.device(self.manifest.get("device", "cpu")).type
            if compiled_for != device.type:
                raise ConfigError(
                    f"the packages in {self.root} were compiled for {compiled_for}; run them there (--device "
                    f"{compiled_for}) or export again for {device.type}"
                )


def load_export(folder: str | os.PathLike, *, verify: bool = True) -> ExportedModel:
    """Read and check an export folder written by vidseg-export (see `vidseg.export.manifest`).

    A missing folder or manifest, another manifest version, a hand-edited field or a changed artifact is a
    one-line InputError. verify: check each artifact's sha256 (reads every file once).
    """
    root = Path(folder)
    data = read_manifest(root, verify=verify)
    class_names = data["spec"].get("class_names")
    fields = {k: data["spec"][k] for k in SPEC_FIELDS if k in data["spec"]}
    spec = ModelSpec(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()},
        methods=tuple(data["methods"]) or (data["method"],),
        extra={"class_names": tuple(class_names)} if class_names else {},
    )
    stages = {name: StageIO.from_json(name, entry) for name, entry in data["stages"].items()}
    artifacts = {
        name: StageArtifact(
            stage=name,
            format=data["format"],
            path=root / entry["file"],
            io=stages[name],
            precision=data["precision"],
            onnx=root / entry["onnx"]["file"] if entry.get("onnx") else None,
            details=entry.get("build"),
        )
        for name, entry in data["stages"].items()
    }
    return ExportedModel(
        root=root,
        manifest=data,
        model_name=data["model"],
        spec=spec,
        method=data["method"],
        format=data["format"],
        precision=data["precision"],
        frame_size=(data["frame_size"][0], data["frame_size"][1]),
        batch=data["batch"],
        dynamic_size=data["dynamic_size"],
        warp_convention=data["motion"]["warp_convention"],
        stages=stages,
        artifacts=artifacts,
    )

"""The artifact builder: model stages -> exported, validated, stored artifacts, for every format, in one place.

    request = BuildRequest("trt", (1024, 2048), precision="int8", device="cuda", calibration=Calibration("a.mp4"))
    artifacts = ArtifactBuilder(request, ArtifactCache()).build(stages)                  # runners: cached
    artifacts = ArtifactBuilder(request, ExportFolder("deploy")).build(stages, names)    # vidseg-export: a folder

Per stage and format:
    onnx   export (`vidseg.export.onnx.export_onnx`), check, validate with ONNX Runtime against PyTorch
    trt    the onnx artifact, TensorRT's operator check, one profile per input (static, or batch 1..N), int8
           calibrator on video frames, engine build with a shared timing cache; on a GPU the fresh engine's
           figures against PyTorch are recorded (reduced precision moves logits by design: reported, not refused)
    aoti   torch.export + AOTInductor package, validated against the stage on the same device and dtype

The store decides where files go: an `ArtifactCache` keys each artifact by what determines it (stage fingerprint,
shapes, precision, runtime version, device; for engines the ONNX bytes, GPU, TensorRT version and calibration
frames) and reuses only what verifies; an `ExportFolder` writes readable names and always builds. Both write to a
temporary name renamed when complete. Runners and `vidseg-export` call nothing else to get artifacts.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import torch

from vidseg.errors import ConfigError, ExportError, InputError
from vidseg.export.cache import ArtifactCache, ArtifactKey, file_sha256, stage_key
from vidseg.export.files import ExportFolder
from vidseg.export.formats import DEFAULT_OPSET, get_format
from vidseg.export.stageio import BATCH, StageIO, TensorDecl, dtype_name
from vidseg.models.base import Stage

__all__ = ["ArtifactBuilder", "BuildRequest", "Calibration", "StageArtifact"]

Store = ArtifactCache | ExportFolder


@dataclass(frozen=True)
class Calibration:
    """Frames for int8 calibration: every `stride`-th frame of `video`, at most `frames` of them."""

    video: str
    frames: int = 64
    stride: int = 5

    def identity(self) -> str:
        """What names these frames in a cache key: the file (path, size, mtime) and how it is sampled."""
        try:
            st = os.stat(self.video)
        except OSError as err:
            raise InputError(
                f"calibration video {self.video} cannot be read ({err.strerror}); pass an existing video"
            ) from err
        return f"{os.path.abspath(self.video)}:{st.st_size}:{st.st_mtime_ns}:{self.frames}:{self.stride}"


@dataclass(frozen=True)
class BuildRequest:
    """What to build: one format, at one frame size (the traced and validated one), precision, batch, device.

    batch > 1 gives a dynamic batch 1..batch; dynamic_size gives dynamic height/width (formats that allow it,
    see `vidseg.export.formats`). model_name labels files and cache entries.
    """

    format: str
    frame_size: tuple[int, int]
    precision: str = "fp32"
    batch: int = 1
    dynamic_size: bool = False
    device: str = "cpu"
    model_name: str = "model"
    calibration: Calibration | None = None
    workspace_bytes: int | None = None
    portable: bool = False  # aoti on a CPU: packages that run with torch alone (slower; `vidseg.export.aoti`)

    def __post_init__(self) -> None:
        fmt = get_format(self.format)
        if self.precision not in fmt.precisions:
            raise ConfigError(
                f"{self.format} artifacts come in {', '.join(fmt.precisions)}, not {self.precision}"
                + (" (reduced precision is chosen when TensorRT builds the engine)" if self.format == "onnx" else "")
            )
        if self.dynamic_size and not fmt.dynamic_size:
            raise ConfigError(
                f"{self.format} artifacts have a fixed height/width; dynamic sizes need --format onnx "
                "(vidseg-export --list-formats)"
            )
        if self.batch < 1:
            raise ConfigError(f"batch must be >= 1, got {self.batch}")
        if self.precision == "int8" and self.calibration is None:
            raise ConfigError("int8 needs calibration frames: pass a video (--calib VIDEO) of the scenes you will run")

    @property
    def dynamic_batch(self) -> bool:
        return self.batch > 1

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def size_label(self) -> str:
        height, width = self.frame_size
        return f"{height}x{width}" + ("-dynhw" if self.dynamic_size else "")


@dataclass(frozen=True)
class StageArtifact:
    """One stage's artifact: its file, its I/O declaration and, when built by this call, what the build reported
    (JSON-ready: exporter, seconds, validation figures, ...); `details` is None when the cache already had it."""

    stage: str
    format: str
    path: Path
    io: StageIO
    precision: str
    onnx: Path | None = None  # trt: the ONNX graph the engine was built from
    details: Mapping[str, object] | None = None


class ArtifactBuilder:
    """Builds (or finds) the artifacts of a `BuildRequest` in a store; see the module docstring.

    trt, gpu: a stand-in `tensorrt` module and (name, "sm_XY") for tests; by default the real ones.
    """

    def __init__(self, request: BuildRequest, store: Store, *, log: Callable[[str], None] | None = None,
                 trt: ModuleType | None = None, gpu: tuple[str, str] | None = None) -> None:
        self.request = request
        self.store = store
        self.log = log if log is not None else store.log
        self._trt = trt
        self._gpu = gpu

    def build(self, stages: Mapping[str, Stage], names: Sequence[str] | None = None) -> dict[str, StageArtifact]:
        """Artifacts of `names` (default: every stage), in that order. Fails before any export when the format
        cannot be built here (TensorRT missing, no GPU, a precision the device lacks)."""
        names = list(stages) if names is None else list(names)
        missing = [n for n in names if n not in stages]
        if missing:
            raise ConfigError(f"no stages {missing} to export; the model has {list(stages)}")
        build_one = {"onnx": self._onnx, "trt": self._engine, "aoti": self._aoti}[self.request.format]
        self.check_can_build()
        return {name: build_one(name, stages[name].eval(), stages) for name in names}

    def is_built(self, stages: Mapping[str, Stage], names: Sequence[str] | None = None) -> bool:
        """Whether the store already holds every artifact (loading them exports nothing). TensorRT engines are
        keyed by their ONNX bytes, so they count as not built."""
        if self.request.format == "trt" or not hasattr(self.store, "lookup"):
            return False
        suffix = {"onnx": ".onnx", "aoti": ".pt2"}[self.request.format]
        names = list(stages) if names is None else list(names)
        return all(self.store.lookup(self._key(n, stages[n], self.request.format), suffix, use=False) is not None
                   for n in names)

    def _key(self, name: str, stage: Stage, kind: str):
        """The cache key of one stage's "onnx" artifact (also the first step of a TensorRT build) or "aoti" one."""
        from vidseg.export.program import CREFF_LOWERING

        r = self.request
        height, width = r.frame_size
        if kind == "onnx":
            # The exporters' versions from their metadata: importing them costs ~1.4 s, which `--engine auto`
            # would pay at every start just to see whether ONNX artifacts are in the cache.
            return stage_key("onnx", stage, stage_name=name, model_name=r.model_name, height=height, width=width,
                             batch=r.batch, dynamic_batch=r.dynamic_batch, precision="fp32",
                             dynamic_size=r.dynamic_size, opset=DEFAULT_OPSET, onnx=version("onnx"),
                             onnxscript=version("onnxscript"), creff=CREFF_LOWERING)
        from vidseg.export.aoti import AOTI_DTYPES, conv_algorithm, device_label, op_lowering

        conv = conv_algorithm(r.torch_device, AOTI_DTYPES.get(r.precision, torch.float32))
        return stage_key("aoti", stage, stage_name=name, model_name=r.model_name, height=height, width=width,
                         batch=r.batch, dynamic_batch=r.dynamic_batch, precision=r.precision,
                         device=device_label(r.torch_device), creff=op_lowering(r.torch_device, r.portable),
                         **({} if conv == "direct" else {"conv": conv}))

    # -- per format ------------------------------------------------------------------------------------------

    def check_can_build(self) -> None:
        """Refuse, before any export, what cannot be built here (TensorRT missing, no GPU, a precision the device
        lacks, a store that cannot be written)."""
        r = self.request
        if r.format == "trt":
            self.tensorrt()
            if self._gpu is None and r.torch_device.type != "cuda":
                raise ConfigError(f"building a TensorRT engine needs a CUDA device, not {r.device} (--device cuda)")
        if r.format == "aoti":
            from vidseg.export.aoti import check_precision

            check_precision(r.precision, r.torch_device)
        self.store.prepare(r.format)

    def _onnx(self, name: str, stage: Stage, stages: Mapping[str, Stage] | None = None) -> StageArtifact:
        from vidseg.export.onnx import export_onnx

        r = self.request
        height, width = r.frame_size
        key = self._key(name, stage, "onnx")

        def build(tmp: Path):
            return export_onnx(stage, tmp, height, width, stage_name=name, batch=r.batch,
                               dynamic_batch=r.dynamic_batch, dynamic_size=r.dynamic_size, log=self.log)

        path, report = self.store.get_or_build(key, ".onnx", build)
        io = StageIO.of_stage(name, stage, height, width, r.batch, dynamic_batch=r.dynamic_batch,
                              dynamic_size=r.dynamic_size)
        details = None
        if report is not None:
            io = io.with_shapes(report.inputs, report.outputs)
            validation = report.validation.to_json() if report.validation else None
            details = {"exporter": report.exporter, "opset": report.opset, "seconds": round(report.seconds, 2),
                       "validation": validation, "trt_problems": list(report.trt_problems),
                       "fallback_reason": report.fallback_reason}
            summary = report.validation.summary() if report.validation else "skipped"
            self.log(f"onnx: {name} exported with {report.exporter} in {report.seconds:.1f}s; validation {summary}")
        return StageArtifact(name, "onnx", path, io, "fp32", details=details)

    def _engine(self, name: str, stage: Stage, stages: Mapping[str, Stage]) -> StageArtifact:
        import onnx

        from vidseg.export import tensorrt as vtrt
        from vidseg.export.trt_check import check_trt_ops

        r = self.request
        graph = self._onnx(name, stage)
        problems = check_trt_ops(onnx.load(str(graph.path)))
        if problems:
            raise ExportError(f"stage {name!r} has operators TensorRT cannot parse: {'; '.join(problems)}")
        trt = self.tensorrt()
        gpu_name, capability = self.gpu()
        height, width = r.frame_size
        shapes = {n: s for n, (s, _) in stage.input_shapes(height, width, r.batch).items()}
        profiles = vtrt.input_profiles(shapes, r.batch)
        fields = {
            "onnx_sha256": file_sha256(graph.path),
            "precision": r.precision,
            "profiles": [f"{n}:{p.min}:{p.opt}:{p.max}" for n, p in sorted(profiles.items())],
            "tensorrt": str(trt.__version__),
            "gpu": gpu_name,
            "capability": capability,
            "calibration": r.calibration.identity() if r.precision == "int8" else "",
            "workspace": r.workspace_bytes or 0,
        }
        label = f"{r.model_name}-{name}-{r.size_label}-b{r.batch}-{r.precision}-{capability}"
        key = ArtifactKey("trt", label, fields)
        slug = "".join(c if c.isalnum() else "_" for c in f"{trt.__version__}-{gpu_name}-{capability}")
        timing = self.store.side_file("trt", f"timing-{slug}.cache")
        calib_cache = self.store.side_file("trt", f"calib-{key.digest[:16]}.cache")

        def build(tmp: Path):
            calibrator = None
            if r.precision == "int8":
                frames = vtrt.calibration_frames(r.calibration.video, r.frame_size, count=r.calibration.frames,
                                                 stride=r.calibration.stride)
                samples = vtrt.calibration_samples(stages, name, frames, r.frame_size)
                batches = vtrt.CalibrationBatcher(samples, stage.input_names, r.batch)
                calibrator = vtrt.make_entropy_calibrator(trt, batches, r.torch_device, calib_cache, log=self.log)
            return vtrt.build_engine(graph.path, tmp, precision=r.precision, profiles=profiles,
                                     calibrator=calibrator, timing_cache=timing, workspace_bytes=r.workspace_bytes,
                                     trt=trt, log=self.log)

        path, report = self.store.get_or_build(key, ".engine", build)
        details = None
        if report is not None:
            details = {**(graph.details or {}), "seconds": round(report.seconds, 2),
                       "tensorrt": report.tensorrt_version, "gpu": f"{gpu_name} {capability}",
                       "calibration_batches": report.calibration_batches,
                       "validation": self._check_engine(trt, path, name, stage)}
        return StageArtifact(name, "trt", path, graph.io, r.precision, onnx=graph.path, details=details)

    def _check_engine(self, trt: ModuleType, path: Path, name: str, stage: Stage) -> dict | None:
        """The fresh engine against the PyTorch stage on the GPU: figures recorded, a shortfall only logged."""
        r = self.request
        if r.torch_device.type != "cuda":  # a stand-in TensorRT in tests: nothing real to compare
            return None
        from vidseg.export.trt_engine import TrtEngine
        from vidseg.export.validate import REDUCED_TOLERANCE, compare_outputs, validation_inputs

        device = r.torch_device
        engine = TrtEngine(trt, path.read_bytes(), label=f"{name} engine")
        height, width = r.frame_size
        reference = copy.deepcopy(stage).to(device)  # the model's stages share modules: leave them where they are

        def run_engine(*inputs):
            with torch.cuda.device(device):
                out = engine.run(dict(zip(stage.input_names, inputs, strict=True)),
                                 torch.cuda.current_stream(device).cuda_stream, device)
                torch.cuda.current_stream(device).synchronize()
            return [out[n] for n in stage.output_names]

        input_sets = [tuple(t.to(device) for t in s) for s in validation_inputs(stage, height, width, batch=r.batch)]
        report = compare_outputs(reference, run_engine, stage.output_names, input_sets, tolerance=REDUCED_TOLERANCE)
        self.log(f"tensorrt: {name} ({r.precision}) vs PyTorch: {report.summary()}")
        return report.to_json()

    def _aoti(self, name: str, stage: Stage, stages: Mapping[str, Stage] | None = None) -> StageArtifact:
        from vidseg.export.aoti import AOTI_DTYPES, compile_aoti

        r = self.request
        height, width = r.frame_size
        device = r.torch_device
        key = self._key(name, stage, "aoti")

        def build(tmp: Path):
            return compile_aoti(stage, tmp, height, width, stage_name=name, batch=r.batch,
                                dynamic_batch=r.dynamic_batch, device=device, precision=r.precision,
                                portable=r.portable, log=self.log)

        path, report = self.store.get_or_build(key, ".pt2", build)
        io = StageIO.of_stage(name, stage, height, width, r.batch, dynamic_batch=r.dynamic_batch)
        details = None
        if report is not None:
            io = dataclasses.replace(io, outputs=_outputs_of(stage, io, AOTI_DTYPES[r.precision]))
            validation = report.validation.to_json() if report.validation else None
            details = {"seconds": round(report.seconds, 2), "device": report.device, "validation": validation}
        return StageArtifact(name, "aoti", path, io, r.precision, details=details)

    # -- runtimes --------------------------------------------------------------------------------------------

    def tensorrt(self) -> ModuleType:
        if self._trt is None:
            from vidseg.export.tensorrt import import_tensorrt

            self._trt = import_tensorrt()
        return self._trt

    def gpu(self) -> tuple[str, str]:
        if self._gpu is None:
            from vidseg.export.tensorrt import gpu_identity

            self._gpu = gpu_identity(self.request.torch_device)
        return self._gpu


def _outputs_of(stage: Stage, io: StageIO, float_dtype: torch.dtype) -> tuple[TensorDecl, ...]:
    """Output declarations from one eager run at the declared input shapes (a dynamic batch stays "batch")."""
    shapes = {t.name: [2 if d == BATCH else d for d in t.shape] for t in io.inputs}
    dtypes = {t.name: t.torch_dtype for t in io.inputs}
    gen = torch.Generator().manual_seed(0)
    args = [
        torch.randint(0, 256, shapes[n], generator=gen, dtype=torch.uint8) if dtypes[n] == torch.uint8
        else torch.randn(shapes[n], generator=gen)
        for n in io.input_names
    ]
    with torch.no_grad():
        outputs = stage(*args)
    decls = []
    for name, out in zip(io.output_names, outputs, strict=True):
        dims = tuple(out.shape)
        if any(d == BATCH for t in io.inputs for d in t.shape[:1]):
            dims = (BATCH, *dims[1:])
        dtype = float_dtype if out.is_floating_point() else out.dtype
        decls.append(TensorDecl(name, dtype_name(dtype), dims))
    return tuple(decls)

"""ONNX -> TensorRT engine (TensorRT 10+ Python API): precision flags, INT8 calibration, timing cache.

The build, in API order (`build_engine`):

    logger  = trt.Logger(WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)      # TensorRT 10 networks are always explicit-batch (EXPLICIT_BATCH is
                                             # deprecated); STRONGLY_TYPED is not used because it forbids the
                                             # FP16/INT8 builder flags that pick precision here
    parser  = trt.OnnxParser(network, logger); parser.parse_from_file(onnx)   (errors listed on failure)
    config  = builder.create_builder_config()
              set_memory_pool_limit(WORKSPACE), set_flag(FP16 | BF16 | INT8(+FP16)), int8_calibrator,
              one optimisation profile when the batch is dynamic (min 1, opt = max = batch; also the
              calibration profile), timing cache (create_timing_cache(bytes) / set_timing_cache), a progress
              monitor that prints each build phase
    plan    = builder.build_serialized_network(network, config)
    timing cache serialised back to disk for the next build

Inputs stay uint8: TensorRT 10 accepts UINT8 as a network input type (only at I/O; the graph's first op on a
frame is a Cast, which `vidseg.export.onnx.check_trt_ops` asserts), so engines take raw frames like every other
backend, and INT8 calibration is fed raw frames too.

INT8 uses implicit quantisation with `IInt8EntropyCalibrator2` fed by real frames of a video (the frames a
deployment sees; random inputs give useless ranges). TensorRT >= 10.1 deprecates implicit quantisation in favour
of explicit Q/DQ graphs (TensorRT Model Optimizer); it still builds, and a Q/DQ export is the upgrade path.

`tensorrt` is imported only when a build runs (`import_tensorrt`), and every function here takes the module as
an argument, so the sequence of API calls is unit-tested with a stand-in module on machines without TensorRT.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor

from vidseg.errors import BackendUnavailable, ConfigError, ExportError
from vidseg.export.files import atomic_write

__all__ = [
    "BuildReport",
    "CalibrationBatcher",
    "ShapeProfile",
    "TRT_PRECISIONS",
    "build_engine",
    "calibration_frames",
    "calibration_samples",
    "gpu_identity",
    "import_tensorrt",
    "input_profiles",
    "make_entropy_calibrator",
    "make_progress_monitor",
]

TRT_PRECISIONS = ("fp32", "fp16", "bf16", "int8")
MIN_TENSORRT_MAJOR = 10


def import_tensorrt() -> ModuleType:
    """The `tensorrt` module, or BackendUnavailable saying how to get it."""
    try:
        import tensorrt as trt
    except ModuleNotFoundError as err:
        raise BackendUnavailable(
            "the TensorRT backend needs the Python package 'tensorrt' (>= 10) and an NVIDIA GPU: "
            "pip install 'vidseg[tensorrt]', or use the image in docker/"
        ) from err
    major = int(str(trt.__version__).split(".")[0])
    if major < MIN_TENSORRT_MAJOR:
        raise BackendUnavailable(f"TensorRT {trt.__version__} is too old; vidseg needs TensorRT >= 10")
    return trt


@dataclass(frozen=True)
class ShapeProfile:
    """min/opt/max shapes of one network input (equal for a static input)."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @classmethod
    def static(cls, shape: Sequence[int]) -> ShapeProfile:
        shape = tuple(int(d) for d in shape)
        return cls(shape, shape, shape)

    @classmethod
    def batch(cls, shape: Sequence[int], max_batch: int) -> ShapeProfile:
        """Dynamic batch 1..max_batch, optimised for max_batch (the steady state of a batched stream)."""
        rest = tuple(int(d) for d in shape[1:])
        return cls((1, *rest), (max_batch, *rest), (max_batch, *rest))

    @property
    def is_static(self) -> bool:
        return self.min == self.opt == self.max


@dataclass(frozen=True)
class BuildReport:
    engine: Path
    precision: str
    seconds: float
    size_bytes: int
    tensorrt_version: str
    timing_cache: Path | None
    calibration_batches: int = 0


# -- calibration -----------------------------------------------------------------------------------------------


class CalibrationBatcher:
    """Groups calibration samples into full batches of named tensors.

    samples: dicts name -> tensor, each one sample (unbatched [C,H,W] or batched [1,C,H,W]; batched samples of
    size n count as n). Yields dicts of [batch_size, ...] contiguous tensors; a final incomplete batch is
    dropped (TensorRT calls get_batch with a fixed batch size), and at most max_batches are produced.
    """

    def __init__(
        self,
        samples: Iterable[Mapping[str, Tensor]],
        input_names: Sequence[str],
        batch_size: int,
        max_batches: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"calibration batch size must be >= 1, got {batch_size}")
        self.samples = samples
        self.input_names = tuple(input_names)
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.produced = 0

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        pending: dict[str, list[Tensor]] = {n: [] for n in self.input_names}
        count = 0
        for sample in self.samples:
            missing = [n for n in self.input_names if n not in sample]
            if missing:
                raise ExportError(f"calibration sample lacks inputs {missing}; it has {sorted(sample)}")
            for n in self.input_names:
                t = sample[n]
                pending[n].extend(t.unbind(0) if t.dim() == 4 else [t])
            count = len(pending[self.input_names[0]])
            while count >= self.batch_size:
                if self.max_batches is not None and self.produced >= self.max_batches:
                    return
                batch = {n: torch.stack(pending[n][: self.batch_size]).contiguous() for n in self.input_names}
                for n in self.input_names:
                    del pending[n][: self.batch_size]
                count -= self.batch_size
                self.produced += 1
                yield batch


def calibration_frames(
    video: str | os.PathLike, size: tuple[int, int], *, count: int = 64, stride: int = 5
) -> Iterator[Tensor]:
    """Up to `count` frames of `video` (every `stride`-th), as uint8 [3, H, W] resized to `size`."""
    from vidseg.video.decode import open_video

    height, width = size
    taken = 0
    with open_video(video) as source:
        for frame in source:
            if frame.index % stride:
                continue
            image = frame.tensor().contiguous()
            if tuple(image.shape[-2:]) != (height, width):
                x = F.interpolate(
                    image[None].float(), size=(height, width), mode="bilinear", antialias=True, align_corners=False
                )
                image = x[0].round().clamp(0, 255).to(torch.uint8)
            yield image
            taken += 1
            if taken >= count:
                return
    if taken == 0:
        raise ExportError(f"no frames could be read from calibration video {video}")


def make_entropy_calibrator(
    trt: ModuleType,
    batches: CalibrationBatcher,
    device: torch.device,
    cache_path: Path | None = None,
    log: Callable[[str], None] | None = None,
):
    """An `IInt8EntropyCalibrator2` that feeds `batches` (copied to `device`) and keeps a calibration cache."""
    say = log or _stderr

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = batches
            self._batches = iter(batches)
            self._current: dict[str, Tensor] = {}  # device buffers of the batch TensorRT is reading

        def get_batch_size(self) -> int:
            return batches.batch_size

        def get_batch(self, names, *args):
            try:
                batch = next(self._batches)
            except StopIteration:
                return None
            self._current = {n: batch[n].to(device).contiguous() for n in names}
            say(f"calibration: batch {batches.produced}")
            return [int(self._current[n].data_ptr()) for n in names]

        def read_calibration_cache(self, *args):
            if cache_path is not None and cache_path.exists():
                say(f"calibration: reusing {cache_path}")
                return cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            if cache_path is not None:
                atomic_write(cache_path, bytes(cache))

    return EntropyCalibrator()


def calibration_samples(
    stages: Mapping[str, torch.nn.Module], stage_name: str, frames: Iterable[Tensor], size: tuple[int, int]
) -> Iterator[dict[str, Tensor]]:
    """Inputs of `stage_name` for consecutive calibration frames, as the engine would feed them.

    image is the frame, ref_image the previous one; key_features / prev_logits come from the PyTorch key
    stage on the previous frame, motion / flow from the flow stage when the model has one and its grid matches,
    otherwise zero motion (a static camera). The first frame only serves as a reference.
    """
    stage = stages[stage_name]
    height, width = size
    declared = stage.input_shapes(height, width, 1)
    prev = None
    for frame in frames:
        image = frame[None] if frame.dim() == 3 else frame
        if prev is None and any(n != "image" for n in stage.input_names):
            prev = image
            continue
        derived: dict[str, Tensor] = {}
        sample = {}
        for name in stage.input_names:
            if name == "image":
                sample[name] = image
            elif name == "ref_image":
                sample[name] = prev
            else:
                sample[name] = _derived_input(stages, name, declared[name], image, prev, derived)
        yield sample
        prev = image


def _derived_input(stages, name, declared, image, prev, derived) -> Tensor:
    shape, dtype = declared
    with torch.no_grad():
        if name in ("key_features", "prev_logits") and "key" in stages:
            if "key" not in derived:
                derived["key"] = stages["key"].run(image=prev)
            out = derived["key"]["features" if name == "key_features" else "logits"]
            if tuple(out.shape) == tuple(shape):
                return out.to(dtype)
        if name in ("motion", "flow"):
            if "flow" in stages and "flow" not in derived:
                derived["flow"] = stages["flow"].run(image=image, ref_image=prev)["flow"]
            flow = derived.get("flow")
            if flow is not None and tuple(flow.shape) == tuple(shape):
                return flow.to(dtype)
            return torch.zeros(shape, dtype=dtype)
    raise ExportError(f"no calibration source for input {name!r} of shape {tuple(shape)}")


# -- progress --------------------------------------------------------------------------------------------------


def make_progress_monitor(trt: ModuleType, log: Callable[[str], None]):
    """An IProgressMonitor printing each build phase with its step count (None if TensorRT has none)."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class Progress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._steps: dict[str, int] = {}
            self._depth: dict[str, int] = {}

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
            self._depth[phase_name] = depth
            self._steps[phase_name] = num_steps
            log(f"tensorrt: {'  ' * depth}{phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name, step) -> bool:
            return True  # never cancel

        def phase_finish(self, phase_name) -> None:
            self._depth.pop(phase_name, None)
            self._steps.pop(phase_name, None)

    return Progress()


# -- build -----------------------------------------------------------------------------------------------------


def build_engine(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    *,
    precision: str = "fp16",
    profiles: Mapping[str, ShapeProfile] | None = None,
    calibrator: object | None = None,
    timing_cache: str | os.PathLike | None = None,
    workspace_bytes: int | None = None,
    trt: ModuleType | None = None,
    log: Callable[[str], None] | None = None,
) -> BuildReport:
    """Build a serialized TensorRT engine from an ONNX file and write it to engine_path.

    profiles: input name -> ShapeProfile; required for inputs with dynamic dimensions.
    calibrator: an IInt8Calibrator (see make_entropy_calibrator); required for int8.
    timing_cache: file to read before and write after the build (shared by builds on the same GPU/TensorRT).
    """
    trt = trt if trt is not None else import_tensorrt()
    say = log or _stderr
    if precision not in TRT_PRECISIONS:
        raise ConfigError(f"unknown TensorRT precision {precision!r}; choose one of {', '.join(TRT_PRECISIONS)}")
    if precision == "int8" and calibrator is None:
        raise ConfigError("int8 needs calibration frames: pass a video (--calib VIDEO)")
    start = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ExportError(f"TensorRT's ONNX parser rejected {onnx_path}: " + "; ".join(errors or ["no details"]))

    config = builder.create_builder_config()
    if workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    elif precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)  # layers without an INT8 kernel run in FP16, not FP32
        config.int8_calibrator = calibrator

    profiles = dict(profiles or {})
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    dynamic = [t.name for t in inputs if any(int(d) < 0 for d in t.shape)]
    if dynamic:
        missing = [n for n in dynamic if n not in profiles]
        if missing:
            raise ExportError(f"inputs {missing} have dynamic dimensions; give their min/opt/max shapes")
        profile = builder.create_optimization_profile()
        for t in inputs:
            p = profiles.get(t.name) or ShapeProfile.static(t.shape)
            profile.set_shape(t.name, p.min, p.opt, p.max)
        config.add_optimization_profile(profile)
        if precision == "int8":
            config.set_calibration_profile(profile)

    cache_file = Path(timing_cache) if timing_cache is not None else None
    if cache_file is not None:
        data = cache_file.read_bytes() if cache_file.exists() else b""
        config.set_timing_cache(config.create_timing_cache(data), False)

    monitor = make_progress_monitor(trt, say)
    if monitor is not None:
        config.progress_monitor = monitor

    say(f"tensorrt {trt.__version__}: building {Path(engine_path).name} ({precision}) from {Path(onnx_path).name}")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT could not build an engine from {onnx_path} ({precision}); see its log above")
    atomic_write(Path(engine_path), plan)
    if cache_file is not None:
        atomic_write(cache_file, config.get_timing_cache().serialize())
    seconds = time.perf_counter() - start
    size = Path(engine_path).stat().st_size
    say(f"tensorrt: built {Path(engine_path).name} in {seconds:.1f}s ({size / 2**20:.1f} MiB)")
    return BuildReport(
        engine=Path(engine_path),
        precision=precision,
        seconds=seconds,
        size_bytes=size,
        tensorrt_version=str(trt.__version__),
        timing_cache=cache_file,
        calibration_batches=getattr(getattr(calibrator, "batches", None), "produced", 0),
    )


# -- engines ---------------------------------------------------------------------------------------------------


def gpu_identity(device: torch.device) -> tuple[str, str]:
    """(GPU name, "sm_XY") of a CUDA device: engines are specific to both."""
    props = torch.cuda.get_device_properties(device)
    return props.name, f"sm_{props.major}{props.minor}"


def input_profiles(shapes: Mapping[str, Sequence[int]], batch: int) -> dict[str, ShapeProfile]:
    """One profile per input: static shapes, or a dynamic batch 1..batch when batch > 1."""
    if batch > 1:
        return {n: ShapeProfile.batch(s, batch) for n, s in shapes.items()}
    return {n: ShapeProfile.static(s) for n, s in shapes.items()}


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)

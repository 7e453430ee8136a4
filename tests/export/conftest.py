"""A tiny model that honours the Stage contract (all four stages) and uses the vidseg custom ops.

It stands in for the zoo in export tests: small convolutions, so an ONNX export takes well under a second, yet
every path a real model takes is there: uint8 input normalised inside the stage, a downscaled LR branch, the
`vidseg::warp` (both grid conventions) and `vidseg::creff` ops, and logits at a stride.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidseg.kernels import ops
from vidseg.models.base import ModelSpec, Preprocess, Stage, VideoSegModel

NUM_CLASSES = 5
CHANNELS = 8
STRIDE = 4

SPEC = ModelSpec(
    name="tiny",
    num_classes=NUM_CLASSES,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    input_size=(32, 48),
    feature_channels=CHANNELS,
    feature_stride=STRIDE,
    logits_stride=STRIDE,
    methods=("per-frame", "arseg", "flowwarp"),
)


def _encoder(in_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, CHANNELS, 3, stride=2, padding=1),
        nn.BatchNorm2d(CHANNELS),
        nn.ReLU(),
        nn.Conv2d(CHANNELS, CHANNELS, 3, stride=2, padding=1),
        nn.ReLU(),
    )


class _Key(Stage):
    input_names = ("image",)
    output_names = ("logits", "features")

    def __init__(self, m: TinyModel) -> None:
        super().__init__()
        self.pre, self.enc, self.head = m.pre, m.enc, m.head

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        f = self.enc(self.pre(image))
        return self.head(f), f


class _NonKey(Stage):
    input_names = ("image", "key_features", "motion")
    output_names = ("logits", "features")

    def __init__(self, m: TinyModel) -> None:
        super().__init__()
        self.pre, self.lr_enc, self.q, self.k, self.head = m.pre, m.lr_enc, m.q, m.k, m.head
        self.lr_scale = m.lr_scale

    def input_shapes(self, height, width, batch=1):
        h, w = height // STRIDE, width // STRIDE
        return {
            "image": ((batch, 3, height, width), torch.uint8),
            "key_features": ((batch, CHANNELS, h, w), torch.float32),
            "motion": ((batch, 2, h, w), torch.float32),
        }

    def forward(self, image: Tensor, key_features: Tensor, motion: Tensor) -> tuple[Tensor, Tensor]:
        x = self.pre(image)
        x = F.interpolate(x, scale_factor=self.lr_scale, mode="bilinear", align_corners=False)
        lr = self.lr_enc(x)
        lr = F.interpolate(lr, size=key_features.shape[-2:], mode="bilinear", align_corners=False)
        warped = ops.warp(key_features, motion, "arseg")
        fused = ops.creff(self.q(lr), self.k(warped), warped, lr, 3)
        return self.head(fused), fused


class _Flow(Stage):
    input_names = ("image", "ref_image")
    output_names = ("flow",)

    def __init__(self, m: TinyModel) -> None:
        super().__init__()
        self.pre, self.net = m.pre, m.flow_net

    def forward(self, image: Tensor, ref_image: Tensor) -> tuple[Tensor]:
        x = torch.cat((self.pre(image), self.pre(ref_image)), dim=1)
        return (torch.tanh(self.net(x)) * 2.0,)


class _Refine(Stage):
    input_names = ("image", "prev_logits", "flow")
    output_names = ("logits",)

    def __init__(self, m: TinyModel) -> None:
        super().__init__()
        self.pre, self.enc, self.mix = m.pre, m.enc, m.mix

    def input_shapes(self, height, width, batch=1):
        h, w = height // STRIDE, width // STRIDE
        return {
            "image": ((batch, 3, height, width), torch.uint8),
            "prev_logits": ((batch, NUM_CLASSES, h, w), torch.float32),
            "flow": ((batch, 2, h, w), torch.float32),
        }

    def forward(self, image: Tensor, prev_logits: Tensor, flow: Tensor) -> tuple[Tensor]:
        warped = ops.warp(prev_logits, flow, "gsvnet")
        f = self.enc(self.pre(image))
        return (self.mix(torch.cat((warped, f), dim=1)),)


class TinyModel(VideoSegModel):
    spec = SPEC

    def __init__(self) -> None:
        super().__init__()
        self.pre = Preprocess(SPEC)
        self.enc = _encoder(3)
        self.lr_enc = nn.Sequential(nn.Conv2d(3, CHANNELS, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Conv2d(CHANNELS, NUM_CLASSES, 1)
        self.q = nn.Conv2d(CHANNELS, CHANNELS, 1)
        self.k = nn.Conv2d(CHANNELS, CHANNELS, 1)
        self.flow_net = nn.Sequential(_encoder(6), nn.Conv2d(CHANNELS, 2, 3, padding=1))
        self.mix = nn.Conv2d(NUM_CLASSES + CHANNELS, NUM_CLASSES, 3, padding=1)
        self.lr_scale = 0.5
        # Non-trivial BatchNorm statistics, so that folding them is visible in the graph.
        bn = self.enc[1]
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)

    def stages(self, *, lr_scale: float | None = None) -> dict[str, Stage]:
        if lr_scale is not None:
            self.lr_scale = lr_scale
        return {"key": _Key(self), "nonkey": _NonKey(self), "flow": _Flow(self), "refine": _Refine(self)}


@pytest.fixture
def gradient_video(tmp_path):
    """A factory: an MPEG-4 clip of `count` flat frames 64x48 whose grey level rises by `step` per frame."""
    import av
    import numpy as np

    def make(name: str = "clip.mp4", count: int = 12, step: int = 20) -> str:
        path = tmp_path / name
        with av.open(str(path), "w") as container:
            stream = container.add_stream("mpeg4", rate=10)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for i in range(count):
                img = np.full((48, 64, 3), step * i, dtype=np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return str(path)

    return make


@pytest.fixture(scope="session")
def tiny_model_class() -> type[TinyModel]:
    """The class itself, for module-scoped fixtures that build their own instance."""
    return TinyModel


@pytest.fixture
def tiny_model() -> TinyModel:
    torch.manual_seed(0)
    return TinyModel().eval()


@pytest.fixture
def tiny_stages(tiny_model) -> dict[str, Stage]:
    return {name: stage.eval() for name, stage in tiny_model.stages().items()}


# -- a stand-in for the `tensorrt` module ----------------------------------------------------------------------


class FakeTensorRT:
    """Records the TensorRT 10 API calls vidseg makes, and behaves enough like TensorRT to build and run.

    The parser reads the real ONNX file's inputs and outputs (dynamic dims as -1); the builder drives an INT8
    calibrator the way TensorRT does (batch size, get_batch until None, read/write the calibration cache); the
    "plan" is JSON describing the I/O tensors; the execution context fills every bound output address with a
    byte pattern, which proves that outputs are written where the runner bound them.
    """

    FILL = 0x3F  # float32 0x3F3F3F3F = 0.7470...

    def __init__(self, version: str = "10.15.1") -> None:
        import ctypes
        import json
        import types

        import onnx

        self.__version__ = version
        self.calls: list[tuple] = []
        calls = self.calls
        fake = self

        class Logger:
            WARNING = "WARNING"

            def __init__(self, severity):
                calls.append(("Logger", severity))

        self.Logger = Logger
        self.DataType = types.SimpleNamespace(
            FLOAT="FLOAT",
            HALF="HALF",
            BF16="BF16",
            INT8="INT8",
            UINT8="UINT8",
            INT32="INT32",
            INT64="INT64",
            BOOL="BOOL",
        )
        self.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
        self.BuilderFlag = types.SimpleNamespace(FP16="FP16", BF16="BF16", INT8="INT8")
        self.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")

        class IInt8EntropyCalibrator2:
            def __init__(self):
                calls.append(("IInt8EntropyCalibrator2.__init__",))

        class IProgressMonitor:
            def __init__(self):
                calls.append(("IProgressMonitor.__init__",))

        self.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
        self.IProgressMonitor = IProgressMonitor
        onnx_types = {onnx.TensorProto.FLOAT: "FLOAT", onnx.TensorProto.UINT8: "UINT8"}

        class Tensor:
            def __init__(self, name, shape, dtype):
                self.name, self.shape, self.dtype = name, shape, dtype

        class Network:
            def __init__(self):
                self.inputs, self.outputs = [], []

            @property
            def num_inputs(self):
                return len(self.inputs)

            def get_input(self, i):
                return self.inputs[i]

        def tensors(values):
            out = []
            for v in values:
                t = v.type.tensor_type
                shape = tuple(d.dim_value if not d.dim_param else -1 for d in t.shape.dim)
                out.append(Tensor(v.name, shape, onnx_types[t.elem_type]))
            return out

        class OnnxParser:
            def __init__(self, network, logger):
                calls.append(("OnnxParser",))
                self.network = network
                self.num_errors = 0

            def parse_from_file(self, path):
                calls.append(("parse_from_file", path))
                try:
                    model = onnx.load(path)
                except Exception as err:
                    self.num_errors = 1
                    self.error = f"In node -1: {err}"
                    return False
                self.network.inputs = tensors(model.graph.input)
                self.network.outputs = tensors(model.graph.output)
                return True

            def get_error(self, i):
                return self.error

        class TimingCache:
            def __init__(self, data):
                self.data = bytes(data)

            def serialize(self):
                calls.append(("timing_cache.serialize",))
                return self.data + b"+timing"

        class Profile:
            def set_shape(self, name, mn, opt, mx):
                calls.append(("set_shape", name, tuple(mn), tuple(opt), tuple(mx)))

        class Config:
            def __init__(self):
                self.flags, self.int8_calibrator, self.progress_monitor, self.timing = set(), None, None, None

            def set_memory_pool_limit(self, pool, size):
                calls.append(("set_memory_pool_limit", pool, size))

            def set_flag(self, flag):
                calls.append(("set_flag", flag))
                self.flags.add(flag)

            def add_optimization_profile(self, profile):
                calls.append(("add_optimization_profile",))

            def set_calibration_profile(self, profile):
                calls.append(("set_calibration_profile",))

            def create_timing_cache(self, data):
                calls.append(("create_timing_cache", bytes(data)))
                return TimingCache(data)

            def set_timing_cache(self, cache, ignore_mismatch):
                calls.append(("set_timing_cache", ignore_mismatch))
                self.timing = cache

            def get_timing_cache(self):
                return self.timing

        class Builder:
            def __init__(self, logger):
                calls.append(("Builder",))

            def create_network(self, flags):
                calls.append(("create_network", flags))
                return Network()

            def create_builder_config(self):
                calls.append(("create_builder_config",))
                return Config()

            def create_optimization_profile(self):
                calls.append(("create_optimization_profile",))
                return Profile()

            def build_serialized_network(self, network, config):
                calls.append(("build_serialized_network", sorted(config.flags)))
                if config.progress_monitor is not None:
                    config.progress_monitor.phase_start("Building engine", None, 2)
                    config.progress_monitor.step_complete("Building engine", 0)
                    config.progress_monitor.phase_finish("Building engine")
                calib = config.int8_calibrator
                if calib is not None:
                    fake.calibration_batches = 0
                    if calib.read_calibration_cache() is None:
                        names = [t.name for t in network.inputs]
                        size = calib.get_batch_size()
                        while (ptrs := calib.get_batch(names)) is not None:
                            assert len(ptrs) == len(names) and all(isinstance(p, int) for p in ptrs)
                            assert size >= 1
                            fake.calibration_batches += 1
                        calib.write_calibration_cache(b"calibration-table")
                io = [(t.name, "INPUT", t.shape, t.dtype) for t in network.inputs]
                io += [(t.name, "OUTPUT", t.shape, t.dtype) for t in network.outputs]
                return b"PLAN" + json.dumps(io).encode()

        class Context:
            def __init__(self, io):
                self.io = {name: (mode, shape, dtype) for name, mode, shape, dtype in io}
                self.addresses, self.batch = {}, None

            def set_input_shape(self, name, shape):
                calls.append(("set_input_shape", name, tuple(shape)))
                self.batch = shape[0]
                return True

            def set_tensor_address(self, name, ptr):
                calls.append(("set_tensor_address", name))
                self.addresses[name] = ptr

            def get_tensor_shape(self, name):
                shape = self.io[name][1]
                return tuple(self.batch if d < 0 else d for d in shape)

            def execute_async_v3(self, stream):
                calls.append(("execute_async_v3", stream))
                for name, (mode, _shape, _dtype) in self.io.items():
                    if mode == "OUTPUT":
                        n = 4
                        for d in self.get_tensor_shape(name):
                            n *= d
                        ctypes.memset(self.addresses[name], FakeTensorRT.FILL, n)
                return True

        class Engine:
            def __init__(self, io):
                self.io = io

            @property
            def num_io_tensors(self):
                return len(self.io)

            def get_tensor_name(self, i):
                return self.io[i][0]

            def get_tensor_mode(self, name):
                return next(m for n, m, _, _ in self.io if n == name)

            def get_tensor_dtype(self, name):
                return next(d for n, _, _, d in self.io if n == name)

            def get_tensor_shape(self, name):
                return next(s for n, _, s, _ in self.io if n == name)

            def create_execution_context(self):
                calls.append(("create_execution_context",))
                return Context(self.io)

        class Runtime:
            def __init__(self, logger):
                calls.append(("Runtime",))

            def deserialize_cuda_engine(self, plan):
                calls.append(("deserialize_cuda_engine",))
                if not bytes(plan).startswith(b"PLAN"):
                    return None
                return Engine(json.loads(bytes(plan)[4:]))

        self.Builder, self.OnnxParser, self.Runtime = Builder, OnnxParser, Runtime

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


@pytest.fixture
def fake_trt() -> FakeTensorRT:
    return FakeTensorRT()

"""DeviceIO's CUDA bookkeeping, checked on the CPU with stand-ins for torch.cuda's streams and events."""

from __future__ import annotations

import types

import pytest
import torch

from vidseg.engine.pipeline import DeviceIO


class FakeStream:
    def __init__(self, device=None, name="side") -> None:
        self.name = name
        self.waited: list = []

    def wait_event(self, event) -> None:
        self.waited.append(event)


class FakeEvent:
    def __init__(self, *args, **kwargs) -> None:
        self.stream = None

    def record(self, stream=None) -> None:
        self.stream = stream


class FakeTensor:
    def __init__(self, device: str) -> None:
        self.device = torch.device(device)
        self.streams: list = []

    def record_stream(self, stream) -> None:
        self.streams.append(stream)


@pytest.fixture
def fake_cuda(monkeypatch):
    default = FakeStream(name="default")
    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: default)
    return types.SimpleNamespace(default=default)


def test_a_bare_cuda_device_holds_tensors_of_the_current_gpu(fake_cuda):
    io = DeviceIO(torch.device("cuda"))
    assert io.device == torch.device("cuda:0")
    assert io.holds(FakeTensor("cuda:0")) and not io.holds(FakeTensor("cuda:1")) and not io.holds(FakeTensor("cpu"))
    assert DeviceIO(torch.device("cuda:1")).holds(FakeTensor("cuda:1"))


def test_an_adopted_tensor_makes_the_compute_stream_wait_for_its_producer(fake_cuda):
    io = DeviceIO(torch.device("cuda"))
    tensor = FakeTensor("cuda:0")
    prepared = io.adopt(tensor)
    event = prepared[1]
    assert event is not None and event.stream is fake_cuda.default  # recorded where the tensor was written
    assert io.accept(prepared) is tensor
    assert io.compute_stream.waited == [event] and tensor.streams == [io.compute_stream]


def test_on_cpu_adopt_and_holds_are_plain():
    io = DeviceIO(torch.device("cpu"))
    t = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    assert io.holds(t) and io.adopt(t) == (t, None) and io.accept((t, None)) is t

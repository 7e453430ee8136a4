"""The thread budget: how a run's CPU cores are shared between torch, the decoder and the writers.

Left alone, each library sizes its pool for the whole machine: torch's intra-op pool takes every core, FFmpeg's
decoder starts cores + 1 frame threads and x264 (the overlay video) about 1.5 per core. On a small CPU they then
fight over the same cores: torch's OpenMP workers wait at every barrier for a worker that a decoder or encoder
thread displaced, and a run under load falls from several frames/s to a fraction of one. The budget gives the model
the cores, one thread each to decoding and encoding (they run beside the model, in the prefetch and writer threads,
at a lower priority so that a model barrier never waits on them), and only on larger machines cores of their own.

    budget = ThreadBudget.for_cores()            # physical cores of this process, no overrides
    budget = ThreadBudget.for_cores(torch=3)     # what the user fixed stays fixed
    budget.apply()                               # torch's pool; the pipeline threads read `side_nice()`
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass

from vidseg.errors import ConfigError

__all__ = ["ThreadBudget", "applied", "side_nice", "lower_thread_priority", "wait_passively_in_openmp"]

SIDE_NICE = 5  # niceness the decode and writer threads add to their own (Linux: per thread)


@dataclass(frozen=True)
class ThreadBudget:
    """cores: the physical cores shared out. torch: intra-op threads of the model. decode: FFmpeg decoder threads
    (0: FFmpeg's own choice). encode: threads of the overlay encoder (0: the encoder's choice). side_nice:
    niceness added to the decode and writer threads (0: same priority as the model)."""

    cores: int
    torch: int
    decode: int
    encode: int
    side_nice: int = SIDE_NICE

    @classmethod
    def for_cores(cls, cores: int | None = None, *, torch: int | None = None, decode: int | None = None,
                  encode: int | None = None) -> ThreadBudget:
        """The split for `cores` physical cores (default: this process's, `vidseg.device.physical_cores`); a
        number the user gave (torch, decode, encode) is kept as given and the rest is split around it.

        Up to 3 cores the model gets them all and decoding and encoding one thread each: per frame they need a
        fraction of the model's time and fill its gaps. From 4 cores on a quarter of them (at least one) is set
        aside for decoding and encoding, half each. Whenever the threads outnumber the cores, the decode and
        writer threads run niced (`side_nice`), so that the model's threads are the ones that get a core.
        """
        if cores is None:
            from vidseg.device import physical_cores

            cores = physical_cores()
        for name, value in (("cores", cores), ("torch", torch)):
            if value is not None and value < 1:
                raise ConfigError(f"the thread budget's {name} must be >= 1, got {value}")
        for name, value in (("decode", decode), ("encode", encode)):
            if value is not None and value < 0:
                raise ConfigError(f"{name} threads must be >= 0 (0: the library's own choice), got {value}")
        side = 0 if cores < 4 else max(1, cores // 4)
        torch = max(1, cores - side) if torch is None else torch
        decode = max(1, side // 2) if decode is None else decode
        encode = max(1, side - side // 2) if encode is None else encode
        nice = SIDE_NICE if torch + decode + encode > cores else 0
        return cls(int(cores), int(torch), int(decode), int(encode), nice)

    @property
    def encode_preset(self) -> str:
        """The overlay's x264 preset: "superfast" while the encoder shares the model's cores (the side threads are
        niced; half the CPU per frame of "veryfast", for a ~45 % larger file at the same quality setting),
        "veryfast" once it has cores of its own."""
        return "superfast" if self.side_nice else "veryfast"

    def apply(self) -> ThreadBudget:
        """Size torch's intra-op pool and make this the process's budget (`applied`, `side_nice`)."""
        import torch

        global _APPLIED
        if torch.get_num_threads() != self.torch:
            torch.set_num_threads(self.torch)
        _APPLIED = self
        return self

    def describe(self) -> str:
        nice = f", niced +{self.side_nice}" if self.side_nice else ""
        return (f"{self.cores} cores: torch {self.torch} threads, decode {self.decode or 'auto'}, "
                f"encode {self.encode or 'auto'} (x264 {self.encode_preset}){nice}")

    def record(self) -> dict:
        return {"cores": self.cores, "torch": self.torch, "decode": self.decode, "encode": self.encode,
                "side_nice": self.side_nice, "encode_preset": self.encode_preset}


_APPLIED: ThreadBudget | None = None


def wait_passively_in_openmp() -> None:
    """Make OpenMP's threads sleep at barriers instead of spinning, unless the user chose (OMP_WAIT_POLICY). Only
    effective before torch loads (OpenMP reads it once): the console scripts (`vidseg.cli`) and cluster workers
    call it first. Why: when another process holds one of the cores, a spinning pool waits a scheduler time slice
    at every barrier; measured on this project's 2-core VM with a one-thread job beside it: 0.5 frames/s
    spinning, 9.1 passive (960x540 demo, arseg), and the same speed on a quiet machine."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def applied() -> ThreadBudget | None:
    """The budget `ThreadBudget.apply` last made the process's (None: none; every library sizes its own pool)."""
    return _APPLIED


def side_nice() -> int:
    """Niceness the decode and writer threads add to theirs under the applied budget (0 without one)."""
    return _APPLIED.side_nice if _APPLIED is not None else 0


def lower_thread_priority(nice: int) -> bool:
    """Raise the calling thread's niceness by `nice` (Linux schedules threads one by one; threads it starts
    later, FFmpeg's, inherit it). False where the platform has no per-thread priority or refuses."""
    if nice <= 0 or not sys.platform.startswith("linux"):  # elsewhere a thread id is no process id
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError:
        return False
    return True

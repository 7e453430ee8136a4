"""vidseg.heap: large buffers stay in the heap between frames (glibc), and VIDSEG_HEAP=system leaves malloc alone.

Each case runs in a fresh interpreter: the thresholds are process-wide and cannot be put back.
"""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc",
                                reason="the thresholds are glibc's")

# Page faults per "frame" (three large tensors written and freed, as a network's activations are) once the loop has
# settled, then the value retain returned. Settling takes a few frames: torch's aligned allocations do not fit a
# freed block of exactly their own size, so the heap grows until freed blocks coalesce.
PROBE = """
import resource, sys, torch
from vidseg.heap import retain_large_buffers
applied = retain_large_buffers() if sys.argv[1] == "retain" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def frame():
    maps = [torch.empty(mib << 20, dtype=torch.uint8) for mib in (64, 40, 48)]
    for m in maps:
        m.fill_(1)
for _ in range(8):
    frame()
start = faults()
for _ in range(4):
    frame()
print((faults() - start) // 4, applied)
"""


def _probe(mode: str, **env: str) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}, timeout=120).stdout.split()
    return int(out[0]), out[1]


def test_retained_buffers_are_not_faulted_in_again():
    pages = (152 << 20) // os.sysconf("SC_PAGE_SIZE")
    default_faults, _ = _probe("default")
    retained_faults, applied = _probe("retain")
    assert applied == "True"
    assert default_faults > pages // 2  # glibc maps fresh memory every frame
    assert retained_faults < default_faults // 4


def test_system_heap_is_left_alone():
    faults, applied = _probe("retain", VIDSEG_HEAP="system")
    assert applied == "False"
    assert faults > (152 << 20) // os.sysconf("SC_PAGE_SIZE") // 2


def test_engine_on_cpu_retains(tmp_path):
    code = ("import vidseg.heap as h; from vidseg import Engine, EngineConfig; "
            "Engine(EngineConfig(device='cpu')); print(h._state)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout
    assert "'applied': True" in out

"""ONNX Runtime sessions and types, shared by the export validator and the `onnx` runner.

One place decides how a session is opened (graph optimisation, threads) and how its bindings are checked
against a stage declaration, so that what was validated at export is what runs.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from vidseg.device import physical_cores
from vidseg.errors import ExportError, ShapeError
from vidseg.export.stageio import StageIO

__all__ = ["ORT_TYPES", "check_session_io", "cpu_session", "np_to_torch_dtype", "session_options"]

# ONNX Runtime's type strings -> numpy dtypes (the ones stages use)
ORT_TYPES = {
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
}
_NP_TO_TORCH = {
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float16): torch.float16,
    np.dtype(np.int64): torch.int64,
    np.dtype(np.int32): torch.int32,
}


def np_to_torch_dtype(dtype: np.dtype) -> torch.dtype:
    """numpy dtype (as ONNX Runtime reports it) -> torch dtype."""
    try:
        return _NP_TO_TORCH[np.dtype(dtype)]
    except KeyError:
        raise ExportError(f"no torch dtype for numpy {dtype}") from None


def session_options(*, on_cpu: bool) -> ort.SessionOptions:
    """Full graph optimisation, sequential execution; on a GPU no per-node fallback to the CPU. On the CPU as many
    intra-op threads as torch may use (the process's compute budget: vidseg-run's thread budget, vidseg-bench
    --threads), at most one per physical core (SMT siblings do not help convolutions)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if on_cpu:
        options.intra_op_num_threads = max(1, min(physical_cores(), torch.get_num_threads()))
    else:
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return options


def cpu_session(path: str) -> ort.InferenceSession:
    """A CPU session on `path` (validation)."""
    return ort.InferenceSession(str(path), session_options(on_cpu=True), providers=["CPUExecutionProvider"])


def check_session_io(session: ort.InferenceSession, io: StageIO, where: str) -> None:
    """The session binds the declared names in order, takes the declared input dtypes and gives float outputs.

    where: how to name the artifact in the error ("the cached artifact in DIR", "x.onnx of the export in DIR").
    """
    got_in = [i.name for i in session.get_inputs()]
    got_out = [o.name for o in session.get_outputs()]
    if got_in != list(io.input_names) or got_out != list(io.output_names):
        raise ShapeError(
            f"ONNX artifact for stage {io.stage!r} binds inputs {got_in} and outputs {got_out}; the stage declares "
            f"{list(io.input_names)} and {list(io.output_names)} ({where})"
        )
    for arg in session.get_inputs():
        want = io.input(arg.name).dtype
        have = ORT_TYPES.get(arg.type)
        if have is None or have.name != want:
            raise ShapeError(f"stage {io.stage!r} input {arg.name!r}: artifact takes {arg.type}, stage declares {want}")
    for out in session.get_outputs():
        dtype = ORT_TYPES.get(out.type)
        if dtype is None or not np.issubdtype(dtype, np.floating):
            raise ShapeError(f"stage {io.stage!r} output {out.name!r} has type {out.type}; expected float")

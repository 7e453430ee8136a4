"""Turning a model stage into a deployable artifact, and running an export folder on its own.

    builder.py       the one artifact builder: stages -> exported, validated artifacts in a cache or a folder
                     (every format; the onnx/trt/aoti runners and vidseg-export call it)
    formats.py       the format table (format, file, needs, device, dynamic shapes, precisions)
    program.py       torch.export of a stage with the vidseg:: custom ops decomposed to their reference
                     composition (shared by the ONNX and AOTInductor paths); dynamic batch and height/width
    onnx.py          stage -> ONNX (dynamo exporter, TorchScript fallback), onnx.checker, binding checks
    validate.py      artifact vs PyTorch: validation frames and inputs, compared outputs, ValidationReport
    ort_session.py   ONNX Runtime session options, types and binding checks (validator and onnx runner)
    trt_check.py     what TensorRT's ONNX parser would refuse (against trt_onnx_ops.py, TensorRT's table)
    tensorrt.py      ONNX -> TensorRT engine: precision flags, INT8 calibration on video frames, profiles,
                     timing cache
    trt_engine.py    a deserialized engine run on torch tensors (builder validation and trt runner)
    aoti.py          stage -> AOTInductor package (.pt2), validated
    cache.py         the artifact cache: keyed by what determines an artifact, verified before every use
    files.py         atomic writes, folders that can be created or a one-line error, the export folder store
    stageio.py       stage I/O declarations (names, symbolic shapes, dtypes) as plain data
    manifest.py      an export folder's manifest.json: written, read and checked
    loader.py        load_export(folder) -> ExportedModel: spec, method, stages, build_runner(device)

Nothing heavy is imported here, so `import vidseg.export` stays cheap; `load_export`, `ExportedModel` and
`FORMATS` are looked up on first use.
"""

from __future__ import annotations

__all__ = ["ExportedModel", "FORMATS", "load_export"]


def __getattr__(name: str):
    if name in ("ExportedModel", "load_export"):
        from vidseg.export import loader

        return getattr(loader, name)
    if name == "FORMATS":
        from vidseg.export.formats import FORMATS

        return FORMATS
    raise AttributeError(f"module 'vidseg.export' has no attribute {name!r}")

"""Turning a model stage into a deployable artifact.

    program.py       torch.export of a stage with the vidseg:: custom ops decomposed to their reference
                     composition (shared by the ONNX and AOTInductor paths)
    onnx.py          stage -> ONNX (dynamo exporter, TorchScript fallback), onnx.checker, validation against
                     PyTorch, TensorRT operator check; `onnx_artifact` for the cached form
    trt_onnx_ops.py  TensorRT 10.15's supported ONNX operators (from onnx-tensorrt's docs/operators.md)
    tensorrt.py      ONNX -> TensorRT engine: precision flags, INT8 calibration on video frames, profiles,
                     timing cache; `engine_artifact` for the cached form
    aoti.py          stage -> AOTInductor package (.pt2); `aoti_artifact` for the cached form
    cache.py         the artifact cache: keyed by what determines an artifact, verified before every use

Nothing is imported here, so `import vidseg.export` stays cheap; import the module you need.
"""

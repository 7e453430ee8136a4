"""vidseg.engine: running a model's stages over frames.

    Engine(EngineConfig(...)).run(source) -> FrameResult per frame     engine.py
    KeyframePolicy: IntervalPolicy, GopPolicy, AdaptivePolicy          schedule.py
    Method: PerFrame, ARSeg, FlowWarp (plans, state, frame inputs)     methods/
    Plan, execute_plans (stage calls as data, batched across streams)  plans.py
    FrameResult, RunSummary                                            results.py
    Runner backends: torch, compile, onnx, aoti, trt                   backends/
    Prefetcher, Writer, DeviceIO (threads, streams, pinned memory)     pipeline.py

Imports are lazy so that `import vidseg.engine.schedule` stays free of torch-heavy modules.
"""

from __future__ import annotations

import importlib

__all__ = [
    "Engine",
    "FrameResult",
    "RunSummary",
    "SourceFrame",
    "KeyframePolicy",
    "KeyDecision",
    "FrameMeta",
    "IntervalPolicy",
    "GopPolicy",
    "AdaptivePolicy",
    "make_policy",
    "Method",
    "PerFrame",
    "ARSeg",
    "FlowWarp",
    "make_method",
]

_LAZY = {
    **{name: "vidseg.engine.engine" for name in ("Engine", "FrameResult", "RunSummary", "SourceFrame")},
    **{
        name: "vidseg.engine.schedule"
        for name in ("KeyframePolicy", "KeyDecision", "FrameMeta", "IntervalPolicy", "GopPolicy", "AdaptivePolicy",
                     "make_policy")
    },
    **{name: "vidseg.engine.methods" for name in ("Method", "make_method")},
    "PerFrame": "vidseg.engine.methods.perframe",
    "ARSeg": "vidseg.engine.methods.arseg",
    "FlowWarp": "vidseg.engine.methods.flowwarp",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vidseg.engine' has no attribute {name!r}")

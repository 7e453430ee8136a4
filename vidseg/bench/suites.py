"""vidseg-bench suite definitions: which configurations run, at what resolution, how many rounds, against what.

A `Suite` is frozen data. `get_suite(name, device_type)` returns the variant for the device ("cpu" or "cuda"):
the default suite runs the full 1024x2048 matrix (torch, compile, onnx, fp16) on a GPU and a reduced one at
256x512 on a CPU so that it finishes within 15 minutes on two cores. Speed-ups are not listed by hand:
`derive_comparisons` pairs every case with its baseline (per-frame HR on the same engine and precision; eager
torch for another engine; fp32 for fp16), so that every comparison a suite makes is interleaved and paired.

Targets are the seeds' published numbers, measured on their GPUs; the report prints them beside ours for the
same configuration, never as if they came from the same machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from vidseg.bench.harness import BenchCase, Comparison
from vidseg.engine.methods import baseline_method, method_class
from vidseg.errors import ConfigError

__all__ = ["Suite", "Target", "SUITES", "get_suite", "derive_comparisons", "custom_cases"]


@dataclass(frozen=True)
class Target:
    """A seed's published result for a configuration the suite runs (case: the BenchCase name)."""

    seed: str  # "GSVNet (ICME 2021)"
    case: str
    setting: str  # the seed's setting in words
    fps: float | None = None  # the seed's frames/s ...
    gpu: str | None = None  # ... on this GPU
    baseline: str | None = None  # the case the seed's saving is relative to (a BenchCase name)
    gmacs_saving: float | None = None  # e.g. 0.67: 67 % fewer GMACs than the baseline
    note: str = ""


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    res: tuple[int, int]  # model-only and end-to-end resolution (H, W)
    cases: tuple[BenchCase, ...]
    rounds: int = 10  # interleaved timed rounds per case
    round_frames: int = 12  # frames per round; a multiple of every keyframe interval (one or more GOPs)
    warmup: tuple[int, int, float] = (2, 8, 0.05)  # warm_up(min_rounds, max_rounds, tol)
    clip_frames: int = 24  # frames of the synthetic clip (model-only uses the first round_frames)
    e2e: tuple[str, ...] = ()  # case names measured end to end (decode + inference + label PNGs)
    e2e_rounds: int = 2
    accuracy: tuple[str, ...] = ()  # case names scored on synthetic clips (models with trained weights only)
    accuracy_res: tuple[int, int] = (256, 512)
    accuracy_clips: int = 2
    accuracy_frames: int = 24
    targets: tuple[Target, ...] = ()

    @property
    def comparisons(self) -> tuple[Comparison, ...]:
        return derive_comparisons(self.cases)

    def with_cases(self, cases: Sequence[BenchCase]) -> Suite:
        names = {c.name for c in cases}
        return replace(self, cases=tuple(cases), e2e=tuple(n for n in self.e2e if n in names),
                       accuracy=tuple(n for n in self.accuracy if n in names),
                       targets=tuple(t for t in self.targets if t.case in names))


def derive_comparisons(cases: Sequence[BenchCase]) -> tuple[Comparison, ...]:
    """Every speed-up the cases allow, each against the configuration that differs in one thing only."""
    by_key = {(c.model, c.method, c.backend, c.precision, c.keyframe_interval, c.lr_scale): c for c in cases}

    def find(case: BenchCase, **changes) -> BenchCase | None:
        other = replace(case, label=None, **changes)
        if not other.keyed:  # per-frame ignores interval and scale: any per-frame twin will do
            for c in cases:
                if (c.model, c.method, c.backend, c.precision) == (other.model, other.method, other.backend,
                                                                   other.precision):
                    return c
            return None
        return by_key.get((other.model, other.method, other.backend, other.precision, other.keyframe_interval,
                           other.lr_scale))

    out: list[Comparison] = []
    for case in cases:
        if case.keyed:
            base = find(case, method=baseline_method())
            if base is not None:
                out.append(Comparison(base.name, case.name,
                                      f"{case.method} over {base.method} HR ({case.backend})"))
        if case.backend != "torch":
            base = find(case, backend="torch")
            if base is not None:
                what = "compiled over eager" if case.backend == "compile" else f"{case.backend} over eager torch"
                out.append(Comparison(base.name, case.name, f"{what} ({case.method})"))
        if case.precision != "fp32":
            base = find(case, precision="fp32")
            if base is not None:
                out.append(Comparison(base.name, case.name, f"{case.precision} over fp32 ({case.method}, "
                                                             f"{case.backend})"))
    return tuple(out)


def custom_cases(models: Sequence[str], methods: Sequence[str], backends: Sequence[str], precisions: Sequence[str],
                 *, keyframe_interval: int | None = None, lr_scale: float = 0.5) -> tuple[BenchCase, ...]:
    """The cross product the command line asks for, plus the per-frame baseline of every method case and the
    eager-torch fp32 twin of every other engine/precision, so that each speed-up has its baseline measured
    in the same interleaved rounds. Methods a model does not run are left out."""
    from vidseg.models.registry import model_builder

    out: dict[str, BenchCase] = {}
    for model in models:
        model_builder(model)  # unknown names fail here, with suggestions
        supported = _methods_of(model)
        for method in methods:
            if method not in supported:
                continue
            interval = keyframe_interval or method_class(method).default_interval
            for backend in backends:
                for precision in precisions:
                    wanted = [BenchCase(model, method, backend, precision, interval, lr_scale)]
                    if method_class(method).uses_keyframes:
                        wanted.append(BenchCase(model, baseline_method(), backend, precision, interval, lr_scale))
                    if backend != "torch" or precision != "fp32":
                        wanted.append(BenchCase(model, method, "torch", "fp32", interval, lr_scale))
                    for case in wanted:
                        out.setdefault(case.name, case)
    if not out:
        raise ConfigError(f"no configuration to run: models {list(models)} support none of the methods "
                          f"{list(methods)}")
    return tuple(out.values())


def _methods_of(model: str) -> tuple[str, ...]:
    import torch

    from vidseg.models.registry import build_architecture

    with torch.device("meta"):
        return build_architecture(model).methods


# --- the suites ------------------------------------------------------------------------------------------------

_DEMO_PF = BenchCase("demo")
_DEMO_AR = BenchCase("demo", "arseg")
_BISE_PF = BenchCase("arseg-bise18-cityscapes")
_BISE_AR = BenchCase("arseg-bise18-cityscapes", "arseg")
_GSV_PF = BenchCase("gsvnet-swiftnet18")
_GSV_FW = BenchCase("gsvnet-swiftnet18", "flowwarp", keyframe_interval=3)

_DEFAULT_CPU = Suite(
    name="default",
    description="demo, AR-Seg BiSeNet-18 and GSVNet SwiftNet-18 at 256x512 on torch (+ ONNX for the demo): "
    "per-frame HR against arseg / flowwarp; end to end and demo accuracy",
    res=(256, 512),
    cases=(_DEMO_PF, _DEMO_AR, BenchCase("demo", backend="onnx"), _BISE_PF, _BISE_AR, _GSV_PF, _GSV_FW),
    rounds=8,
    round_frames=12,
    warmup=(1, 3, 0.10),
    clip_frames=24,
    e2e=(_DEMO_AR.name, _GSV_FW.name),
    accuracy=(_DEMO_PF.name, _DEMO_AR.name),
)


def _gpu_matrix() -> tuple[BenchCase, ...]:
    cases = []
    for pf, method_case in ((_DEMO_PF, _DEMO_AR), (_BISE_PF, _BISE_AR), (_GSV_PF, _GSV_FW)):
        for backend, precision in (("torch", "fp32"), ("torch", "fp16"), ("compile", "fp32"), ("compile", "fp16"),
                                   ("onnx", "fp32")):
            cases.append(replace(pf, backend=backend, precision=precision))
            cases.append(replace(method_case, backend=backend, precision=precision))
    return tuple(cases)


_DEFAULT_CUDA = replace(
    _DEFAULT_CPU,
    description="demo, AR-Seg BiSeNet-18 and GSVNet SwiftNet-18 at 1024x2048: torch, compile, onnx; fp32, fp16",
    res=(1024, 2048),
    cases=_gpu_matrix(),
    rounds=20,
    warmup=(3, 20, 0.03),
    e2e=(_DEMO_AR.name, _BISE_AR.name, _GSV_FW.name),
)

_GSV_L3 = BenchCase("gsvnet-swiftnet18", "flowwarp", "torch", "fp16", keyframe_interval=3,
                    label="GSVNet: gsvnet-swiftnet18 flowwarp L3 fp16")
_GSV_HR = BenchCase("gsvnet-swiftnet18", "per-frame", "torch", "fp16", label="gsvnet-swiftnet18 per-frame fp16")
_SANET_TRT = BenchCase("sanet", "per-frame", "trt", "fp16", label="SANet per-frame trt fp16")
_SANET_TORCH = BenchCase("sanet", "per-frame", "torch", "fp16", label="SANet per-frame torch fp16")
_PSP_PF = BenchCase("arseg-psp18-cityscapes", "per-frame", label="PSPNet-18 per-frame")
_PSP_AR = BenchCase("arseg-psp18-cityscapes", "arseg", keyframe_interval=12, lr_scale=0.5,
                    label="AR-Seg PSPNet-18 L12 s0.5")

# SwNet-seq's README (Cityscapes val): (interval i, input scale) -> (avg mIoU, min mIoU w/ edge, wo edge,
# frames/s on a GTX 1060, on a Tesla V100). i = 0 is SwiftNet-R18 on every frame. fp32, as the seed evaluates.
_SWSEQ_REPORTED = {
    (0, 0.5): (70.3, 70.3, 70.3, 52, 180), (0, 0.75): (74.4, 74.4, 74.4, 26, 109), (0, 1.0): (74.6, 74.6, 74.6, 15, 63),
    (1, 0.75): (73.7, 73.0, 72.6, 44, 171), (2, 0.75): (72.6, 70.6, 70.1, 58, 181),
    (3, 0.75): (71.8, 69.5, 68.8, 67, 186), (4, 0.75): (70.9, 67.6, 66.8, 75, 193),
    (2, 0.5): (69.1, 67.5, 67.0, 103, 194), (2, 1.0): (73.4, 72.0, 71.3, 36, 127),
}
_SWSEQ_MODEL = {0.5: "swnet-seq-0.5", 0.75: "swnet-seq", 1.0: "swnet-seq-1.0"}


def _swseq_case(i: int, scale: float) -> BenchCase:
    """The seed's interval i (non-keyframes between keys) is vidseg's keyframe interval i + 1."""
    if i == 0:
        return BenchCase(_SWSEQ_MODEL[scale], "per-frame", label=f"SwiftNet-R18 per-frame s{scale:g}")
    return BenchCase(_SWSEQ_MODEL[scale], "flowwarp", keyframe_interval=i + 1, label=f"SwNet-seq i={i} s{scale:g}")


def _swseq_target(i: int, scale: float) -> Target:
    avg, _with_edge, without_edge, fps_1060, fps_v100 = _SWSEQ_REPORTED[(i, scale)]
    if i == 0:
        return Target("SwNet-seq", _swseq_case(i, scale).name, f"SwiftNet-R18 per frame, input scale {scale:g}",
                      fps=float(fps_v100), gpu="Tesla V100",
                      note=f"GTX 1060: {fps_1060} frames/s; Cityscapes mIoU {avg}")
    return Target("SwNet-seq", _swseq_case(i, scale).name,
                  f"SwNet-seq, {i} non-keyframes between keys, input scale {scale:g}", fps=float(fps_v100),
                  gpu="Tesla V100", baseline=_swseq_case(0, scale).name,
                  note=f"GTX 1060: {fps_1060} frames/s; Cityscapes avg {avg} / min {without_edge} mIoU (min without "
                  "the README's edge refinement, which vidseg does not have)")


_SWSEQ_CASES = tuple(_swseq_case(i, s) for i, s in _SWSEQ_REPORTED)

_SEEDS = Suite(
    name="seeds",
    description="the seeds' published configurations at 1024x2048, with their numbers beside ours",
    res=(1024, 2048),
    cases=(*_SWSEQ_CASES, _GSV_HR, _GSV_L3, _SANET_TORCH, _SANET_TRT, _PSP_PF, _PSP_AR),
    rounds=8,
    round_frames=60,  # whole GOPs of every interval: 2, 3, 4, 5 (SwNet-seq) and 12 (AR-Seg)
    warmup=(2, 10, 0.03),
    clip_frames=60,
    targets=(
        *(_swseq_target(i, s) for i, s in _SWSEQ_REPORTED),
        Target("GSVNet (ICME 2021)", _GSV_L3.name, "SwiftNet-R18 keyframes at 0.75 scale, interval 3",
               fps=125.0, gpu="GTX 1080 Ti", baseline=_GSV_HR.name),
        Target("SANet", _SANET_TRT.name, "SANet-100, 1024x2048, TensorRT", fps=109.0, gpu="RTX 3090"),
        Target("SANet", _SANET_TORCH.name, "SANet-100, 1024x2048 (ours on torch fp16, beside their TensorRT)",
               fps=109.0, gpu="RTX 3090"),
        Target("AR-Seg (CVPR 2023)", _PSP_AR.name, "PSPNet-18, L=12, LR scale 0.5", baseline=_PSP_PF.name,
               gmacs_saving=0.67),
    ),
)

_SMOKE = Suite(
    name="smoke",
    description="a tiny run of every part (tests): demo per-frame vs arseg at 64x128",
    res=(64, 128),
    cases=(_DEMO_PF, BenchCase("demo", "arseg", keyframe_interval=4)),
    rounds=2,
    round_frames=8,
    warmup=(1, 1, 1.0),
    clip_frames=8,
    e2e=(BenchCase("demo", "arseg", keyframe_interval=4).name,),
    e2e_rounds=1,
    accuracy=(BenchCase("demo", "arseg", keyframe_interval=4).name,),
    accuracy_res=(64, 128),
    accuracy_clips=1,
    accuracy_frames=8,
    targets=(Target("AR-Seg (CVPR 2023)", BenchCase("demo", "arseg", keyframe_interval=4).name,
                    "demo pair, L=4, LR scale 0.5 (smoke check of the target arithmetic)",
                    baseline=_DEMO_PF.name, gmacs_saving=0.5),),
)

SUITES = {"default": (_DEFAULT_CPU, _DEFAULT_CUDA), "seeds": (_SEEDS, _SEEDS), "smoke": (_SMOKE, _SMOKE)}


def get_suite(name: str, device_type: str = "cpu") -> Suite:
    """The suite `name` for a device type ("cpu" or "cuda")."""
    if name not in SUITES:
        raise ConfigError(f"unknown suite {name!r}; choose one of: {', '.join(SUITES)}")
    cpu, cuda = SUITES[name]
    return cuda if device_type == "cuda" else cpu

"""BiSeNet-18 per frame: the seed's eager code path against vidseg's engines, same weights, one thread, interleaved.

    python benchmarks/seed_bisenet.py --res 512x1024 --rounds 8 --out benchmarks/results
    python benchmarks/seed_bisenet.py --res 128x256 --rounds 2 --engines torch bf16   # a quick look

The seed (AR-Seg's model/bisenet.py BiSeNetV1, evaluated as arseg.md §5 and §8.11 say) is vidseg's BiSeNetV1
module (the seed's state_dict layout, tests/models/test_bisenet.py) run the way the seed runs it: NCHW float32
eager under no_grad, the input normalised outside the network, the aux heads conv_out16/conv_out32 computed and
discarded (aux_mode='train' at evaluation), nn.Upsample(scale_factor=8) on the logits and argmax over NCHW logits,
in a process of its own with the C library's default allocator, as the seed runs (`SeedProcess`; this process
then takes vidseg's malloc settings, `vidseg.heap`, as `Engine` does on a CPU).
vidseg runs the HR network of `arseg-bise18-cityscapes` (the same module, the same random weights: no trained
Cityscapes BiSeNet ships with vidseg; the final 1x1 conv's bias is zeroed, because with its random bias one class
wins every pixel and every engine would agree trivially) as its per-frame `key` stage through its runners, then
`logits_to_labels`, as `Engine` does (the stage returns stride-8 logits; the seed's x8 upsample and the argmax run
there, in row bands, `ModelSpec.logits_upsample`):

  seed-heap   the seed's code in this process, under vidseg's malloc settings (vidseg.heap): how much of the
              speed-up is the allocator alone
  torch       EagerRunner, channels_last, inference_mode (what engine `auto` picks on a CPU)
  bf16        EagerRunner with bf16 autocast (oneDNN bf16 convolutions; AVX512-BF16 where the CPU has it)
  aoti        the stage's validated fp32 AOTInductor package, its 3x3 stride-1 convolutions of >= 128 channels
              as Winograd F(4x4, 3x3) (vidseg.kernels.winograd); compiled once (minutes), cached in --cache-dir
  onnx        the stage's validated fp32 ONNX artifact on ONNX Runtime's CPU EP, one intra-op thread
  onnx-int8   that artifact quantised statically by ONNX Runtime (QDQ, per-channel int8 weights, uint8
              activations calibrated on the benchmark frames), CPU EP, one thread

Frames: a synthetic 512x1024 street clip (vidseg.video.synthetic). Every round runs each engine over every frame
(engines interleaved, A B C A B C ...); per-frame time = round time / frames. Reported: median per-frame ms with
20/80 % quantiles, the paired speed-up seed / engine per round (vidseg.bench.stats), and label agreement with the
seed's float32 labels over all benchmark frames. Random weights make logits less decisive than trained ones (small
top-2 margins), so the agreement of reduced precisions is a pessimistic estimate. Writes JSON + Markdown under --out.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidseg.bench.env import environment
from vidseg.bench.harness import decode_all, prepare_clip
from vidseg.bench.report import write_record
from vidseg.bench.stats import paired_ratio, summarize
from vidseg.config import EngineConfig
from vidseg.engine.backends.base import runner_class
from vidseg.heap import retain_large_buffers
from vidseg.models.base import logits_to_labels
from vidseg.models.registry import build

MODEL = "arseg-bise18-cityscapes"
ENGINES = ("seed-heap", "torch", "bf16", "aoti", "onnx", "onnx-int8")


class SeedBiSeNet:
    """The seed's evaluation forward over a BiSeNetV1 module: uint8 HWC frame -> uint8 labels [H, W]."""

    def __init__(self, net: torch.nn.Module, mean, std) -> None:
        self.net = net.eval()
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255.0)  # ToTensor
        x = (x - self.mean) / self.std  # Normalize
        net = self.net
        feat_cp8, feat_cp16 = net.cp(x)
        feat_sp = net.sp(x)
        feat = net.ffm(feat_sp, feat_cp8)
        out = F.interpolate(net.conv_out.conv_out(net.conv_out.conv(feat)), scale_factor=8.0, mode="bilinear",
                            align_corners=False)  # the seed's BiSeNetOutput: conv, conv_out, nn.Upsample(x8)
        net.conv_out16(feat_cp8), net.conv_out32(feat_cp16)  # aux heads: computed at evaluation, discarded
        return out.argmax(1)[0].to(torch.uint8)


class SeedProcess:
    """The seed in a process of its own, as it runs on its own: with the C library's default allocator. vidseg's
    engines set process-wide malloc thresholds (`vidseg.heap`, as `Engine` does on a CPU), which would otherwise
    speed the seed's eager code up too. Times are taken inside the seed's process, per round over all frames."""

    def __init__(self, net: torch.nn.Module, mean, std, frames: list[np.ndarray], threads: int) -> None:
        spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this process's heap
        self.conn, child = spawn.Pipe()
        self.process = spawn.Process(target=_seed_worker, args=(child, net.state_dict(), mean, std, frames, threads),
                                     daemon=True)
        self.process.start()
        child.close()

    def _ask(self, what: str):
        self.conn.send(what)
        reply = self.conn.recv()
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def labels(self) -> list[torch.Tensor]:
        return self._ask("labels")

    def round_seconds(self) -> float:
        """Seconds per frame of one round over every frame."""
        return self._ask("round")

    def close(self) -> None:
        self.conn.send("stop")
        self.process.join(timeout=30)


def _seed_worker(conn, state: dict, mean, std, frames: list[np.ndarray], threads: int) -> None:
    torch.set_num_threads(threads)
    model = build(MODEL)
    model.hr.load_state_dict(state)
    seed = SeedBiSeNet(model.hr, mean, std)
    while (what := conn.recv()) != "stop":
        try:
            if what == "labels":
                conn.send([seed(f) for f in frames])
            else:
                start = time.perf_counter()
                for f in frames:
                    seed(f)
                conn.send((time.perf_counter() - start) / len(frames))
        except Exception as err:  # noqa: BLE001 - handed back to the benchmark, which raises it
            conn.send(err)


class RunnerEngine:
    """The per-frame `key` stage through one of vidseg's runners, then the labels step as `Engine` runs it."""

    def __init__(self, stage, spec, frame_size, backend: str, precision: str, cache_dir: Path) -> None:
        config = EngineConfig(model=MODEL, method="per-frame", backend=backend, precision=precision, device="cpu",
                              cache_dir=str(cache_dir))
        self.runner = runner_class(backend)({"key": stage}, config, frame_size, torch.device("cpu"))
        self.align, self.upsample = spec.logits_align_corners, spec.logits_upsample

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(image).permute(2, 0, 1)[None]  # the engine's DeviceIO view (channels_last)
        logits = self.runner.run("key", {"image": x})["logits"]
        logits = logits.float().contiguous(memory_format=torch.channels_last)  # as Engine._labels does
        return logits_to_labels(logits, image.shape[:2], align_corners=self.align, upsample=self.upsample)[0]


class OrtEngine:
    def __init__(self, path: str, spec, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.align, self.upsample = spec.logits_align_corners, spec.logits_upsample

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        x = np.ascontiguousarray(image.transpose(2, 0, 1)[None])
        logits = torch.from_numpy(self.session.run(["logits"], {self.input: x})[0])
        logits = logits.contiguous(memory_format=torch.channels_last)
        return logits_to_labels(logits, image.shape[:2], align_corners=self.align, upsample=self.upsample)[0]


def quantize_int8(fp32_path: Path, out_path: Path, frames: list[np.ndarray]) -> None:
    """Static QDQ quantisation by ONNX Runtime, calibrated (MinMax) on the frames."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"image": np.ascontiguousarray(f.transpose(2, 0, 1)[None])} for f in frames])

        def get_next(self):
            return next(self.items, None)

    prepared = out_path.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(out_path), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def build_engines(names, net, stage, spec, frame_size, calib, threads, workdir: Path, cache_dir: Path) -> dict:
    engines = {}
    for name in names:
        if name == "seed-heap":
            engines[name] = SeedBiSeNet(net, spec.mean, spec.std)  # in this process: vidseg's heap settings
        elif name in ("torch", "bf16"):
            engines[name] = RunnerEngine(stage, spec, frame_size, "torch", "fp32" if name == "torch" else "bf16",
                                         cache_dir)
        elif name == "aoti":
            engines[name] = RunnerEngine(stage, spec, frame_size, "aoti", "fp32", cache_dir)
        elif name in ("onnx", "onnx-int8"):
            from vidseg.export.onnx import export_onnx

            path = workdir / "key.onnx"
            if not path.exists():  # validated against the PyTorch stage, as vidseg-export does
                export_onnx(stage, path, *frame_size, stage_name="key")
            if name == "onnx-int8":
                q = workdir / "key.int8.onnx"
                if not q.exists():
                    quantize_int8(path, q, calib)
                path = q
            engines[name] = OrtEngine(str(path), spec, threads)
        else:
            raise SystemExit(f"unknown engine {name!r}; choose from {ENGINES}")
    return engines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--res", default="512x1024")
    ap.add_argument("--frames", type=int, default=4, help="benchmark frames (also the int8 calibration set)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    ap.add_argument("--cache-dir", default=None, help="artifact cache (default: a temporary folder; the AOTInductor "
                    "package takes minutes to compile, so keep one between runs)")
    ap.add_argument("--out", default=None, help="folder for <stem>.json/.md")
    ap.add_argument("--stem", default=None, help="record file name without suffix (default seed_bisenet_<res>)")
    args = ap.parse_args(argv)
    height, width = (int(v) for v in args.res.lower().split("x"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(MODEL)  # random weights, seeded above: the seed and vidseg share this module
    with torch.no_grad():
        model.hr.final_conv.bias.zero_()  # labels that vary over the frame (see the module docstring)
    stage = model.stages()["key"]
    net, spec = model.hr, model.spec
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="seed-bisenet-") as tmp:
        clip = prepare_clip(Path(tmp), (height, width), args.frames, gop=args.frames)
        frames = [f.image for f in decode_all(clip, motion=False)][: args.frames]
        seed = SeedProcess(net, spec.mean, spec.std, frames, args.threads)  # started before vidseg's malloc settings
        retain_large_buffers()  # what Engine does on a CPU device
        cache_dir = Path(args.cache_dir or Path(tmp) / "cache")
        engines = build_engines(args.engines, net, stage, spec, (height, width), frames, args.threads, Path(tmp),
                                cache_dir)
        reference = seed.labels()
        agreement = {"seed": 1.0}
        for name, engine in engines.items():
            same = sum(int((engine(f) == ref).sum()) for f, ref in zip(frames, reference, strict=True))
            agreement[name] = same / (len(frames) * height * width)
        times: dict[str, list[float]] = {"seed": [], **{name: [] for name in engines}}
        for _ in range(args.rounds):
            times["seed"].append(seed.round_seconds())
            for name, engine in engines.items():
                start = time.perf_counter()
                for f in frames:
                    engine(f)
                times[name].append((time.perf_counter() - start) / len(frames))
        seed.close()
    rows = []
    for name in times:
        s = summarize(times[name])
        ratio = paired_ratio(times["seed"], times[name])
        rows.append({"engine": name, "ms_p50": s.p50 * 1e3, "ms_q20": s.q20 * 1e3, "ms_q80": s.q80 * 1e3,
                     "seed_over_engine": ratio.to_dict(), "seed_over_engine_str": str(ratio),
                     "labels_same_as_seed_fp32": agreement[name]})
    record = {
        "script": "benchmarks/seed_bisenet.py", "argv": vars(args), "model": MODEL, "res": [height, width],
        "frames": args.frames, "rounds": args.rounds, "threads": args.threads,
        "load_start": load_start, "load_end": os.getloadavg(), "date": datetime.datetime.now().isoformat(),
        "machine": platform.machine(), "environment": environment(torch.device("cpu")), "rows": rows,
    }
    lines = [f"# BiSeNet-18 per frame, seed's eager code vs vidseg engines ({height}x{width}, {args.threads} thread)",
             "", "| engine | ms/frame p50 [q20-q80] | seed / engine (paired) | labels = seed fp32 |",
             "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['engine']} | {r['ms_p50']:.1f} [{r['ms_q20']:.1f}-{r['ms_q80']:.1f}] | "
                     f"{r['seed_over_engine_str']} | {100 * r['labels_same_as_seed_fp32']:.3f} % |")
    shown = " ".join(sys.argv[1:] if argv is None else argv)
    lines += ["", f"`python benchmarks/seed_bisenet.py {shown}`".replace(" `", "`"),
              f"- load average at start {[round(v, 2) for v in load_start]}, at end "
              f"{[round(v, 2) for v in record['load_end']]}; {args.frames} frames x {args.rounds} interleaved rounds"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        stem = Path(args.out) / (args.stem or f"seed_bisenet_{height}x{width}")
        written = write_record(stem, record, text.rstrip("\n"))
        print(f"wrote {written[0]}, {written[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

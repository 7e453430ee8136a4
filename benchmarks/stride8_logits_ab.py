"""BiSeNet's stride-8 logits: the engine's per-frame work before and after, interleaved in one process.

    python benchmarks/stride8_logits_ab.py --res 512x1024 --rounds 8 --out benchmarks/results

before: the stage upsamples its logits x8 inside (the seed's BiSeNetOutput, what vidseg's BiSeNetV1 stages did
until `ModelSpec.logits_upsample`), then Engine._labels' channels_last copy and argmax of the full-size map.
after: the stage returns stride-8 logits and `logits_to_labels(..., upsample=8)` does the x8 in row bands.
Same weights (arseg-bise18-cityscapes, random, final conv bias zeroed so that labels vary), same EagerRunner
(channels_last, fp32, one thread), for the key stage (every frame of per-frame, arseg's keyframes) and the
non-key stage (arseg's LR + CReFF), and the labels step alone on the key stage's logits (x8 + argmax; row
"labels"). Each round runs before/after of each stage back to back (order alternating
per round); reported: median ms with 20/80 % quantiles and the paired speed-up before / after per round
(`vidseg.bench.stats`), and whether the labels are identical. Whole-method figures come from vidseg-bench; this
isolates the change, whose share of a frame is small against the load noise of a shared machine.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from vidseg.bench.env import environment
from vidseg.bench.harness import decode_all, prepare_clip
from vidseg.bench.report import write_record
from vidseg.bench.stats import paired_ratio, summarize
from vidseg.config import EngineConfig
from vidseg.engine.backends.eager import EagerRunner
from vidseg.models.base import Stage, logits_to_labels, upsample_logits
from vidseg.models.registry import build

MODEL = "arseg-bise18-cityscapes"


class UpsampledInside(Stage):
    """The stage as it was: the seed's x8 upsample of the logits inside the stage."""

    def __init__(self, stage: Stage, factor: int) -> None:
        super().__init__()
        self.stage, self.factor = stage, factor
        self.input_names, self.output_names = stage.input_names, stage.output_names

    def input_shapes(self, height: int, width: int, batch: int = 1):
        return self.stage.input_shapes(height, width, batch)

    def forward(self, *inputs):
        logits, features = self.stage(*inputs)
        return upsample_logits(logits, self.factor), features


def labels_step(logits: torch.Tensor, size, spec, upsample: int) -> torch.Tensor:
    """Engine._labels: channels_last logits, then logits_to_labels."""
    logits = logits.contiguous(memory_format=torch.channels_last)
    return logits_to_labels(logits, size, align_corners=spec.logits_align_corners, upsample=upsample)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--res", default="512x1024")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--out", default=None, help="folder for <stem>.json/.md")
    ap.add_argument("--stem", default=None, help="record file name without suffix (default stride8_logits_ab_<res>)")
    args = ap.parse_args(argv)
    height, width = (int(v) for v in args.res.lower().split("x"))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build(MODEL)
    spec = model.spec
    with torch.no_grad():
        model.hr.final_conv.bias.zero_()
        model.lr.final_conv.bias.zero_()
    stages = model.stages()
    config = EngineConfig(model=MODEL, method="arseg", backend="torch", precision="fp32", device="cpu")
    cpu = torch.device("cpu")
    after = EagerRunner(stages, config, (height, width), cpu)
    before = EagerRunner({k: UpsampledInside(s, spec.logits_upsample) for k, s in stages.items()}, config,
                         (height, width), cpu)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="stride8-ab-") as tmp:
        clip = prepare_clip(Path(tmp), (height, width), 2, gop=2)
        frames = [f.image for f in decode_all(clip, motion=False)][:2]
    images = [torch.from_numpy(f).permute(2, 0, 1)[None] for f in frames]  # the engine's view (channels_last)
    key_features = after.run("key", {"image": images[0]})["features"]
    motion = torch.zeros(1, 2, *key_features.shape[-2:])
    inputs = {"key": {"image": images[0]},
              "nonkey": {"image": images[1], "key_features": key_features, "motion": motion}}
    runs = {"before": (before, 1), "after": (after, spec.logits_upsample)}

    stride8 = after.run("key", inputs["key"])["logits"]  # the key stage's logits, for the labels step alone

    def frame(which: str, stage: str) -> torch.Tensor:
        runner, upsample = runs[which]
        if stage == "labels":  # the x8 + argmax alone: in the stage (before) or banded (after)
            if which == "before":
                return labels_step(upsample_logits(stride8, spec.logits_upsample), (height, width), spec, 1)
            return labels_step(stride8, (height, width), spec, spec.logits_upsample)
        return labels_step(runner.run(stage, inputs[stage])["logits"], (height, width), spec, upsample)

    parts = (*inputs, "labels")
    identical = {s: bool(torch.equal(frame("before", s), frame("after", s))) for s in parts}
    times = {(w, s): [] for w in runs for s in parts}
    for r in range(args.rounds):
        for stage in parts:
            for which in (("before", "after") if r % 2 == 0 else ("after", "before")):
                start = time.perf_counter()
                frame(which, stage)
                times[which, stage].append(time.perf_counter() - start)
    rows = []
    for stage in parts:
        b, a = summarize(times["before", stage]), summarize(times["after", stage])
        ratio = paired_ratio(times["before", stage], times["after", stage])
        rows.append({"stage": stage, "before_ms": [b.p50 * 1e3, b.q20 * 1e3, b.q80 * 1e3],
                     "after_ms": [a.p50 * 1e3, a.q20 * 1e3, a.q80 * 1e3], "before_over_after": ratio.to_dict(),
                     "before_over_after_str": str(ratio), "labels_identical": identical[stage]})
    record = {"script": "benchmarks/stride8_logits_ab.py", "argv": vars(args), "model": MODEL, "res": [height, width],
              "rounds": args.rounds, "load_start": load_start, "load_end": os.getloadavg(),
              "date": datetime.datetime.now().isoformat(), "environment": environment(cpu), "rows": rows}
    lines = [f"# BiSeNet stride-8 logits: stage + labels step before / after ({height}x{width}, 1 thread)", "",
             "| stage + labels | before ms p50 [q20-q80] | after ms p50 [q20-q80] | before / after (paired) | "
             "labels identical |", "|---|---|---|---|---|"]
    for r in rows:
        b, a = r["before_ms"], r["after_ms"]
        lines.append(f"| {r['stage']} | {b[0]:.1f} [{b[1]:.1f}-{b[2]:.1f}] | {a[0]:.1f} [{a[1]:.1f}-{a[2]:.1f}] | "
                     f"{r['before_over_after_str']} | {r['labels_identical']} |")
    shown = " ".join(sys.argv[1:] if argv is None else argv)
    lines += ["", f"`python benchmarks/stride8_logits_ab.py {shown}`".replace(" `", "`"),
              f"- load average at start {[round(v, 2) for v in load_start]}, at end "
              f"{[round(v, 2) for v in record['load_end']]}; {args.rounds} rounds, before/after alternating"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        stem = Path(args.out) / (args.stem or f"stride8_logits_ab_{height}x{width}")
        written = write_record(stem, record, text.rstrip("\n"))
        print(f"wrote {written[0]}, {written[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

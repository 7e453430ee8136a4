"""vidseg-bench: model-only and end-to-end speed, side by side and interleaved, with accuracy next to it.

    vidseg-bench                                   # the default suite on this machine's device
    vidseg-bench --suite seeds --device cuda       # the seeds' configurations, with their numbers beside ours
    vidseg-bench --model arseg-bise18-cityscapes --method arseg --engine torch compile --res 512x1024
    vidseg-bench --suite smoke --out /tmp/b        # a tiny run of every part

Writes <device-slug>-<date>-<suite>.{json,md,png} to --out (default: a new folder vidseg-out/benchN). Every
figure of a report comes from the same interleaved rounds: frames/s is the median round's, speed-ups are the
median of per-round ratios. What each number means: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

from vidseg.cli.common import cli_entry
from vidseg.config import BACKENDS, METHODS, PRECISIONS
from vidseg.errors import ConfigError

__all__ = ["main", "run_suite"]

COMPARISON_COLUMNS = (
    ("what", "comparison", "{}"),
    ("case", "configuration", "{}"),
    ("baseline", "baseline", "{}"),
    ("speedup_str", "measured speed-up [q20-q80]", "{}"),
    ("gmacs_predicted", "GMACs-predicted", "{:.2f}x"),
    ("realised", "measured / predicted", "{:.2f}"),
)
E2E_COLUMNS = (
    ("name", "end to end", "{}"),
    ("pipeline_fps", "pipeline frames/s", "{:.1f}"),
    ("decode_fps", "decode-only frames/s", "{:.1f}"),
    ("pipeline_over_decode_str", "pipeline / decode [q20-q80]", "{}"),
    ("outside_stages_share", "outside the model stages", "{:.0%}"),
    ("motion_export", "motion export", "{}"),
)
ACCURACY_COLUMNS = (
    ("name", "accuracy (synthetic)", "{}"),
    ("miou", "mIoU (mean over d)", "{:.1%}"),
    ("miou_min", "min over d", "{:.1%}"),
    ("miou_d0", "d=0", "{:.1%}"),
    ("miou_dmax", "largest d", "{:.1%}"),
    ("tc", "TC (bwd)", "{:.1%}"),
    ("agreement", "agreement with per-frame", "{:.1%}"),
    ("agreement_min", "its min", "{:.1%}"),
)
TARGET_COLUMNS = (
    ("seed", "seed", "{}"),
    ("setting", "their setting", "{}"),
    ("their_fps", "their frames/s", "{:.0f}"),
    ("their_gpu", "their GPU", "{}"),
    ("our_fps", "our frames/s", "{:.1f}"),
    ("our_device", "our device", "{}"),
    ("their_gmacs_saving", "their GMACs saving", "{:.0%}"),
    ("our_gmacs_saving", "our GMACs saving", "{:.0%}"),
    ("speedup_str", "measured speed-up", "{}"),
    ("gmacs_predicted", "GMACs-predicted", "{:.2f}x"),
    ("realised", "measured / predicted", "{:.2f}"),
)


def _res(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"resolution must be HxW, e.g. 1024x2048, got {text!r}") from err
    if h < 16 or w < 16 or h % 2 or w % 2:
        raise argparse.ArgumentTypeError(f"resolution {text!r}: both sides must be even and >= 16 (H.264 yuv420p)")
    return h, w


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidseg-bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="default", help="default | seeds | smoke (see vidseg/bench/suites.py)")
    p.add_argument("--res", type=_res, help="HxW instead of the suite's resolution (e.g. 1024x2048)")
    p.add_argument("--model", nargs="+", help="models to run instead of the suite's cases")
    p.add_argument("--method", nargs="+", choices=METHODS, help="methods (with --model; default all it runs)")
    p.add_argument("--engine", nargs="+", choices=[b for b in BACKENDS if b != "auto"], help="engines (backends)")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, help="precisions")
    p.add_argument("--interval", type=int, help="keyframe interval (with --model; default 12 arseg, 3 flowwarp)")
    p.add_argument("--lr-scale", type=float, default=0.5, help="arseg LR scale (with --model)")
    p.add_argument("--rounds", type=int, help="interleaved timed rounds per configuration")
    p.add_argument("--input", help="a video for the end-to-end and model-only frames (default: a synthetic clip)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    p.add_argument("--threads", type=int, help="CPU threads of torch and ONNX Runtime (default: torch's own choice)")
    p.add_argument("--out", type=Path, help="folder for the json, md and png (default: a new vidseg-out/benchN)")
    p.add_argument("--no-accuracy", action="store_true", help="skip mIoU / TC on synthetic clips")
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end measurement")
    return p


def _select(suite, args):
    from vidseg.bench.suites import custom_cases

    if args.model:
        cases = custom_cases(args.model, args.method or METHODS, args.engine or ("torch",),
                             args.precision or ("fp32",), keyframe_interval=args.interval, lr_scale=args.lr_scale)
        e2e = tuple(c.name for c in cases if c.keyed and c.backend == "torch")[:2]
        accuracy = tuple(c.name for c in cases if c.backend == "torch" and c.precision == "fp32")
        what = ", ".join(dict.fromkeys(args.model))
        suite = replace(suite, name=f"{suite.name}-custom", cases=cases, e2e=e2e, accuracy=accuracy, targets=(),
                        description=f"custom selection: {what} ({len(cases)} configurations)")
    elif args.method or args.engine or args.precision:
        cases = [c for c in suite.cases
                 if (not args.method or c.method in args.method or not c.keyed)
                 and (not args.engine or c.backend in args.engine or c.backend == "torch")
                 and (not args.precision or c.precision in args.precision or c.precision == "fp32")]
        suite = suite.with_cases(cases)
    if args.res:
        suite = replace(suite, res=args.res)
    if args.rounds:
        suite = replace(suite, rounds=args.rounds)
    intervals = {c.keyframe_interval for c in suite.cases if c.keyed}
    if any(suite.round_frames % i for i in intervals):  # keep whole GOPs per round
        import math

        lcm = math.lcm(*intervals)
        suite = replace(suite, round_frames=lcm, clip_frames=max(suite.clip_frames, lcm))
    return suite


def run_suite(suite, *, device: str, out: Path, input_path: str | None = None, accuracy: bool = True,
              e2e: bool = True, console=None, argv: list[str] | None = None) -> dict:
    """Run a suite and write its outputs; returns the JSON payload (with "files")."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from vidseg.bench import harness, report
    from vidseg.bench.env import device_slug, environment

    console = console or Console()
    load_start = _loadavg()
    started = time.perf_counter()
    env = environment(torch.device(device))
    notes: list[str] = []
    steps = len(suite.cases) * (suite.rounds + 1) + 2 + (len(suite.e2e) if e2e else 0) \
        + (len(suite.accuracy) if accuracy else 0)
    with tempfile.TemporaryDirectory(prefix="vidseg-bench-") as tmp, warnings.catch_warnings(), Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=Console(stderr=True), transient=True,
    ) as bar:
        warnings.simplefilter("ignore", RuntimeWarning)  # engine notices are recorded in the rows' notes
        task = bar.add_task(f"{suite.name}: preparing the clip", total=steps)

        def progress(message: str) -> None:
            bar.update(task, description=f"{suite.name}: {message}", advance=1)

        if input_path:
            clip = Path(input_path)
        else:
            clip = harness.prepare_clip(Path(tmp), suite.res, suite.clip_frames, gop=suite.round_frames)
        frames = harness.decode_all(clip, motion=True)
        if frames and tuple(frames[0].image.shape[:2]) != tuple(suite.res):
            notes.append(f"--input frames are {frames[0].image.shape[0]}x{frames[0].image.shape[1]}, not the "
                         f"suite's {suite.res[0]}x{suite.res[1]}; GMACs are counted at the frames' size")
        res = tuple(frames[0].image.shape[:2]) if frames else suite.res
        progress("counting GMACs")
        gmacs = {}
        for case in suite.cases:
            try:
                gmacs[case.name] = harness.gmacs_per_frame(case, res, suite.round_frames)
            except Exception as err:  # noqa: BLE001 - a model that cannot be counted is still timed
                notes.append(f"{case.name}: GMACs not counted ({type(err).__name__}: {err})")
        wmin, wmax, wtol = suite.warmup
        results = harness.measure_model_only(
            suite.cases, frames, rounds=suite.rounds, round_frames=suite.round_frames, device=device,
            progress=progress, warmup={"min_rounds": wmin, "max_rounds": wmax, "tol": wtol},
        )
        for name, r in results.items():
            r.gmacs = gmacs.get(name)
        comparisons = harness.compare(results, suite.comparisons)
        rows = [r.row(suite.round_frames) for r in results.values()]
        for row in rows:
            comp = next((c for c in comparisons if c["case"] == row["name"] and c.get("speedup")), None)
            row["speedup"] = comp["speedup_str"] if comp else None

        e2e_rows = []
        if e2e:
            by_name = {c.name: c for c in suite.cases}
            for name in suite.e2e:
                progress(f"end to end: {name}")
                try:
                    r = harness.measure_end_to_end(by_name[name], clip, rounds=suite.e2e_rounds, device=device)
                except Exception as err:  # noqa: BLE001 - reported, the rest of the suite stands
                    notes.append(f"{name}: end to end not measured ({type(err).__name__}: {err})")
                    continue
                ratio = r["pipeline_over_decode"]
                r["pipeline_over_decode_str"] = f"{ratio['median']:.2f}x [{ratio['q20']:.2f}-{ratio['q80']:.2f}]"
                e2e_rows.append(r)

        acc_rows = []
        if accuracy:
            # A model timed with random weights is not scored, even if weights appear during the run.
            untrained = {r.case.name for r in results.values() if any("random weights" in n for n in r.notes)}
            acc_rows = _accuracy(suite, Path(tmp), device, progress, notes, skip=untrained)
            by_acc = {a["name"]: a for a in acc_rows}
            for row in rows:
                if row["name"] in by_acc:
                    row["miou"], row["tc"] = by_acc[row["name"]]["miou"], by_acc[row["name"]]["tc"]

    target_rows = _targets(suite, results, comparisons, env, res)
    load_end = _loadavg()
    for row in rows:
        notes.extend(f"{row['name']}: {n}" for n in row["notes"])
    notes.append(f"load average (1/5/15 min) at start {load_start}, at end {load_end}; {env.get('cpu_count')} "
                 f"CPUs, torch threads {env.get('torch_threads')}")
    if device == "cpu":
        notes.append("CPU run: per-frame latency and stage times are host wall clock; frames were decoded once and "
                     "kept in memory (model only)")
    else:
        notes.append("CUDA run: stage and device times from CUDA events on the compute stream; latency is host time "
                     "from submit to labels on the host; frames resident on the GPU before timing")
    payload = {
        "suite": suite.name,
        "description": suite.description,
        "argv": argv,
        "device": device,
        "res": list(res),
        "rounds": suite.rounds,
        "round_frames": suite.round_frames,
        "warmup": list(suite.warmup),
        "input": str(input_path) if input_path else f"synthetic H.264 clip {res[0]}x{res[1]}, GOP "
        f"{suite.round_frames}, {suite.clip_frames} frames",
        "env": env,
        "load_average": {"start": load_start, "end": load_end},
        "wall_s": round(time.perf_counter() - started, 1),
        "rows": rows,
        "comparisons": comparisons,
        "end_to_end": e2e_rows,
        "accuracy": acc_rows,
        "targets": target_rows,
        "notes": notes,
    }
    stem = f"{device_slug(env)}-{_dt.date.today().isoformat()}-{suite.name}"
    out = Path(out)
    sections = [("Speed-ups (paired, interleaved rounds)", report.markdown_table(comparisons, COMPARISON_COLUMNS))]
    if e2e_rows:
        sections.append(("End to end (decode + inference + label PNGs)", report.markdown_table(e2e_rows, E2E_COLUMNS)))
    if acc_rows:
        sections.append(("Accuracy (synthetic benchmark set)", report.markdown_table(acc_rows, ACCURACY_COLUMNS)))
    if target_rows:
        sections.append(("Seeds' targets (theirs on their GPUs; ours on this device)",
                         report.markdown_table(target_rows, TARGET_COLUMNS)))
    sections.append(("Run", [f"`{' '.join(['vidseg-bench', *(argv or [])])}` — suite {suite.name}: "
                             f"{suite.description}; {res[0]}x{res[1]}, {suite.rounds} interleaved rounds of "
                             f"{suite.round_frames} frames per configuration; wall {payload['wall_s']} s"]))
    files = [report.write_json(out / f"{stem}.json", payload), report.write_markdown(out / f"{stem}.md", rows, env,
                                                                                     notes, sections)]
    png = report.write_plot(out / f"{stem}.png", rows, fallback=True)
    if png:
        files.append(png)
    payload["files"] = [str(f) for f in files]

    console.print(report.render_table(rows, title=f"vidseg-bench {suite.name} — {env.get('gpu') or env.get('cpu')} "
                                                  f"— {res[0]}x{res[1]}"))
    console.print(report.render_table(comparisons, title="speed-ups (paired per round)", columns=COMPARISON_COLUMNS))
    if e2e_rows:
        console.print(report.render_table(e2e_rows, title="end to end", columns=E2E_COLUMNS))
    if acc_rows:
        console.print(report.render_table(acc_rows, title="accuracy", columns=ACCURACY_COLUMNS))
    if target_rows:
        console.print(report.render_table(target_rows, title="seeds' targets", columns=TARGET_COLUMNS))
    for note in notes:
        console.print(f"- {note}", highlight=False, markup=False)
    console.print("wrote " + ", ".join(payload["files"]), highlight=False, markup=False)
    return payload


def _accuracy(suite, tmp: Path, device: str, progress, notes: list[str], skip=frozenset()) -> list[dict]:
    from vidseg.bench import harness

    by_name = {c.name: c for c in suite.cases}
    rows = []
    for name in suite.accuracy:
        case = by_name[name]
        progress(f"accuracy: {name}")
        if name in skip:
            notes.append(f"{name}: accuracy skipped (timed with random weights: no trained weights installed)")
            continue
        gop = case.keyframe_interval if case.keyed else 12
        clips = [harness.prepare_clip(tmp, suite.accuracy_res, suite.accuracy_frames, gop=gop, seed=101 + i)
                 for i in range(suite.accuracy_clips)]
        try:
            acc = harness.measure_accuracy(case, clips, device=device)
        except Exception as err:  # noqa: BLE001 - reported, the rest of the suite stands
            notes.append(f"{name}: accuracy not measured ({type(err).__name__}: {err})")
            continue
        if acc is None:
            notes.append(f"{name}: accuracy skipped (the model has no trained weights installed)")
            continue
        per_d = acc.get("miou_per_distance") or {}
        ds = sorted(int(d) for d in per_d) if isinstance(per_d, dict) else list(range(len(per_d)))
        values = [per_d[d] if d in per_d else per_d.get(str(d)) for d in ds] if isinstance(per_d, dict) else per_d
        rows.append({"name": name, **acc, "miou_d0": values[0] if values else None,
                     "miou_dmax": values[-1] if values else None,
                     "clips": f"{suite.accuracy_clips} x {suite.accuracy_frames} frames "
                              f"{suite.accuracy_res[0]}x{suite.accuracy_res[1]}, GOP {gop}"})
    return rows


def _targets(suite, results, comparisons, env, res) -> list[dict]:
    rows = []
    our_device = env.get("gpu") or f"CPU ({env.get('cpu_count')} cores)"
    for t in suite.targets:
        r = results.get(t.case)
        row = {"seed": t.seed, "case": t.case, "setting": t.setting, "their_fps": t.fps, "their_gpu": t.gpu,
               "our_device": our_device, "their_gmacs_saving": t.gmacs_saving, "note": t.note}
        if r is not None and r.round_s:
            row["our_fps"] = r.row(suite.round_frames)["fps"]  # the median round, as in every other table
        base = results.get(t.baseline) if t.baseline else None
        if base is not None and base.gmacs and r is not None and r.gmacs:
            row["our_gmacs_saving"] = 1.0 - r.gmacs / base.gmacs
        comp = next((c for c in comparisons if c["case"] == t.case and c["baseline"] == t.baseline), None)
        if comp and comp.get("speedup"):
            row.update(speedup_str=comp["speedup_str"], gmacs_predicted=comp["gmacs_predicted"],
                       realised=comp["realised"])
        if tuple(res) != (1024, 2048):
            row["note"] = (row["note"] + "; " if row["note"] else "") + f"ours at {res[0]}x{res[1]}, theirs at " \
                "their paper's resolution"
        rows.append(row)
    return rows


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


@cli_entry
def main(argv: list[str] | None = None) -> int:
    import sys

    import torch

    from vidseg.bench.suites import get_suite

    raw = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(raw)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible to torch; use --device cpu")
    if args.input and not Path(args.input).is_file():
        raise ConfigError(f"--input {args.input!r} is not a file")
    suite = _select(get_suite(args.suite, device), args)
    if not suite.cases:
        raise ConfigError(f"the filters leave no configuration of suite {args.suite!r} to run")
    from vidseg.cli.outputs import output_dir

    payload = run_suite(suite, device=device, out=output_dir(args.out, prefix="bench"), input_path=args.input,
                        accuracy=not args.no_accuracy, e2e=not args.no_e2e, argv=raw)
    return 0 if any(row["rounds"] for row in payload["rows"]) else 1


if __name__ == "__main__":
    main()

"""vidseg-run INPUTS... --cluster [local|auto|ray://HOST:PORT|HOST:PORT]: the cluster half of vidseg-run.

    vidseg-run clips/ --cluster local --save labels --out results/           # this machine, one worker per CPU/GPU
    vidseg-run drives.txt cams.jsonl --cluster auto --out /shared/results    # a cluster started with `ray start`
    vidseg-run clips/ --cluster --resume --out results/                      # skip what a previous run finished

vidseg-run parses the options and hands over here when --cluster is given. Outputs go to <out>/<input name>/, a
live input's to <out>/<input name>/session-<UTC start>/ (a new one every run: --resume does not skip a stream);
a live progress view runs on a terminal; at the end a summary table is printed and <out>/_vidseg_report.json
written (and a copy at --json PATH). Exit status: 0 when every input is done or skipped, 1 when some failed
(the table says which and why).
Ctrl-C ends the live streams (their outputs so far are kept as their sessions) and discards unfinished offline
files (--resume redoes them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidseg.cluster.naming import is_url
from vidseg.config import EngineConfig
from vidseg.errors import ConfigError
from vidseg.video.redact import redact
from vidseg.video.save import default_root

__all__ = ["main", "DEFAULT_SAVE"]

DEFAULT_SAVE = ("labels",)


def main(args: argparse.Namespace, config: EngineConfig, save: tuple[str, ...] | None) -> int:
    """Run vidseg-run's parsed arguments on a cluster. save: the parsed --save (None when not given:
    DEFAULT_SAVE)."""
    from vidseg.cli.sources import source_options
    from vidseg.cluster.connect import import_ray
    from vidseg.cluster.driver import ClusterRun
    from vidseg.cluster.progress import ProgressDisplay
    from vidseg.cluster.report import REPORT_NAME, print_report

    if args.demo:
        raise ConfigError("--demo renders one clip; give input videos with --cluster")
    if not args.inputs:
        raise ConfigError("--cluster needs inputs: video files, folders, globs, .txt/.jsonl manifests or URLs")
    if args.out and is_url(args.out):
        raise ConfigError(f"--cluster writes a folder per input; --out {redact(args.out)} is a stream URL: give a "
                          "folder (one every worker can reach), or run one stream without --cluster")
    import_ray()  # without Ray: one line saying how to install it, before anything else is said or done
    out = Path(args.out) if args.out else default_root()
    display = ProgressDisplay(enabled=not args.no_progress)
    save = DEFAULT_SAVE if save is None else save
    config = config.replace(return_logits="probs" in save)  # probabilities are written from the logits
    job = ClusterRun(args.inputs, config, out=out, address=args.cluster, save=save,
                     workers=args.workers, resume=args.resume, max_frames=args.max_frames, live=args.live,
                     progress=display, source_options=source_options(args))
    print(f"vidseg-run --cluster {args.cluster}: {len(job.inputs)} inputs -> {job.out} (starting Ray and the "
          "workers)", file=sys.stderr)
    interrupted = False
    try:
        with display:
            report = job.run()
    except KeyboardInterrupt:
        report, interrupted = job.report(), True
    path = report.write_json(job.out / REPORT_NAME)
    if args.json:
        report.write_json(args.json)  # --json PATH: a copy where the caller asked for it
    print_report(report, json_path=path)
    if interrupted:
        raise KeyboardInterrupt
    return 0 if report.ok else 1

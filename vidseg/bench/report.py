"""Writing a benchmark run: a rich table for the terminal, JSON with everything, markdown, and a PNG plot."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

__all__ = ["render_table", "write_json", "write_markdown", "write_plot", "markdown_table", "COLUMNS"]

# (key in a result row, column title, format)
COLUMNS = (
    ("name", "config", "{}"),
    ("fps", "frames/s (median round)", "{:.1f}"),
    ("latency_key_p50_ms", "key p50 ms", "{:.1f}"),
    ("latency_nonkey_p50_ms", "non-key p50 ms", "{:.1f}"),
    ("latency_p99_ms", "p99 ms", "{:.1f}"),
    ("gmacs_per_frame", "GMACs/frame", "{:.3g}"),
    ("peak_mem_mib", "peak MiB", "{:.0f}"),
    ("speedup", "speed-up", "{}"),
    ("miou", "mIoU", "{:.1%}"),
    ("tc", "TC", "{:.1%}"),
)


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def render_table(rows: Sequence[dict], title: str = "vidseg-bench", columns: Sequence[tuple[str, str, str]] = COLUMNS):
    """A rich Table of the result rows (columns without any value are left out)."""
    from rich.table import Table

    cols = [c for c in columns if any(r.get(c[0]) is not None for r in rows)]
    table = Table(title=title)
    for i, (_, header, _) in enumerate(cols):  # folded, never cut, on a narrow terminal
        table.add_column(header, justify="left" if i == 0 else "right", overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row, key, fmt) for key, _, fmt in cols))
    return table


def write_json(path: Path, payload: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def markdown_table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]]) -> list[str]:
    """Lines of a markdown table (columns without any value are left out)."""
    cols = [c for c in columns if any(r.get(c[0]) is not None for r in rows)]
    lines = ["| " + " | ".join(h for _, h, _ in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_cell(row, k, f) for k, _, f in cols) + " |" for row in rows]
    return lines


def write_record(stem: str | Path, payload: dict, markdown: str) -> tuple[Path, Path]:
    """A benchmark script's record: <stem>.json (everything) and <stem>.md (the table), side by side."""
    stem = Path(stem)
    json_path = write_json(stem.with_name(stem.name + ".json"), payload)
    md_path = stem.with_name(stem.name + ".md")
    md_path.write_text(markdown + "\n")
    return json_path, md_path


def write_markdown(path: Path, rows: Sequence[dict], env: dict, notes: Sequence[str] = (),
                   sections: Sequence[tuple[str, Sequence[str]]] = ()) -> Path:
    """The result table, then each (title, markdown lines) section, then the notes as a list."""
    cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    lines = [
        f"# vidseg-bench — {env.get('gpu') or env.get('cpu')} — {env.get('date')}",
        "",
        f"commit {env.get('commit')}, torch {env['packages'].get('torch')}, device {env.get('device')}"
        + (f", CUDA {env.get('cuda')}, driver {env.get('driver')}" if env.get("gpu") else "")
        + f", {env.get('cpu_count')} CPU cores",
        "",
        "| " + " | ".join(h for _, h, _ in cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row, k, f) for k, _, f in cols) + " |")
    for title, body in sections:
        lines += ["", f"## {title}", "", *body]
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_plot(path: Path, rows: Sequence[dict], *, fallback: bool = False) -> Path | None:
    """frames/s against mIoU, one point per configuration; None when no row has both.

    fallback: when no row has an mIoU (no model with trained weights was scored), plot frames/s per
    configuration as bars instead, titled so, rather than no figure at all.
    """
    points = [(r["fps"], 100 * r["miou"], r["name"]) for r in rows if r.get("fps") and r.get("miou") is not None]
    bars = [(r["fps"], r["name"]) for r in rows if r.get("fps") and not math.isnan(r["fps"])]
    if not points and not (fallback and bars):
        return None
    try:
        import matplotlib
    except ModuleNotFoundError:  # the plot is optional: `pip install matplotlib` (in the dev extra)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not points:
        fig, ax = plt.subplots(figsize=(7, 1.2 + 0.35 * len(bars)), dpi=110)
        ax.barh([name for _, name in bars], [fps for fps, _ in bars])
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel("frames/s (model only, median round)")
        ax.set_title("frames/s (no mIoU: no configuration with trained weights was scored)", fontsize=8)
        ax.grid(alpha=0.3, axis="x")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
        return path
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for fps, miou, name in points:
        ax.scatter(fps, miou)
        ax.annotate(name, (fps, miou), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("frames/s (model only, median round)")
    ax.set_ylabel("mIoU % (synthetic benchmark set)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path

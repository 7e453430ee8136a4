import json

from vidseg.bench.env import device_slug, environment
from vidseg.bench.report import render_table, write_json, write_markdown, write_plot

ROWS = [
    {"name": "per-frame torch fp32", "fps": 10.0, "latency_p99_ms": 120.0, "miou": 0.6},
    {"name": "arseg torch fp32", "fps": 25.0, "latency_p99_ms": 110.0, "miou": 0.58, "speedup": "2.50x [2.4-2.6]"},
]


def test_table_markdown_json_plot(tmp_path):
    import torch

    env = environment(torch.device("cpu"))
    assert env["packages"]["torch"] and device_slug(env).startswith("cpu-")
    table = render_table(ROWS)
    assert [c.header for c in table.columns] == ["config", "frames/s (median round)", "p99 ms", "speed-up", "mIoU"]
    md = write_markdown(tmp_path / "r.md", ROWS, env).read_text()
    assert "| arseg torch fp32 | 25.0 | 110.0 | 2.50x [2.4-2.6] | 58.0% |" in md  # mIoU in %
    assert json.loads(write_json(tmp_path / "r.json", {"rows": ROWS}).read_text())["rows"][1]["fps"] == 25.0
    png = write_plot(tmp_path / "r.png", ROWS)
    assert png is None or png.read_bytes()[:4] == b"\x89PNG"

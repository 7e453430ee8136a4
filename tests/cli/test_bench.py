import json

import numpy as np
import pytest

from vidseg.cli.bench import main


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert main(["--suite", "smoke", "--device", "cpu", "--out", str(out)]) == 0
    files = sorted(out.iterdir())
    return out, files


def test_smoke_suite_writes_json_markdown_png(smoke):
    out, files = smoke
    suffixes = sorted(f.suffix for f in files)
    assert suffixes == [".json", ".md", ".png"]
    stem = files[0].stem
    assert stem.startswith("cpu-") and stem.endswith("-smoke") and all(f.stem == stem for f in files)
    assert (out / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
    payload = json.loads((out / f"{stem}.json").read_text())
    assert payload["env"]["packages"]["torch"] and payload["load_average"]["start"] is not None
    rows = {r["name"]: r for r in payload["rows"]}
    assert len(rows) == 2
    for row in rows.values():
        assert row["rounds"] == 2 and row["fps"] > 0 and row["gmacs_per_frame"] > 0
        assert row["latency_p50_ms"] > 0 and "key" in row["stage_ms_per_frame"]
    arseg = rows["demo arseg torch fp32 L4 s0.5"]
    assert arseg["keyframes"] == 2 * 2 and arseg["non_keyframes"] == 2 * 6  # 8-frame rounds, key every 4
    md = (out / f"{stem}.md").read_text()
    assert "| demo arseg torch fp32 L4 s0.5 |" in md and "## Speed-ups" in md and "load average" in md
    assert payload["end_to_end"] and payload["end_to_end"][0]["decode_fps"] > 0
    assert 0 < payload["end_to_end"][0]["outside_stages_share"] < 1


def test_speedups_come_from_interleaved_paired_rounds(smoke):
    out, files = smoke
    payload = json.loads(next(f for f in files if f.suffix == ".json").read_text())
    rows = {r["name"]: r for r in payload["rows"]}
    (comp,) = payload["comparisons"]
    base, case = rows[comp["baseline"]], rows[comp["case"]]
    # A B A B: round i of the baseline ran right before round i of the case
    assert base["round_seq"] == [0, 2] and case["round_seq"] == [1, 3]
    paired = np.median(np.asarray(base["round_s"]) / np.asarray(case["round_s"]))
    assert comp["speedup"]["median"] == pytest.approx(paired) and comp["speedup"]["rounds"] == 2
    assert comp["gmacs_predicted"] == pytest.approx(base["gmacs_per_frame"] / case["gmacs_per_frame"])
    assert comp["realised"] == pytest.approx(comp["speedup"]["median"] / comp["gmacs_predicted"])


def test_bad_arguments_fail_with_one_line(capsys):
    assert main(["--suite", "nope", "--device", "cpu"]) != 0
    assert "unknown suite" in capsys.readouterr().err


def test_accuracy_rows_of_keyframe_methods_carry_agreement_with_per_frame(smoke):
    out, files = smoke
    payload = json.loads(next(f for f in files if f.suffix == ".json").read_text())
    (row,) = payload["accuracy"]
    assert row["name"] == "demo arseg torch fp32 L4 s0.5"
    assert 0.0 < row["agreement_min"] <= row["agreement"] <= 1.0
    assert "agreement with per-frame" in (out / f"{files[0].stem}.md").read_text()

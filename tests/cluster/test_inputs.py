"""Expanding INPUTS: files, folders, globs, .txt/.jsonl manifests, URLs; names that never collide or leak."""

from __future__ import annotations

import json

import pytest

from vidseg.cluster.inputs import ClusterInput, expand_inputs
from vidseg.cluster.naming import is_url, safe_name
from vidseg.errors import InputError
from vidseg.video.redact import redact


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_is_every_video_in_it_recursively_sorted_without_hidden(tmp_path):
    for rel in ("b.mp4", "a.MKV", "sub/c.mov", "notes.txt", ".hidden.mp4", ".staging/x.1/d.mp4"):
        _touch(tmp_path / "clips" / rel)
    found = expand_inputs([tmp_path / "clips"])
    assert [i.name for i in found] == ["a", "b", "c"]
    assert all(i.source.startswith(str(tmp_path)) and not i.live for i in found)


def test_glob_txt_manifest_and_duplicates(tmp_path):
    for name in ("a", "b", "c"):
        _touch(tmp_path / "v" / f"{name}.mp4")
    manifest = tmp_path / "list.txt"
    manifest.write_text("# drives of the day\nv/a.mp4\n\n" + str(tmp_path / "v" / "b.mp4") + "\n")
    found = expand_inputs([manifest, str(tmp_path / "v" / "*.mp4")])
    assert [i.name for i in found] == ["a", "b", "c"]  # a and b once each, in first-seen order


def test_jsonl_options_and_explicit_names(tmp_path):
    _touch(tmp_path / "a.mp4")
    _touch(tmp_path / "b.mp4")
    manifest = tmp_path / "cams.jsonl"
    lines = [{"input": "a.mp4", "name": "front", "max_frames": 5, "save": "labels,npz"},
             {"input": "b.mp4", "live": True},
             {"input": "rtsp://admin:hunter2@10.0.0.5:554/stream1?token=abc", "name": "cam7"}]
    manifest.write_text("\n".join(json.dumps(line) for line in lines))
    front, b, cam = expand_inputs([manifest])
    assert (front.name, front.max_frames, front.save, front.live) == ("front", 5, ("labels", "npz"), False)
    assert b.live and b.name == "b"
    assert cam.live and cam.name == "cam7" and "hunter2" not in cam.display and "abc" not in cam.display


@pytest.mark.parametrize("line, words", [
    ('{"input": "a.mp4", "fps": 3}', "unknown key"),
    ('{"input": "a.mp4", "max_frames": 0}', "max_frames"),
    ('{"input": "a.mp4", "save": ["png"]}', "save"),
    ('{"input": "a.mp4", "name": "../x"}', "name"),
    ("a.mp4", "JSON object"),
])
def test_jsonl_mistakes_name_the_line(tmp_path, line, words):
    _touch(tmp_path / "a.mp4")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(line + "\n")
    with pytest.raises(InputError, match=words) as info:
        expand_inputs([manifest])
    assert "m.jsonl:1" in str(info.value)


def test_what_names_nothing_is_an_input_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no such file"):
        expand_inputs([tmp_path / "missing.mp4"])
    with pytest.raises(InputError, match="no video"):
        expand_inputs([tmp_path / "empty"])
    with pytest.raises(InputError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.mkv")])
    with pytest.raises(InputError, match="no input"):
        expand_inputs([])


def test_colliding_names_get_a_stable_digest_and_explicit_duplicates_are_refused(tmp_path):
    a1, a2 = _touch(tmp_path / "x" / "a.mp4"), _touch(tmp_path / "y" / "a.mp4")
    first = [i.name for i in expand_inputs([a1, a2])]
    assert len(set(first)) == 2 and all(n.startswith("a-") for n in first)
    assert [i.name for i in expand_inputs([a1, a2])] == first  # the same on every run (resume relies on it)
    with pytest.raises(InputError, match="give each a different name"):
        expand_inputs([ClusterInput(str(a1), "same"), ClusterInput(str(a2), "same")])


def test_live_flag_marks_every_input(tmp_path):
    assert all(i.live for i in expand_inputs([_touch(tmp_path / "a.mp4")], live=True))


def test_urls_are_live_and_named_without_credentials():
    url = "rtsp://admin:hunter2@cam-7.depot:554/live/main?token=s3cret&channel=2"
    (found,) = expand_inputs([url])
    assert found.live and found.source == url  # the engine gets the real URL
    for shown in (found.name, found.display):
        assert "hunter2" not in shown and "s3cret" not in shown and "admin" not in shown
    assert found.name == "cam-7.depot_554_live_main"
    assert redact(url) == "rtsp://***@cam-7.depot:554/live/main?token=***&channel=2"  # as vidseg-run shows it
    assert is_url(url) and not is_url("C:\\videos\\a.mp4") and not is_url("clips/a.mp4")
    assert safe_name("../..//etc") == "etc" and safe_name("...") == "input"


@pytest.mark.parametrize("url", [
    "https://cdn.example/live/index.m3u8?jwt=eyJhbGciOi.SECRETPART&expires=1800",
    "http://10.0.0.9/cam.ts?X-Amz-Signature=SECRETPART&X-Amz-Date=20261207",
    "rtsp://10.0.0.9/cam?apikey=SECRETPART",
    "srt://10.0.0.9:9000?passphrase=SECRETPART",
])
def test_any_query_value_that_may_be_a_token_stays_out_of_names_and_reports(url):
    """The cluster shows URLs as vidseg-run does: a query key it does not know as harmless is masked."""
    (found,) = expand_inputs([url])
    for shown in (found.name, found.display, redact(url)):
        assert "SECRETPART" not in shown
    assert "SECRETPART" not in json.dumps([found.display, found.name])


def test_a_malformed_url_is_an_input_of_its_own_not_a_crash():
    (found,) = expand_inputs(["rtsp://[bad"])
    assert found.live and found.name == "bad" and is_url("rtsp://[bad")


def test_a_camera_device_is_live_like_a_url():
    import os

    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev here")
    (found,) = expand_inputs(["/dev/null"])  # any device path: its worker opens it (the engine checks it is V4L2)
    assert found.live and found.source == "/dev/null" and found.name == "null"


def test_an_out_folder_inside_the_input_folder_is_not_taken_as_input(tmp_path):
    """vidseg-run clips/ --cluster --save overlay --out clips/results, run twice: the second run must not
    segment the first run's overlay videos."""
    from vidseg.cluster import ClusterRun

    _touch(tmp_path / "clips" / "a.mp4")
    _touch(tmp_path / "clips" / "results" / "a" / "a_overlay.mp4")
    job = ClusterRun([tmp_path / "clips"], out=tmp_path / "clips" / "results")
    assert [i.name for i in job.inputs] == ["a"] and "left out" in job.notes[0]
    with pytest.raises(InputError, match="every input is under --out"):
        ClusterRun([tmp_path / "clips" / "results"], out=tmp_path / "clips" / "results")

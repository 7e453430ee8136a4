"""Completion records and staging: what --resume trusts, and the rename that makes outputs appear at once."""

from __future__ import annotations

import os

from vidseg.cluster.inputs import expand_inputs
from vidseg.cluster.outputs import commit, discard_staging, staging_dir
from vidseg.cluster.record import RECORD_NAME, check_record, input_identity, run_options, write_record
from vidseg.config import EngineConfig


def _result(tmp_path):
    config = EngineConfig()
    video = tmp_path / "a.mp4"
    video.write_bytes(b"0123456789")
    (inp,) = expand_inputs([video])
    folder = tmp_path / "out" / "a"
    (folder / "a_labels").mkdir(parents=True)
    (folder / "a_labels" / "000000_trainIds.png").write_bytes(b"png0")
    (folder / "a_labels.npz").write_bytes(b"npz!")
    identity = input_identity(inp)
    options = run_options(config, save=("labels", "npz"), max_frames=None, model=None)
    write_record(folder, identity=identity, options=options, extra={"frames": 1})
    return video, inp, folder, identity, options


def test_a_matching_record_is_complete(tmp_path):
    _, _, folder, identity, options = _result(tmp_path)
    assert check_record(folder, identity, options) is None
    assert (folder / RECORD_NAME).exists() and not (folder / (RECORD_NAME + ".part")).exists()


def test_an_edited_input_changed_options_or_outputs_are_not_complete(tmp_path):
    video, inp, folder, identity, options = _result(tmp_path)
    other = run_options(EngineConfig(keyframe_interval=5), save=("labels", "npz"), max_frames=None, model=None)
    assert check_record(folder, identity, other) == "options changed (config.keyframe_interval)"
    st = video.stat()
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert check_record(folder, input_identity(inp), options) == "input changed (mtime_ns)"
    (folder / "a_labels.npz").write_bytes(b"NPZ!")  # same size, other bytes: only the checksum sees it
    assert "a_labels.npz changed" in check_record(folder, identity, options)
    (folder / "a_labels.npz").unlink()
    assert "missing: ['a_labels.npz']" in check_record(folder, identity, options)
    assert check_record(tmp_path / "out" / "nothing", identity, options) == "not done yet"


def test_cache_dir_is_not_an_output_option(tmp_path):
    _, _, folder, identity, _ = _result(tmp_path)
    moved = run_options(EngineConfig(cache_dir="/elsewhere"), save=("npz", "labels"), max_frames=None, model=None)
    assert check_record(folder, identity, moved) is None


def test_commit_replaces_an_older_folder_and_discard_removes_every_attempt(tmp_path):
    out = tmp_path / "out"
    final = out / "clip.v2"
    final.mkdir(parents=True)
    (final / "old.png").write_bytes(b"old")
    for attempt in (1, 2):
        staging_dir(out, "clip.v2", attempt).mkdir(parents=True)
    staging_dir(out, "clip.v22", 1).mkdir()  # another input whose name starts alike: left alone
    (staging_dir(out, "clip.v2", 2) / "new.png").write_bytes(b"new")
    commit(staging_dir(out, "clip.v2", 2), final)
    assert [p.name for p in final.iterdir()] == ["new.png"]
    removed = discard_staging(out, "clip.v2")
    assert [p.name for p in removed] == ["clip.v2.1"]
    assert [p.name for p in (out / ".staging").iterdir()] == ["clip.v22.1"]

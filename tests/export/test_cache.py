"""Artifact cache: keying, verification of what is found, rebuild of anything stale or corrupt."""

from __future__ import annotations

import json

import pytest
import torch

from vidseg.errors import ExportError
from vidseg.export.cache import ArtifactCache, ArtifactKey, stage_fingerprint


class FakeBuilder:
    """Writes a deterministic artifact and counts builds."""

    def __init__(self, payload: bytes = b"engine-bytes") -> None:
        self.calls = 0
        self.payload = payload

    def __call__(self, tmp):
        self.calls += 1
        tmp.write_bytes(self.payload + str(self.calls).encode())
        return f"build {self.calls}"


def _key(**changes) -> ArtifactKey:
    fields = {"graph": "abc", "precision": "fp16", "shape": [1, 3, 64, 128], "trt": "10.15", "gpu": "sm_90"}
    fields.update(changes)
    return ArtifactKey("trt", "tiny-key", fields)


@pytest.fixture
def cache(tmp_path):
    lines = []
    c = ArtifactCache(tmp_path, log=lines.append)
    c.lines = lines
    return c


def test_hit_after_build_and_no_rebuild(cache):
    build = FakeBuilder()
    path, result = cache.get_or_build(_key(), ".engine", build)
    assert result == "build 1" and path.read_bytes() == b"engine-bytes1"
    again, result2 = cache.get_or_build(_key(), ".engine", build)
    assert again == path and result2 is None and build.calls == 1
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    assert meta["key"]["precision"] == "fp16" and meta["size"] == path.stat().st_size


@pytest.mark.parametrize(
    "change", [{"precision": "int8"}, {"trt": "10.16"}, {"gpu": "sm_87"}, {"shape": [2, 3, 64, 128]}, {"graph": "abd"}]
)
def test_any_key_field_change_builds_a_new_artifact(cache, change):
    build = FakeBuilder()
    first, _ = cache.get_or_build(_key(), ".engine", build)
    second, _ = cache.get_or_build(_key(**change), ".engine", build)
    assert second != first and build.calls == 2
    assert first.exists()  # the other configuration's artifact is kept


def test_corrupt_artifact_is_rebuilt_not_loaded(cache):
    build = FakeBuilder()
    path, _ = cache.get_or_build(_key(), ".engine", build)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))
    assert cache.lookup(_key(), ".engine") is None
    assert any("checksum mismatch" in line for line in cache.lines)
    path2, result = cache.get_or_build(_key(), ".engine", build)
    assert result == "build 2" and path2.read_bytes() == b"engine-bytes2"


def test_truncated_artifact_and_missing_or_stale_sidecar_are_rebuilt(cache):
    build = FakeBuilder()
    path, _ = cache.get_or_build(_key(), ".engine", build)
    path.write_bytes(path.read_bytes()[:3])
    assert cache.lookup(_key(), ".engine") is None
    assert "truncated" in cache.lines[-1]

    path, _ = cache.get_or_build(_key(), ".engine", build)
    path.with_name(path.name + ".json").unlink()
    assert cache.lookup(_key(), ".engine") is None
    assert "no sidecar" in cache.lines[-1]

    path, _ = cache.get_or_build(_key(), ".engine", build)
    side = path.with_name(path.name + ".json")
    meta = json.loads(side.read_text())
    meta["key"]["trt"] = "10.0"  # an artifact copied in from another configuration under this name
    side.write_text(json.dumps(meta))
    assert cache.lookup(_key(), ".engine") is None
    assert "stale" in cache.lines[-1]
    assert build.calls == 3


def test_failed_build_leaves_nothing(cache):
    def broken(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("builder crashed")

    with pytest.raises(RuntimeError):
        cache.get_or_build(_key(), ".engine", broken)
    assert list(cache.root.rglob("*")) == [cache.root / "trt"]

    with pytest.raises(ExportError, match="wrote nothing"):
        cache.get_or_build(_key(), ".engine", lambda tmp: None)


def test_key_rejects_unhashable_fields():
    with pytest.raises(TypeError):
        ArtifactKey("onnx", "x", {"weights": torch.zeros(1)})


def test_stage_fingerprint_tracks_weights_buffers_and_attributes(tiny_model):
    stage = tiny_model.stages()["nonkey"]
    base = stage_fingerprint(stage)
    assert stage_fingerprint(tiny_model.stages()["nonkey"]) == base
    with torch.no_grad():
        tiny_model.q.weight[0, 0, 0, 0] += 1e-3
    changed_weight = stage_fingerprint(stage)
    assert changed_weight != base
    tiny_model.pre.shift.add_(0.1)  # non-persistent buffer (normalisation)
    changed_buffer = stage_fingerprint(stage)
    assert changed_buffer != changed_weight
    stage.lr_scale = 0.25  # a plain attribute that changes the graph
    assert stage_fingerprint(stage) != changed_buffer


def test_full_disk_mid_build_leaves_nothing_and_says_so_in_one_line(cache):
    import errno

    def full(tmp):
        tmp.write_bytes(b"half an engine")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    with pytest.raises(ExportError) as err:
        cache.get_or_build(_key(), ".engine", full)
    message = str(err.value)
    assert "No space left on device" in message and "free some space" in message and "\n" not in message
    assert list(cache.root.rglob("*")) == [cache.root / "trt"]


def test_cache_folder_that_cannot_be_created_is_a_config_error(tmp_path):
    from vidseg.errors import ConfigError

    (tmp_path / "file").write_text("x")
    cache = ArtifactCache(tmp_path / "file" / "cache", log=lambda line: None)
    with pytest.raises(ConfigError, match=r"artifact cache folder .*file/cache/trt cannot be created"):
        cache.get_or_build(_key(), ".engine", FakeBuilder())


def test_the_least_recently_used_artifacts_go_when_the_cache_is_over_its_limit(tmp_path):
    import os

    lines = []
    size = 1000
    cache = ArtifactCache(tmp_path, log=lines.append, max_bytes=int(2.5 * (size + 600)))  # ~2 artifacts + sidecars
    build = FakeBuilder(payload=b"x" * (size - 1))
    a, _ = cache.get_or_build(_key(graph="a"), ".engine", build)
    b, _ = cache.get_or_build(_key(graph="b"), ".engine", build)
    for i, path in enumerate((a, b)):  # a older than b
        os.utime(path.with_name(path.name + ".json"), (1000 + i, 1000 + i))
    assert cache.lookup(_key(graph="a"), ".engine", use=False) == a  # asking is not using: a stays the oldest
    assert a.with_name(a.name + ".json").stat().st_mtime == 1000
    assert cache.get_or_build(_key(graph="a"), ".engine", build)[1] is None  # a hit: a is now the most recent
    c, _ = cache.get_or_build(_key(graph="c"), ".engine", build)
    assert a.exists() and c.exists() and not b.exists() and not b.with_name(b.name + ".json").exists()
    assert sum("removed" in line and b.name in line and "VIDSEG_CACHE_MAX_GB" in line for line in lines) == 1
    # An artifact larger than the whole limit is still kept once built (the others make room).
    tiny = ArtifactCache(tmp_path, log=lines.append, max_bytes=10)
    d, _ = tiny.get_or_build(_key(graph="d"), ".engine", build)
    assert d.exists() and not a.exists() and not c.exists()
    assert (tmp_path / "trt").is_dir()


def test_cache_limit_comes_from_the_environment(monkeypatch, tmp_path):
    from vidseg.errors import ConfigError
    from vidseg.export.cache import cache_limit_bytes

    monkeypatch.delenv("VIDSEG_CACHE_MAX_GB", raising=False)
    assert cache_limit_bytes() == 20 * 2**30
    monkeypatch.setenv("VIDSEG_CACHE_MAX_GB", "0.5")
    assert ArtifactCache(tmp_path).max_bytes == 2**29
    monkeypatch.setenv("VIDSEG_CACHE_MAX_GB", "0")
    assert ArtifactCache(tmp_path).max_bytes is None
    monkeypatch.setenv("VIDSEG_CACHE_MAX_GB", "lots")
    with pytest.raises(ConfigError, match="VIDSEG_CACHE_MAX_GB='lots' is not a number"):
        cache_limit_bytes()


def test_files_without_a_sidecar_are_not_artifacts_and_stay(tmp_path):
    (tmp_path / "trt").mkdir()
    timing = tmp_path / "trt" / "timing-sm_90.cache"
    timing.write_bytes(b"t" * 5000)
    decision = tmp_path / "auto-0123.json"
    decision.write_text("{}")
    cache = ArtifactCache(tmp_path, log=lambda line: None, max_bytes=1)
    cache.get_or_build(_key(), ".engine", FakeBuilder())
    assert timing.exists() and decision.exists()


def test_a_process_reads_an_artifact_for_its_checksum_once_until_the_file_changes(cache, monkeypatch):
    import os

    import vidseg.export.cache as cache_module

    path, _ = cache.get_or_build(_key(), ".engine", FakeBuilder())
    reads = []
    real = cache_module.file_sha256
    monkeypatch.setattr(cache_module, "file_sha256", lambda p, *a: reads.append(p) or real(p, *a))
    assert cache.lookup(_key(), ".engine", use=False) == path  # `auto` asking whether it is built ...
    assert cache.lookup(_key(), ".engine") == path  # ... then the runner loading it
    assert len(reads) == 1
    forged = path.with_name("forged")
    forged.write_bytes(b"X" + path.read_bytes()[1:])  # same size, another file (inode) renamed over it
    os.replace(forged, path)
    assert cache.lookup(_key(), ".engine") is None and len(reads) == 2
    assert any("checksum mismatch" in line for line in cache.lines)

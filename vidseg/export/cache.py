"""Artifact cache: exported graphs and built engines, keyed by everything that makes them what they are.

An artifact (an ONNX graph, a TensorRT engine, an AOTInductor package) is stored as

    <root>/<kind>/<label>-<digest16><suffix>          the artifact
    <root>/<kind>/<label>-<digest16><suffix>.json     its sidecar: the full key, its digest, sha256 and size

The key is a flat mapping of what determines the artifact: a fingerprint of the stage (class, code, weights,
attributes) or of the ONNX graph, shapes, precision, runtime version, device. Its digest names the file, so a
change of any key field (a new TensorRT, another GPU) finds no file and builds a new one. A file that is found
is still verified before use: sidecar present and parsable, same key, same size, same sha256. Anything else
(a truncated copy, a half-written build, an edited file) is reported, deleted and rebuilt, never loaded blindly.
Writes go to a temporary file renamed into place (`vidseg.export.files`), so a crash or a full disk mid-build
leaves no artifact that looks valid; a cache folder that cannot be created is a one-line ConfigError.

The cache is bounded: every change of code, weights or library makes new artifacts (an AOTInductor package is
~190 MB at 512x1024) and nothing else would ever remove the old ones. After each build, the least recently used
artifacts (a hit counts as a use) are removed until the cache is within VIDSEG_CACHE_MAX_GB (default 20; 0: no
limit), each removal said in one line; the artifact just built is always kept.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vidseg.errors import ConfigError, ExportError
from vidseg.export.files import atomic_path, atomic_write, ensure_dir

__all__ = [
    "ArtifactCache",
    "ArtifactKey",
    "cache_limit_bytes",
    "default_cache_dir",
    "file_sha256",
    "stage_fingerprint",
    "stage_key",
]

SIDECAR_FORMAT = 1
CACHE_REMEDY = "set EngineConfig(cache_dir=...) or XDG_CACHE_HOME to a folder you can write to"
CACHE_LIMIT_ENV = "VIDSEG_CACHE_MAX_GB"
DEFAULT_CACHE_LIMIT_GB = 20.0
_KEY_SCALARS = (str, int, float, bool, type(None))


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/vidseg, else ~/.cache/vidseg (read when called, never at import)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vidseg"


def cache_limit_bytes() -> int | None:
    """The artifact cache's size limit from VIDSEG_CACHE_MAX_GB (default 20 GB; 0 or less: no limit)."""
    raw = os.environ.get(CACHE_LIMIT_ENV, "").strip()
    try:
        gb = float(raw) if raw else DEFAULT_CACHE_LIMIT_GB
    except ValueError:
        raise ConfigError(f"{CACHE_LIMIT_ENV}={raw!r} is not a number; give the cache's limit in GB "
                          "(e.g. 20), or 0 for no limit") from None
    return int(gb * 2**30) if gb > 0 else None


@dataclass(frozen=True)
class ArtifactKey:
    """What determines an artifact. `label` is for humans (file names, logs); `fields` decide identity."""

    kind: str  # "onnx", "trt", "aoti": the cache subfolder
    label: str  # e.g. "tiny-key-32x48-b1-fp32"
    fields: Mapping[str, object]

    def __post_init__(self) -> None:
        for name, value in self.fields.items():
            if not isinstance(value, _KEY_SCALARS) and not (
                isinstance(value, (list, tuple)) and all(isinstance(v, _KEY_SCALARS) for v in value)
            ):
                raise TypeError(f"cache key field {name!r} must be a scalar or a list of scalars, got {value!r}")

    def canonical(self) -> str:
        return json.dumps({"kind": self.kind, **self.fields}, sort_keys=True, separators=(",", ":"))

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()


class ArtifactCache:
    """A directory of verified artifacts. `log` receives one line per cache event (hit, miss, rebuild, removal).
    max_bytes: the size limit (None: `cache_limit_bytes()`, read when the cache is made; 0 or less: no limit)."""

    def __init__(self, root: str | os.PathLike | None = None, *, log: Callable[[str], None] | None = None,
                 max_bytes: int | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.log = log if log is not None else _stderr
        limit = cache_limit_bytes() if max_bytes is None else max_bytes
        self.max_bytes = limit if limit is not None and limit > 0 else None  # None: no limit

    def path_for(self, key: ArtifactKey, suffix: str) -> Path:
        safe_label = "".join(c if c.isalnum() or c in "-_." else "_" for c in key.label)
        return self.root / key.kind / f"{safe_label}-{key.digest[:16]}{suffix}"

    def lookup(self, key: ArtifactKey, suffix: str, *, use: bool = True) -> Path | None:
        """The artifact's path if it is present and verifies; otherwise None (an invalid one is deleted).
        use=False: only asking whether it is there (its time of last use, which eviction goes by, is kept)."""
        path = self.path_for(key, suffix)
        if not path.exists():
            return None
        problem = self._verify(path, key)
        if problem is None:
            if use:
                _mark_used(path)
            return path
        self.log(f"cache: discarding {path.name}: {problem}; it will be rebuilt")
        self._remove(path)
        return None

    def side_file(self, kind: str, name: str) -> Path:
        """A helper file of builds of `kind` (a TensorRT timing or calibration cache), kept beside the artifacts."""
        return self.root / kind / name

    def prepare(self, kind: str) -> None:
        """Create the folder of `kind` now, so an unusable cache fails before minutes of export, in one line."""
        ensure_dir(self.root / kind, "artifact cache folder", CACHE_REMEDY)

    def get_or_build(
        self, key: ArtifactKey, suffix: str, build: Callable[[Path], object]
    ) -> tuple[Path, object | None]:
        """Return (path, build's result or None on a hit). `build(tmp_path)` writes the artifact to tmp_path."""
        found = self.lookup(key, suffix)
        if found is not None:
            self.log(f"cache: using {found}")
            return found, None
        path = self.path_for(key, suffix)
        self.prepare(key.kind)
        self.log(f"cache: building {path.name}")
        try:
            with atomic_path(path) as tmp:
                result = build(tmp)
                if not tmp.exists() or tmp.stat().st_size == 0:
                    raise ExportError(f"building {key.label} wrote nothing to {tmp}")
                self._write_sidecar(path, key, tmp)
        except BaseException:
            _sidecar(path).unlink(missing_ok=True)
            raise
        self._evict(keep=path)
        return path, result

    def _evict(self, keep: Path) -> None:
        """Remove the least recently used artifacts (by their sidecar's time) until the cache is within
        max_bytes; never `keep`. Files without a sidecar (decisions of `--engine auto`, TensorRT timing caches)
        are not artifacts and stay."""
        if self.max_bytes is None:
            return
        entries = []
        for side in self.root.glob("*/*.json"):
            artifact = side.with_name(side.name[: -len(".json")])
            try:
                side_stat = side.stat()
                size = artifact.stat().st_size + side_stat.st_size
            except OSError:  # not an artifact's sidecar, or removed meanwhile by another process
                continue
            entries.append((side_stat.st_mtime, size, artifact))
        total = sum(size for _, size, _ in entries)
        for _, size, artifact in sorted(entries):
            if total <= self.max_bytes:
                break
            if artifact == keep:
                continue
            self._remove(artifact)
            total -= size
            self.log(f"cache: removed {artifact.name} ({size / 2**20:.0f} MB, the least recently used): the cache "
                     f"is over its {self.max_bytes / 2**30:g} GB limit ({CACHE_LIMIT_ENV})")

    # -- internals -------------------------------------------------------------------------------------------

    def _verify(self, path: Path, key: ArtifactKey) -> str | None:
        side = _sidecar(path)
        try:
            meta = json.loads(side.read_text())
        except FileNotFoundError:
            return "no sidecar (an interrupted or foreign build)"
        except (OSError, ValueError) as err:
            return f"unreadable sidecar ({err})"
        if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
            return "sidecar of another format"
        if meta.get("digest") != key.digest or meta.get("key") != json.loads(key.canonical()):
            return "sidecar key differs from the requested key (stale)"
        size = path.stat().st_size
        if meta.get("size") != size:
            return f"size {size} differs from the recorded {meta.get('size')} (truncated or replaced)"
        if meta.get("sha256") != _checked_sha256(path):
            return "checksum mismatch (corrupt)"
        return None

    def _write_sidecar(self, path: Path, key: ArtifactKey, artifact: Path) -> None:
        meta = {
            "format": SIDECAR_FORMAT,
            "digest": key.digest,
            "label": key.label,
            "key": json.loads(key.canonical()),
            "sha256": file_sha256(artifact),
            "size": artifact.stat().st_size,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write(_sidecar(path), json.dumps(meta, indent=1, sort_keys=True))

    @staticmethod
    def _remove(path: Path) -> None:
        path.unlink(missing_ok=True)
        _sidecar(path).unlink(missing_ok=True)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _mark_used(path: Path) -> None:
    """Record a use of an artifact (its sidecar's time), which the size limit's eviction goes by."""
    try:
        os.utime(_sidecar(path))
    except OSError:  # a read-only cache is still usable; it just cannot order its artifacts by use
        pass


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


# sha256 of artifact files this process has already read, by (path, inode, size, mtime): `--engine auto` asks
# whether a package is built, then loads it, and a process may build several engines; hashing a 190 MB package
# takes ~0.5 s each time. A file replaced or rewritten since has another inode or mtime and is read again.
_HASHED: dict[tuple[str, int, int, int], str] = {}


def _checked_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = file_sha256(path)
    return _HASHED[key]


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def stage_fingerprint(stage: nn.Module) -> str:
    """A digest of what an exported stage depends on: code, weights and buffers, module attributes.

    - code: the source files of every module class in the stage (a changed forward changes the graph);
    - tensors: every parameter and buffer, persistent or not (Preprocess's mean/std are non-persistent);
    - attributes: plain attributes of every submodule (e.g. an LR branch's scale, a window size).
    """
    digest = hashlib.sha256()
    sources: set[str] = set()
    for module in stage.modules():
        cls = type(module)
        if cls.__module__.startswith("torch."):
            digest.update(f"{cls.__module__}.{cls.__qualname__}".encode())
        else:
            try:
                sources.add(inspect.getsourcefile(cls) or cls.__module__)
            except TypeError:
                sources.add(cls.__module__)
        attrs = {
            k: v
            for k, v in sorted(vars(module).items())
            if not k.startswith("_") and k != "training" and isinstance(v, (*_KEY_SCALARS, tuple))
        }
        digest.update(f"{cls.__qualname__}:{attrs!r};".encode())
    for src in sorted(sources):
        digest.update(src.encode())
        if os.path.exists(src):
            digest.update(file_sha256(src).encode())
    tensors = dict(stage.named_parameters(remove_duplicate=False))
    tensors.update(stage.named_buffers(remove_duplicate=False))
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(_tensor_bytes(t))
    return digest.hexdigest()


def stage_key(
    kind: str,
    stage: nn.Module,
    *,
    stage_name: str,
    model_name: str,
    height: int,
    width: int,
    batch: int,
    dynamic_batch: bool,
    precision: str,
    dynamic_size: bool = False,
    **extra: object,
) -> ArtifactKey:
    """The key of an artifact made from a stage: its fingerprint, shapes, precision, torch/vidseg versions, extra.

    dynamic_size (dynamic height/width) is a field only when on, so the keys of fixed-size artifacts are unchanged.
    """
    from vidseg import __version__ as vidseg_version

    size = f"{height}x{width}" + ("-dynhw" if dynamic_size else "")
    label = f"{model_name}-{stage_name}-{size}-b{batch}{'d' if dynamic_batch else ''}-{precision}"
    if dynamic_size:
        extra = {"dynamic_size": True, **extra}
    fields = {
        "stage": stage_name,
        "fingerprint": stage_fingerprint(stage),
        "height": height,
        "width": width,
        "batch": batch,
        "dynamic_batch": dynamic_batch,
        "precision": precision,
        "torch": torch.__version__,
        "vidseg": vidseg_version,
        **extra,
    }
    return ArtifactKey(kind, label, fields)


def _tensor_bytes(t: torch.Tensor) -> bytes:
    if t.numel() == 0:
        return b""
    flat = t.reshape(-1)
    return (flat.to(torch.uint8) if t.dtype == torch.bool else flat.view(torch.uint8)).numpy().tobytes()

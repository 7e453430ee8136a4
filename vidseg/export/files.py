"""Writing artifacts safely: folders that can be created (or a one-line error), files that appear whole or not at all.

Every artifact, sidecar, manifest, timing or calibration cache vidseg writes goes through `atomic_path` /
`atomic_write`: the bytes go to a temporary name in the destination folder and are renamed into place only when
complete, so a crash, Ctrl-C or a full disk leaves the old file or nothing, never a truncated one that looks valid.
An `OSError` while writing (no space, no permission, read-only file system) becomes an `ExportError` naming the
file and what to do.

`ExportFolder` is the store `vidseg-export` writes into: the same `get_or_build` as `ArtifactCache`, but with
human file names, no reuse, and a `discard()` that removes what this export wrote when it fails part-way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from vidseg.errors import ConfigError, ExportError

__all__ = ["ExportFolder", "atomic_path", "atomic_write", "ensure_dir", "is_write_error", "write_error"]

# errors that mean "this file cannot be written here" (others are the writer's own failures and pass through)
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EFBIG, errno.EIO}


def ensure_dir(path: str | os.PathLike, what: str, remedy: str) -> Path:
    """Create `path` (and its parents) if needed; a folder that cannot be made is a one-line ConfigError.

    what: how to name the folder to a user ("artifact cache folder", "export folder").
    remedy: what to do about it ("pass --out DIR with a writable folder").
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{what} {path} cannot be created: a file stands there; {remedy}") from None
    except OSError as err:
        raise ConfigError(f"{what} {path} cannot be created ({_reason(err, path)}); {remedy}") from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path} is not writable; {remedy}")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to `path`; renamed onto `path` when the block ends normally, removed otherwise.

    The temporary file keeps `path`'s suffix (some writers insist on it, e.g. AOTInductor's `.pt2`).
    """
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as err:
        raise write_error(err, path) from err
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if is_write_error(err):
            raise write_error(err, path) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | bytearray | memoryview | str) -> None:
    """Write `data` to `path` whole (see `atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else memoryview(data))


def is_write_error(err: BaseException) -> bool:
    """Whether `err` says a file cannot be written here (full disk, no permission, read-only), not a bug."""
    return isinstance(err, OSError) and err.errno in _WRITE_ERRNOS


def write_error(err: OSError, path: Path) -> ExportError:
    """An OSError met while writing `path`, as one line with a remedy."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        remedy = "free some space or write elsewhere"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        remedy = "choose a writable folder"
    else:
        remedy = "check the folder and retry"
    return ExportError(f"could not write {path.name} in {path.parent} ({_reason(err, path)}); {remedy}")


def _reason(err: OSError, path: Path) -> str:
    text = err.strerror or type(err).__name__
    if err.filename and Path(err.filename) != path:
        text += f": {err.filename}"
    return text


class ExportFolder:
    """A folder of named artifacts (vidseg-export's --out): `get_or_build` always builds, under `key.label`.

    It has the `root`, `log`, `path_for`, `side_file`, `prepare` and `get_or_build` that `ArtifactBuilder` uses on an
    `ArtifactCache`, so the builder writes both the same way. `written` lists the files this export created.
    """

    def __init__(self, root: str | os.PathLike, *, log: Callable[[str], None] | None = None) -> None:
        self.root = ensure_dir(root, "export folder", "pass --out with a folder you can write to")
        self.log = log if log is not None else _stderr
        self.written: list[Path] = []

    def path_for(self, key, suffix: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key.label)
        return self.root / f"{safe}{suffix}"

    def side_file(self, kind: str, name: str) -> Path:
        """Where a build keeps its helper files (TensorRT timing and calibration caches): the folder itself."""
        return self.root / name

    def prepare(self, kind: str) -> None:
        """Nothing to do: the folder was created (or refused) when this store was made."""

    def get_or_build(self, key, suffix: str, build: Callable[[Path], object]) -> tuple[Path, object]:
        path = self.path_for(key, suffix)
        with atomic_path(path) as tmp:
            result = build(tmp)
            if not tmp.exists() or tmp.stat().st_size == 0:
                raise ExportError(f"building {key.label} wrote nothing to {tmp}")
        self.written.append(path)
        return path, result

    def discard(self) -> None:
        """Remove the artifacts this export wrote (an export that failed part-way leaves no half set)."""
        for path in self.written:
            path.unlink(missing_ok=True)
        self.written.clear()


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)

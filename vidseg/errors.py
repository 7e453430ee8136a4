"""Errors a user can cause, each naming what went wrong, where, and what to do.

Every class also inherits the builtin a caller would naturally catch (an `InputError` is a `ValueError`), so
code embedding vidseg can catch either. The CLI prints a `VidsegError` as one line and exits non-zero.
"""

from __future__ import annotations

__all__ = [
    "VidsegError",
    "InputError",
    "CheckpointError",
    "ConfigError",
    "ShapeError",
    "BackendUnavailable",
    "ExportError",
    "DatasetError",
    "OutputError",
    "output_error",
    "VidsegWarning",
]


class VidsegError(Exception):
    """Base class of every error vidseg raises on purpose. details: what a user asks for with --verbose (e.g. every
    key of a checkpoint that does not fit), beyond the message's few lines."""

    exit_code = 2

    def __init__(self, *args: object, details: str = "") -> None:
        super().__init__(*args)
        self.details = details


class InputError(VidsegError, ValueError):
    """A video or image input that cannot be read: missing, empty, not a video, truncated, unsupported."""


class DatasetError(InputError):
    """A dataset directory whose layout is not the one expected."""


class CheckpointError(VidsegError, ValueError):
    """A checkpoint that does not fit the model: wrong keys, wrong shapes, unsafe or unreadable file."""


class ConfigError(VidsegError, ValueError):
    """An option or combination of options that vidseg cannot honour (unknown model, method, precision...)."""


class ShapeError(VidsegError, ValueError):
    """A tensor whose shape, dtype or layout a stage, engine or kernel was not built for."""


class BackendUnavailable(VidsegError, RuntimeError):
    """A backend (onnx, trt, compile, cuda...) that cannot run here; the message says how to get it."""

    exit_code = 3


class OutputError(VidsegError, OSError):
    """A result that cannot be written: a full disk, a folder without permission. What was written before stays
    complete; the file being written is removed."""


def output_error(path: object, err: BaseException) -> OutputError:
    """The one-line OutputError for an OSError met while writing `path`: what happened and what to do."""
    import errno

    code = getattr(err, "errno", None)
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    if code in (errno.ENOSPC, errno.EDQUOT):
        remedy = "free some space or write the results elsewhere (--out DIR)"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        remedy = "write the results to a folder you can write to (--out DIR)"
    else:
        remedy = "check the output folder (--out DIR)"
    return OutputError(f"cannot write {path}: {reason}; {remedy}")


class ExportError(VidsegError, RuntimeError):
    """Exporting or validating a deployable artifact failed."""


class VidsegWarning(RuntimeWarning):
    """A notice from vidseg itself (a fallback taken, a setting that contradicts a checkpoint): the CLI prints
    these as one `note:` line each; warnings of other libraries are not vidseg's notes."""

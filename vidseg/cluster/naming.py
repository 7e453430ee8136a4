"""Printable and filesystem-safe names for inputs, without credentials.

A live URL may carry a password (``rtsp://user:pass@cam/stream``) or a signed token in its query
(``?token=...``, ``?jwt=...``). Reports, progress lines and output folder names show it as
`vidseg.video.redact.redact` does (user info and every query value but well-known stream parameters masked),
never the original, so that a cluster run shows a URL exactly as a single `vidseg-run` does.
"""

from __future__ import annotations

import re

from vidseg.video.redact import redact

__all__ = ["is_url", "url_name", "safe_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]+://")  # a one-letter scheme is a drive: C://x
MAX_NAME = 96


def is_url(text: str) -> bool:
    """Whether an input string is a URL (scheme://...), as opposed to a path (C:\\ is a path)."""
    return _SCHEME.match(text) is not None


def url_name(url: str) -> str:
    """The folder name of a URL's outputs: its host, port and path, without user info or query."""
    rest = redact(url).split("://", 1)[1]
    rest = re.split(r"[?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    return safe_name(rest)


def safe_name(text: str) -> str:
    """A folder name made of [A-Za-z0-9._-] only, never hidden ('.x') and at most MAX_NAME characters."""
    name = _UNSAFE.sub("_", text).strip("._-")
    return (name or "input")[:MAX_NAME]

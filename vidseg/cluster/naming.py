"""Printable and filesystem-safe names for inputs, without credentials.

A live URL may carry a password (``rtsp://user:pass@cam/stream``) or a signed token in its query
(``?token=...``). Reports, progress lines and output folder names show `redact_url`'s form, never the original.
(A local helper until a shared one lands in `vidseg.video`; the rules are the same: drop userinfo, blank the
values of query keys that look secret.)
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["is_url", "redact_url", "safe_name"]

# Query keys whose values are credentials: token, access_token, api_key, sig, signature, X-Amz-Credential, ...
_SECRET_KEY = re.compile(r"(token|key|sig|signature|secret|pass|pwd|auth|credential|session|cookie)", re.I)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 96


def is_url(text: str) -> bool:
    """Whether an input string is a URL (scheme://...), as opposed to a path (C:\\ is a path)."""
    parts = urlsplit(text)
    return len(parts.scheme) > 1 and "://" in text


def redact_url(url: str) -> str:
    """The URL with userinfo removed and secret-looking query values replaced by 'REDACTED'."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # a malformed port: keep nothing of it
        port = None
    netloc = host + (f":{port}" if port is not None else "")
    query = urlencode([(k, "REDACTED" if _SECRET_KEY.search(k) else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="/,:")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def safe_name(text: str) -> str:
    """A folder name made of [A-Za-z0-9._-] only, never hidden ('.x') and at most MAX_NAME characters."""
    name = _UNSAFE.sub("_", text).strip("._-")
    return (name or "input")[:MAX_NAME]

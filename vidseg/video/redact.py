"""Credentials never leave a source: URLs are shown with their user info and query values masked.

Camera URLs carry secrets (``rtsp://user:password@host/...``, ``https://host/live.m3u8?token=...``). Everything
vidseg prints or writes about a source (its `name`, error messages, progress lines, summaries, output names)
goes through `redact`, the one place that knows how:

    redact("rtsp://alice:pw@cam.local:554/live?channel=1&token=abc")
        -> "rtsp://***@cam.local:554/live?channel=1&token=***"

User name and password are masked together (a user name says who has access). Query values are masked unless
their key is a well-known, harmless stream parameter (`_PLAIN_KEYS`): an unknown key may be a token. With
``source=URL``, every secret of that URL is also masked wherever it appears verbatim or percent-decoded (FFmpeg
messages may quote parts of the URL outside of a URL).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["redact", "secrets", "MASK"]

MASK = "***"

# A URL inside free text: scheme://, then anything up to white space or a quote, less the punctuation that ends
# a phrase ("{url}: lost", "(see {url})."), which would otherwise be masked as part of a query value.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]*[^\s'\"<>.,;:!?)]")
# Query keys whose values are stream settings, never credentials (FFmpeg protocol options, camera channels).
_PLAIN_KEYS = frozenset({
    "listen", "timeout", "rw_timeout", "listen_timeout", "pkt_size", "buffer_size", "fifo_size", "overrun_nonfatal",
    "localport", "localaddr", "reuse", "ttl", "connect", "mode", "latency", "transport", "rtsp_transport",
    "channel", "subtype", "profile", "resolution", "fps", "codec", "tcp_nodelay",
})
_SHORTEST_SECRET = 3  # shorter pieces are masked inside URLs only (replacing "ab" in free text would garble it)


def redact(text: str, *, source: str | None = None) -> str:
    """`text` with every URL's user info and (non-plain) query values replaced by ``***``; with `source`, also
    each secret of that URL (`secrets`) wherever it still appears."""
    out = _URL.sub(lambda m: _redact_url(m.group(0)), str(text))
    if source:
        for secret in sorted(secrets(source), key=len, reverse=True):
            out = out.replace(secret, MASK)
    return out


def secrets(url: str) -> set[str]:
    """The secret pieces of a URL: user, password and the values of non-plain query keys, as written and
    percent-decoded (those of at least three characters)."""
    if "://" not in url:
        return set()
    authority, query = _split(url.split("://", 1)[1])[0:3:2]
    found: list[str] = []
    if "@" in authority:
        found.extend(authority.rsplit("@", 1)[0].split(":", 1))
    for part in re.split(r"[&;]", query):
        key, sep, value = part.partition("=")
        if sep and key.lower() not in _PLAIN_KEYS:
            found.append(value)
        elif not sep:
            found.append(key)  # a bare token: ?abcdef
    pieces = {p for p in found if p} | {unquote(p) for p in found if p}
    return {p for p in pieces if len(p) >= _SHORTEST_SECRET}


def _split(rest: str) -> tuple[str, str, str, str]:
    """After "scheme://": (authority, path, query, fragment-with-#)."""
    m = re.match(r"([^/?#]*)([^?#]*)(?:\?([^#]*))?(#.*)?", rest, re.S)
    assert m is not None  # the pattern matches any string
    authority, path, query, fragment = m.groups()
    return authority, path, query or "", fragment or ""


def _redact_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    authority, path, query, fragment = _split(rest)
    had_query = "?" in rest.split("#", 1)[0]
    if "@" in authority:
        authority = f"{MASK}@{authority.rsplit('@', 1)[1]}"
    if query:
        parts = []
        for part in re.split(r"([&;])", query):
            key, sep, _value = part.partition("=")
            if part in ("&", ";") or (sep and key.lower() in _PLAIN_KEYS) or not part:
                parts.append(part)
            else:
                parts.append(f"{key}={MASK}" if sep else MASK)
        query = "".join(parts)
    return f"{scheme}://{authority}{path}" + (f"?{query}" if had_query else "") + fragment

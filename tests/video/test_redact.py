"""Secrets in source URLs are masked by one function, wherever the URL appears."""

from __future__ import annotations

import pytest

from vidseg.video.redact import MASK, redact, secrets


@pytest.mark.parametrize(("url", "shown"), [
    ("rtsp://alice:pw@cam.local:554/live?channel=1&token=abc", "rtsp://***@cam.local:554/live?channel=1&token=***"),
    ("rtsp://admin@10.0.0.2/stream1", "rtsp://***@10.0.0.2/stream1"),
    ("https://cdn.example/live.m3u8?sig=Zq9&expires=1700", "https://cdn.example/live.m3u8?sig=***&expires=***"),
    ("http://host/x.ts?abcdef123", "http://host/x.ts?***"),
    ("tcp://127.0.0.1:5000?listen=1", "tcp://127.0.0.1:5000?listen=1"),
    ("srt://host:9000?passphrase=longsecret&latency=200", "srt://host:9000?passphrase=***&latency=200"),
    ("rtsp://u:p@ss@host/a#frag", "rtsp://***@host/a#frag"),
    ("rtsp://host/path", "rtsp://host/path"),
])
def test_urls_keep_what_identifies_the_stream_and_lose_their_secrets(url, shown):
    assert redact(url) == shown


def test_urls_inside_text_and_secrets_outside_urls_are_masked():
    url = "rtsp://bob:s3cr%40tPW@10.0.0.1/x?token=T0KEN99"
    text = f"error opening '{url}': 401; retrying rtsp://bob:s3cr%40tPW@10.0.0.1/x; user s3cr@tPW said T0KEN99"
    out = redact(text, source=url)
    for secret in ("bob", "s3cr%40tPW", "s3cr@tPW", "T0KEN99"):
        assert secret not in out
    assert out.count(MASK) >= 5 and "10.0.0.1/x" in out and out.startswith("error opening 'rtsp://***@10.0.0.1/x")


def test_the_secrets_of_a_url():
    assert secrets("rtsp://alice:Pa55word@h/x?token=abc123&channel=2") == {"alice", "Pa55word", "abc123"}
    assert secrets("rtsp://h/x") == set() and secrets("not a url") == set()
    assert secrets("rtsp://me:ab@h/") == set()  # two characters: masked in URLs only, text stays readable


@pytest.mark.parametrize("text", [
    "tcp://h:1?token=abc: lost after 5 frames",
    "see (rtsp://u:pw@h/x?token=abc), then retry.",
    "udp://h:5000?pkt_size=1316; rtsp://h/x?sig=abc.",
])
def test_punctuation_after_a_url_stays_and_redacting_twice_changes_nothing(text):
    once = redact(text)
    assert "abc" not in once and "pw" not in once
    assert redact(once) == once
    tail = text.split("abc", 1)[-1] if "abc" in text else ""
    assert once.endswith(tail)  # what followed the URL (": lost ...", "), then retry.", ".") is still there

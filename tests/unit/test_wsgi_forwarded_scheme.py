"""The scheme a trusted proxy reports: the right-most value of each header counts, and
headers that disagree are refused (docs/hardening.md)."""

from __future__ import annotations

import pytest

from starman.wsgi.environ import RequestRejected
from tests.unit.test_wsgi import environ_for


def _env(fields: bytes, trusted: bool = True) -> dict[str, object]:
    raw = b"GET / HTTP/1.1\r\nHost: h\r\n" + fields + b"\r\n"
    return environ_for(raw, trusted=trusted)


@pytest.mark.parametrize(
    ("fields", "scheme"),
    [
        # The client wrote the first line, the proxy appended the second.
        (b"X-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n", "http"),
        (b"X-Forwarded-Proto: http\r\nX-Forwarded-Proto: https\r\n", "https"),
        (b"X-Forwarded-Proto: https, http\r\n", "http"),
        (b"X-Forwarded-Proto: http,HTTPS\r\n", "https"),
        (b"Forwarded: proto=https, proto=http\r\n", "http"),
        (b"Forwarded: proto=http\r\nForwarded: for=x;proto=https\r\n", "https"),
        (b"X-Forwarded-Ssl: on\r\n", "https"),
        (b"X-Forwarded-Ssl: off\r\n", "http"),
        (b"X-Forwarded-Ssl: on\r\nX-Forwarded-Ssl: off\r\n", "http"),
        (b"X-Forwarded-Ssl: ON\r\nX-Forwarded-Proto: https\r\n", "https"),
        (b"X-Forwarded-Ssl: off\r\nX-Forwarded-Proto: http\r\n", "http"),
    ],
)
def test_the_right_most_value_counts(fields: bytes, scheme: str) -> None:
    env = _env(fields)
    assert env["wsgi.url_scheme"] == scheme
    assert ("HTTPS" in env) is (scheme == "https")


@pytest.mark.parametrize(
    "fields",
    [
        b"X-Forwarded-Ssl: off\r\nX-Forwarded-Proto: https\r\n",
        b"X-Forwarded-Ssl: on\r\nX-Forwarded-Proto: http\r\n",
        b"X-Forwarded-Proto: https\r\nForwarded: proto=http\r\n",
        b"X-Forwarded-Ssl: yes\r\n",
        b"X-Forwarded-Proto: http, ftp\r\n",
    ],
)
def test_disagreeing_or_unknown_values_are_refused(fields: bytes) -> None:
    with pytest.raises(RequestRejected) as info:
        _env(fields)
    assert info.value.status == 400


@pytest.mark.parametrize(
    "fields",
    [
        b"X-Forwarded-Proto: http\r\nX-Forwarded-Proto: https\r\n",
        b"X-Forwarded-Ssl: on\r\n",
        b"X-Forwarded-Ssl: off\r\nX-Forwarded-Proto: https\r\n",
    ],
)
def test_untrusted_peers_change_nothing(fields: bytes) -> None:
    env = _env(fields, trusted=False)
    assert env["wsgi.url_scheme"] == "http" and "HTTPS" not in env

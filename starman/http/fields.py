"""The pure rules on a request head's fields: which fields the reader watches, which may
come only once, keep-alive, body framing, the authority of a target (docs/hardening.md).

Rule: no socket, selectors, signal, time or logging imports; no parser state here.
"""

from __future__ import annotations

import re

from starman.http.events import ProtocolError

__all__ = [
    "HOST_VALUE",
    "SINGLE",
    "WATCHED",
    "after_messages",
    "authority",
    "body_framing",
    "keep_alive_wanted",
    "skip_empty_lines",
]

_DIGITS = re.compile(rb"[0-9]+")
HOST_VALUE = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::[0-9]*)?"
)
# Fields whose grammar is one value, not a list (RFC 9110, RFC 9111): a second line
# makes the request ambiguous, so it is refused (docs/hardening.md). Host and
# Content-Length have their own rules above these.
SINGLE = frozenset(
    (
        b"age",
        b"authorization",
        b"content-location",
        b"content-range",
        b"content-type",
        b"date",
        b"etag",
        b"expires",
        b"from",
        b"if-modified-since",
        b"if-range",
        b"if-unmodified-since",
        b"last-modified",
        b"location",
        b"max-forwards",
        b"proxy-authorization",
        b"range",
        b"referer",
        b"retry-after",
        b"user-agent",
    )
)
# The fields the reader looks at, by code: the framing fields (negative: host -1,
# content-length -2, transfer-encoding -3, connection -4, expect -5) and one bit for each
# single-value field, to find a repeated one with an OR.
WATCHED: dict[bytes, int] = {
    b"host": -1,
    b"content-length": -2,
    b"transfer-encoding": -3,
    b"connection": -4,
    b"expect": -5,
    **{name: 1 << i for i, name in enumerate(sorted(SINGLE))},
}


def keep_alive_wanted(http_version: bytes, connection: bytes | None) -> bool:
    """Whether the client asks to keep the connection open.

    ``connection`` is the comma-joined value of every ``Connection`` field (None if absent).
    HTTP/1.1 persists unless ``close`` is a token; HTTP/1.0 only with ``keep-alive``.
    """
    tokens: set[bytes] = set()
    if connection:
        tokens = {t.strip(b" \t").lower() for t in connection.split(b",")}
    if b"close" in tokens:
        return False
    if http_version == b"1.1":
        return True
    return b"keep-alive" in tokens


def skip_empty_lines(data: bytes, pos: int) -> int:
    """Past the CR and LF bytes at ``pos``: llhttp skips them before a request."""
    end = len(data)
    while pos < end and data[pos] in (10, 13):
        pos += 1
    return pos


def after_messages(
    data: bytes, pos: int, first: int, count: int, bodies: dict[int, int] | None
) -> int | None:
    """Where requests ``first`` to ``count - 1`` of a read (``data``) end, the first of
    them starting at ``pos``; None if ``data`` holds fewer blank lines.

    Each head ends at its first blank line (llhttp accepted them, so CRLF endings), and
    the ``i``-th is followed by ``bodies[i]`` bytes of Content-Length body (none if
    absent). Chunked bodies are never among them: chunked.py takes each one over.
    """
    for i in range(first, count):
        end = data.find(b"\r\n\r\n", skip_empty_lines(data, pos))
        if end < 0:
            return None
        pos = end + 4
        if bodies:
            pos += bodies.get(i, 0)
    return pos


def authority(url: bytes) -> bytes:
    """The authority of an absolute-form target (between ``//`` and the path, query or
    fragment)."""
    rest = url[url.find(b"//") + 2 :]
    for stop in (b"/", b"?", b"#"):
        at = rest.find(stop)
        if at >= 0:
            rest = rest[:at]
    return rest


def body_framing(
    version: bytes, nte: int, te: bytes, ncl: int, cl: bytes
) -> tuple[int | None, bool] | ProtocolError:
    """(Content-Length, chunked) from the framing fields of a head that has some, or the
    error to answer: a Transfer-Encoding (all its lines) that is ``chunked`` alone, or one
    decimal Content-Length."""
    if nte:
        if version == b"1.0" or ncl:
            return ProtocolError("invalid Transfer-Encoding framing", 400)
        codings = [c for c in (p.strip(b" \t").lower() for p in te.split(b",")) if c]
        if codings != [b"chunked"]:
            return ProtocolError("unsupported Transfer-Encoding", 501)
        return None, True
    if ncl > 1:
        return ProtocolError("repeated Content-Length", 400)
    raw = cl.strip(b" \t")
    if _DIGITS.fullmatch(raw) is None:
        return ProtocolError("invalid Content-Length", 400)
    return int(raw), False

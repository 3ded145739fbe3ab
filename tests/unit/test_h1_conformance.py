"""RFC 9110/9112 conformance cases a peer's request corpus found (docs/hardening.md):
each good case next to its malformed neighbour, replayed in every chunking."""

from __future__ import annotations

import pytest

from tests.harness.h1_replay import CHUNKINGS, replay

Seen = tuple[bytes, bytes, bytes, bool]


def _get(target: bytes, fields: bytes = b"Host: a\r\n") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\n" + fields + b"\r\n"


# ---------------------------------------------------------------- userinfo (item 1)
@pytest.mark.parametrize("how", CHUNKINGS)
@pytest.mark.parametrize(
    "target",
    [
        b"http://user:pass@example.com:8080/x",
        b"http://user@example.com/x",
        b"https://@example.com/",
        b"http://u:p@example.com",
        b"http://u:p@example.com?q",
    ],
)
def test_userinfo_in_absolute_target_is_refused(target: bytes, how: str) -> None:
    assert replay(_get(target), how) == ([], 400)


@pytest.mark.parametrize("how", CHUNKINGS)
@pytest.mark.parametrize(
    "target",
    [
        b"http://example.com:8080/x",
        b"http://example.com/a@b",
        b"http://example.com/?mail=a@b",
        b"/x@y",
    ],
)
def test_at_sign_outside_the_authority_is_fine(target: bytes, how: str) -> None:
    assert replay(_get(target), how) == ([(b"GET", target, b"", True)], None)


# ----------------------------------------------------- single-value fields (item 3)
SINGLE = [
    b"Content-Type",
    b"Authorization",
    b"Proxy-Authorization",
    b"User-Agent",
    b"Referer",
    b"Range",
    b"If-Modified-Since",
    b"If-Unmodified-Since",
    b"If-Range",
    b"Date",
    b"From",
    b"Max-Forwards",
    b"Content-Location",
    b"Content-Range",
]


@pytest.mark.parametrize("how", ["whole", "bytewise"])
@pytest.mark.parametrize("name", SINGLE)
def test_repeated_single_value_field_is_refused(name: bytes, how: str) -> None:
    fields = (
        b"Host: a\r\n" + name + b": one\r\nX-A: 1\r\n" + name.lower() + b": two\r\n"
    )
    assert replay(_get(b"/", fields), how) == ([], 400)


@pytest.mark.parametrize("name", SINGLE)
def test_one_single_value_field_passes(name: bytes) -> None:
    fields = b"Host: a\r\n" + name + b": one\r\n"
    assert replay(_get(b"/", fields)) == ([(b"GET", b"/", b"", True)], None)


@pytest.mark.parametrize(
    "name", [b"Accept", b"Cookie", b"Via", b"X-Forwarded-For", b"Cache-Control"]
)
def test_repeated_list_field_passes(name: bytes) -> None:
    fields = b"Host: a\r\n" + name + b": one\r\n" + name + b": two\r\n"
    assert replay(_get(b"/", fields)) == ([(b"GET", b"/", b"", True)], None)


def test_single_value_fields_are_counted_per_request() -> None:
    one = _get(b"/1", b"Host: a\r\nContent-Type: a/b\r\n")
    two = _get(b"/2", b"Host: a\r\nContent-Type: a/b\r\n")
    assert replay(one + two) == (
        [(b"GET", b"/1", b"", True), (b"GET", b"/2", b"", True)],
        None,
    )


def test_a_repeated_single_value_field_in_a_pipelined_request() -> None:
    one = _get(b"/1", b"Host: a\r\nContent-Type: a/b\r\n")
    two = _get(b"/2", b"Host: a\r\nContent-Type: a/b\r\nContent-Type: a/b\r\n")
    assert replay(one + two) == ([(b"GET", b"/1", b"", True)], 400)


# ---------------------------------------------- Transfer-Encoding on lines (item 5)
def _post(te_lines: bytes, body: bytes = b"0\r\n\r\n") -> bytes:
    return b"POST / HTTP/1.1\r\nHost: a\r\n" + te_lines + b"\r\n" + body


@pytest.mark.parametrize("how", CHUNKINGS)
@pytest.mark.parametrize(
    ("one_line", "two_lines"),
    [
        (b"gzip, chunked", (b"gzip", b"chunked")),
        (b"chunked, gzip", (b"chunked", b"gzip")),
        (b"chunked, chunked", (b"chunked", b"chunked")),
        (b"identity, chunked", (b"identity", b"chunked")),
    ],
)
def test_codings_on_one_line_or_two_get_the_same_status(
    one_line: bytes, two_lines: tuple[bytes, bytes], how: str
) -> None:
    one = replay(_post(b"Transfer-Encoding: " + one_line + b"\r\n"), how)
    two = replay(
        _post(b"".join(b"Transfer-Encoding: " + v + b"\r\n" for v in two_lines)), how
    )
    assert one == two == ([], 501)


def test_two_te_lines_with_content_length_stay_400() -> None:
    data = _post(
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n"
    )
    assert replay(data) == ([], 400)

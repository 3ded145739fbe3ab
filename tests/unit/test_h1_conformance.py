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


# ------------------------------------------------- chunk extensions with BWS (item 2)
def _chunked(size_line: bytes, tail: bytes = b"") -> bytes:
    return (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + size_line
        + b"\r\nhello\r\n0\r\n\r\n"
        + tail
    )


@pytest.mark.parametrize("how", CHUNKINGS)
@pytest.mark.parametrize(
    "line",
    [
        b"5",
        b"5;name=value",
        b"5; name=value",
        b"5 ;name",
        b"5\t;\tname",
        b"5 ; name = value",
        b"5;name= value",
        b"5;name =value",
        b'5 ; n = "a \\" b" ; m',
        b"5;a;b=c;d",
        b"0005;x",
    ],
)
def test_chunk_extensions_with_bws_are_accepted_and_ignored(
    line: bytes, how: str
) -> None:
    then = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    assert replay(_chunked(line, then), how) == (
        [(b"POST", b"/", b"hello", True), (b"GET", b"/next", b"", True)],
        None,
    )


@pytest.mark.parametrize("how", CHUNKINGS)
@pytest.mark.parametrize(
    "line",
    [
        b"5;na\rme",  # bare CR
        b"5;na\x00me",  # NUL
        b"5; name=\x00",
        b"5;",  # no name
        b"5 ;",
        b"5; =v",
        b"5;name=",  # no value
        b"5;name=a b",  # a space inside a token value
        b'5;name="open',  # unterminated quoted string
        b"5 ",  # whitespace without an extension
        b" 5",
        b"5;n\x7f",
        b"x5",
        b"5" * 17,  # more than 16 hex digits
    ],
)
def test_malformed_chunk_extensions_are_refused(line: bytes, how: str) -> None:
    assert replay(_chunked(line), how) == ([], 400)


def test_bare_lf_in_a_chunk_extension_is_refused() -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;na\nme\r\nhello\r\n0\r\n\r\n"
    )
    assert replay(data) == ([], 400)


def test_a_too_long_chunk_line_is_refused() -> None:
    assert replay(_chunked(b"5;" + b"x" * 5000)) == ([], 400)


@pytest.mark.parametrize(
    ("trailers", "status"),
    [
        (b"X-Sum: 1\r\n", None),
        (b"X-Sum: 1\r\nX-Other:\r\n", None),
        (b"Content-Length: 5\r\n", 400),
        (b"Transfer-Encoding: chunked\r\n", 400),
        (b"X Sum: 1\r\n", 400),
        (b"X-Sum: a\x00b\r\n", 400),
        (b"X-Sum 1\r\n", 400),
    ],
)
def test_trailers_are_checked_then_dropped(trailers: bytes, status: int | None) -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n" + trailers + b"\r\n"
    )
    seen = [(b"POST", b"/", b"abc", True)] if status is None else []
    assert replay(data) == (seen, status)


def test_chunked_body_over_the_limit_is_413() -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"a\r\n0123456789\r\n0\r\n\r\n"
    )
    assert replay(data, max_body=9) == ([], 413)
    assert replay(data, max_body=10) == ([(b"POST", b"/", b"0123456789", True)], None)


def test_chunked_request_with_connection_close_ends_the_connection() -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert replay(data) == ([(b"POST", b"/", b"", False)], None)


# --------------------------------------------------- methods for the app (item 6)
@pytest.mark.parametrize("how", CHUNKINGS)
@pytest.mark.parametrize(
    "method",
    [b"FOO", b"-BLARGH", b"PURGEX", b"GETX", b"QUERY", b"X", b"M!$%&'*+.^_`|~9"],
)
def test_unknown_token_methods_reach_the_app(method: bytes, how: str) -> None:
    data = method + b" /x HTTP/1.1\r\nHost: a\r\n\r\n"
    assert replay(data, how) == ([(method, b"/x", b"", True)], None)


@pytest.mark.parametrize("how", CHUNKINGS)
def test_unknown_method_framing_comes_from_its_fields(how: str) -> None:
    then = b"FOO /3 HTTP/1.1\r\nHost: a\r\n\r\n"
    data = (
        b"FOO /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        b"BAR /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2 ; x = y\r\nde\r\n0\r\n\r\n" + then
    )
    assert replay(data, how) == (
        [
            (b"FOO", b"/1", b"abc", True),
            (b"BAR", b"/2", b"de", True),
            (b"FOO", b"/3", b"", True),
        ],
        None,
    )


@pytest.mark.parametrize("how", CHUNKINGS)
@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"get / HTTP/1.1\r\nHost: a\r\n\r\n", 400),  # lower case: not a method
        (b"F#O / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"F\x00O / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # a TLS hello
        (b"FOO / HTTP/1.1\r\n\r\n", 400),  # still needs Host
        (
            b"FOO / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
        ),
        (b"FOO / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"FOO * HTTP/1.1\r\nHost: a\r\n\r\n", 400),  # '*' is for OPTIONS
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
    ],
)
def test_malformed_neighbours_of_unknown_methods(
    data: bytes, status: int, how: str
) -> None:
    assert replay(data, how) == ([], status)


def test_the_request_line_limit_counts_the_real_method() -> None:
    target = b"/" + b"a" * 80
    for method, status in ((b"M" * 10, None), (b"M" * 20, 414)):
        data = method + b" " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n"
        seen = [(method, target, b"", True)] if status is None else []
        assert replay(data, limit_request_line=101) == (seen, status)


def test_a_method_token_longer_than_the_request_line_limit_is_414() -> None:
    assert replay(b"M" * 200, limit_request_line=100) == ([], 414)


def test_an_unfinished_unknown_method_at_eof_is_an_unfinished_request() -> None:
    assert replay(b"FOOB") == ([], None)


def test_known_methods_after_an_unknown_one_use_the_plain_parser() -> None:
    data = (
        b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n" + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 2
    )
    assert replay(data) == (
        [(b"FOO", b"/", b"", True)] + [(b"GET", b"/", b"", True)] * 2,
        None,
    )

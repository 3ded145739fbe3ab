"""The conformance cases through a live forked worker (docs/hardening.md): userinfo in
the target, repeated single-value fields, methods llhttp does not know, chunk extensions
with BWS and the trusted scheme; the worker keeps serving after each refusal."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from tests.harness.forked_worker import ForkedWorker, forked_worker, make_config
from tests.integration.test_smuggling_live import exchange, parse_responses


def echo(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    seen = {
        "method": environ["REQUEST_METHOD"],
        "host": environ.get("HTTP_HOST"),
        "content_type": environ.get("CONTENT_TYPE"),
        "scheme": environ["wsgi.url_scheme"],
        "body": environ["wsgi.input"].read().decode("latin-1"),
    }
    body = json.dumps(seen).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


@pytest.fixture(scope="module")
def worker() -> Iterator[ForkedWorker]:
    config = make_config(read_timeout=2.0, keepalive_timeout=0.3, body_timeout=2.0)
    with forked_worker(echo, config) as w:
        yield w


def _one(worker: ForkedWorker, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    got = parse_responses(exchange(worker.address, raw), [False])
    assert len(got) == 1, got
    assert worker.alive()
    return got[0]


def _seen(worker: ForkedWorker, raw: bytes) -> dict[str, Any]:
    status, _, body = _one(worker, raw)
    assert status == 200, body
    seen: dict[str, Any] = json.loads(body)
    return seen


CLOSE = b"Connection: close\r\n"


def test_userinfo_in_the_target_is_refused(worker: ForkedWorker) -> None:
    raw = (
        b"GET http://user:pass@example.com:8080/x HTTP/1.1\r\nHost: example.com\r\n\r\n"
    )
    status, headers, _ = _one(worker, raw)
    assert status == 400 and headers["connection"] == "close"
    good = b"GET http://example.com:8080/x HTTP/1.1\r\nHost: h\r\n" + CLOSE + b"\r\n"
    assert _seen(worker, good)["host"] == "example.com:8080"


def test_repeated_content_type_is_refused(worker: ForkedWorker) -> None:
    head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Type: application/json\r\n"
    status, _, _ = _one(worker, head + b"Content-Type: text/html\r\n\r\n{}")
    assert status == 400
    seen = _seen(worker, head + CLOSE + b"\r\n{}")
    assert seen["content_type"] == "application/json" and seen["body"] == "{}"


@pytest.mark.parametrize("method", ["FOO", "-BLARGH", "PROPFIND", "QUERY"])
def test_token_methods_reach_the_app(worker: ForkedWorker, method: str) -> None:
    raw = (
        method.encode()
        + b" /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
        + CLOSE
        + b"\r\nabc"
    )
    seen = _seen(worker, raw)
    assert (seen["method"], seen["body"]) == (method, "abc")


def test_pipelined_unknown_methods_are_each_answered(worker: ForkedWorker) -> None:
    raw = (
        b"FOO /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3 ; x = y\r\nabc\r\n0\r\n\r\n"
        b"BAR /2 HTTP/1.1\r\nHost: a\r\n" + CLOSE + b"\r\n"
    )
    got = parse_responses(exchange(worker.address, raw), [False, False])
    assert [(c, json.loads(b)["method"], json.loads(b)["body"]) for c, _, b in got] == [
        (200, "FOO", "abc"),
        (200, "BAR", ""),
    ]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"get / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"F(O / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
    ],
)
def test_what_is_not_a_method_for_the_app(
    worker: ForkedWorker, raw: bytes, status: int
) -> None:
    got, _, body = _one(worker, raw)
    assert got == status
    if status == 501:
        assert b"CONNECT is not supported" in body


def test_te_codings_on_two_lines_get_501_with_the_reason(worker: ForkedWorker) -> None:
    raw = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    status, _, body = _one(worker, raw)
    assert status == 501 and b"Transfer-Encoding" in body

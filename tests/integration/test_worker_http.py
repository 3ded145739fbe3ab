"""Black-box HTTP tests against one forked worker (run_worker on a unix socket)."""

from __future__ import annotations

import json
import os
import socket
import time
import wsgiref.validate
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.apps.engine_apps import echo_app, validated_app
from tests.harness.forked_worker import (
    ForkedWorker,
    connect,
    forked_worker,
    make_config,
    read_one,
    read_response,
    recv_all,
    responses,
)

CORPUS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "corpus", "requests")
CONFIG = make_config(
    read_timeout=1.0, keepalive_timeout=1.0, body_timeout=1.0, max_request_body=1 << 20
)
GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


@pytest.fixture(scope="module")
def worker() -> Iterator[ForkedWorker]:
    with forked_worker(echo_app, CONFIG) as w:
        yield w


def get_ok(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        s.sendall(GET)
        assert read_one(s)[0] == b"HTTP/1.1 200 OK"


def test_worker_keep_alive(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        pids = set()
        for _ in range(3):
            s.sendall(GET)
            status, headers, body = read_one(s)
            assert status == b"HTTP/1.1 200 OK"
            assert headers["connection"] == "keep-alive"
            assert "server" not in headers
            assert headers["date"].endswith(" GMT")
            pids.add(json.loads(body)["pid"])
        assert len(pids) == 1


def test_worker_http10_closes(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in data


def test_worker_three_pipelined_requests_in_order(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        s.sendall(
            b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(3))
        )
        got = [json.loads(body)["path"] for _, _, body in responses(s, 3)]
    assert got == ["/0", "/1", "/2"]


def test_worker_pipelined_get_then_post(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        s.sendall(GET + b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
        first, second = responses(s, 2)
    assert json.loads(second[2])["body"] == "hi"


@pytest.mark.parametrize(
    "first",
    [GET, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n\r\n\r\n"],
    ids=["get", "post-with-body"],
)
def test_worker_pipelined_unknown_method_reaches_the_app(
    worker: ForkedWorker, first: bytes
) -> None:
    # Sent in one write: the first request is answered, then FOO goes to the app as it
    # would alone (after a Content-Length body too, one that even looks like a blank
    # line). It used to get 501; the method is now the app's to decide.
    with connect(worker.address) as s:
        s.sendall(first + b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n")
        _, second = responses(s, 2)
    assert json.loads(second[2])["method"] == "FOO"
    get_ok(worker)


def test_worker_chunked_in_and_out(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\nabcd\r\n3\r\nefg\r\n0\r\nX-T: 1\r\n\r\n"
        )
        info = json.loads(read_one(s)[2])
        assert info["body"] == "abcdefg" and info["content_length"] == "7"
        assert "HTTP_TRANSFER_ENCODING" not in info["http_keys"]
        assert "HTTP_X_T" not in info["http_keys"]
        s.sendall(b"GET /gen HTTP/1.1\r\nHost: a\r\n\r\n")
        s.settimeout(5)
        buf = b""
        while not buf.endswith(b"0\r\n\r\n"):
            buf += s.recv(65536)
    assert b"Transfer-Encoding: chunked\r\n" in buf
    assert buf.split(b"\r\n\r\n", 1)[1] == b"1\r\na\r\n2\r\nbc\r\n0\r\n\r\n"


def test_worker_100_continue(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
        )
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hi")
        status, _, body = read_one(s)
    assert status == b"HTTP/1.1 200 OK" and json.loads(body)["body"] == "hi"


def test_worker_expect_with_too_large_body_is_413_without_100(
    worker: ForkedWorker,
) -> None:
    with connect(worker.address) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n"
        )
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 413 ")


def test_worker_head_then_get(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        s.sendall(
            b"HEAD /gen HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        s.settimeout(5)
        buf = b""
        while buf.count(b"HTTP/1.1 200") < 2 or not buf.endswith(b"}"):
            buf += s.recv(65536)
    head1, rest = buf.split(b"\r\n\r\n", 1)
    assert b"Transfer-Encoding" not in head1
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")


SMUGGLING = [
    ("003_cl_and_te", 400),
    ("005_two_cl_equal", 400),
    ("006_cl_list", 400),
    ("007_cl_plus", 400),
    ("009_cl_3x", 400),
    ("013_te_gzip_chunked", 501),
    ("014_te_identity", 501),
    ("017_two_te", 501),  # one list on two lines: as on one line (it was 400)
    ("018_te_http10", 400),
    ("019_obs_fold", 400),
    ("020_bare_lf", 400),
    ("021_bare_cr", 400),
    ("022_nul_value", 400),
    ("025_space_before_colon", 400),
    ("026_tab_first_field", 400),
    ("027_long_request_line", 414),
    ("028_too_many_fields", 431),
    ("030_head_1mib", 431),
    ("031_chunk_overflow", 400),
    ("035_chunk_no_crlf", 400),
    ("037_http20", 505),
    ("039_http09", 400),
    ("040_lowercase_method", 400),
    ("055_userinfo_target", 400),
    ("056_two_content_types", 400),
    ("042_tls_client_hello", 400),
    ("043_connect", 501),
    ("001_no_host", 400),
    ("002_two_hosts", 400),
]


@pytest.mark.parametrize(("name", "status"), SMUGGLING)
def test_worker_rejects_bad_framing_and_keeps_serving(
    worker: ForkedWorker, name: str, status: int
) -> None:
    with open(os.path.join(CORPUS, "invalid", name + ".http"), "rb") as f:
        raw = f.read()
    # Anything after the bad head must never run as a request.
    raw += b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    with connect(worker.address) as s:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:80]
    assert b"Connection: close\r\n" in data
    assert data.count(b"HTTP/1.1 ") == 1
    get_ok(worker)


def test_worker_underscore_and_proxy_headers_dropped(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        s.sendall(
            b"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 1.2.3.4\r\nProxy: http://evil\r\n\r\n"
        )
        keys = json.loads(read_one(s)[2])["http_keys"]
    assert keys == ["HTTP_HOST"]


def test_worker_upgrade_served_plain_then_closed(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        s.sendall(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            + GET
        )
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in data and data.count(b"HTTP/1.1 ") == 1


def test_worker_app_error_is_500_and_worker_survives(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        s.sendall(b"GET /boom HTTP/1.1\r\nHost: a\r\n\r\n")
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert worker.alive()
    get_ok(worker)


def test_worker_partial_head_gets_408(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHo")
        started = time.monotonic()
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert 0.5 < time.monotonic() - started < 3


def test_worker_silent_connection_closed_without_bytes(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        assert recv_all(s) == b""


def test_worker_idle_keep_alive_closed_silently(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        s.sendall(GET)
        read_one(s)
        assert recv_all(s) == b""


def test_worker_body_timeout_gets_408(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
        get_ok(worker)  # the stalled upload does not hold the worker
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 408 ")


def test_worker_slow_reader_does_not_block_others(worker: ForkedWorker) -> None:
    with connect(worker.address) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        started = time.monotonic()
        get_ok(worker)
        assert time.monotonic() - started < 2


def test_worker_validator_app_get_post_chunked() -> None:
    app = wsgiref.validate.validator(validated_app)
    with forked_worker(app, CONFIG) as w, connect(w.address) as s:
        s.sendall(GET)
        assert read_one(s)[2] == b"ok:"
        s.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
        assert read_one(s)[2] == b"ok:hi"
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
        )
        assert read_one(s)[2] == b"ok:hi"
        s.sendall(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_one(s)[0] == b"HTTP/1.1 200 OK"
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n" + GET)
        status, headers, _ = read_response(s, head_only=True)
        assert status == b"HTTP/1.1 200 OK" and headers["content-length"] == "3"
        assert read_one(s)[2] == b"ok:"
        assert w.alive()


def test_worker_max_requests_closes_then_exits() -> None:
    cfg = make_config(max_requests=2, keepalive_timeout=1.0)
    with forked_worker(echo_app, cfg) as w, connect(w.address) as s:
        s.sendall(GET)
        assert read_one(s)[1]["connection"] == "keep-alive"
        s.sendall(GET)
        assert read_one(s)[1]["connection"] == "close"
        assert w.wait(5) == 0


def test_worker_max_keepalive_reqs() -> None:
    cfg = make_config(max_keepalive_reqs=3)
    with forked_worker(echo_app, cfg) as w, connect(w.address) as s:
        got = []
        for _ in range(3):
            s.sendall(GET)
            got.append(read_one(s)[1]["connection"])
    assert got == ["keep-alive", "keep-alive", "close"]


def test_worker_disable_keepalive() -> None:
    with (
        forked_worker(echo_app, make_config(keepalive=False)) as w,
        connect(w.address) as s,
    ):
        s.sendall(GET)
        assert read_one(s)[1]["connection"] == "close"


def _addresses_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    keys = ("SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR", "REMOTE_PORT")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({k: environ.get(k) for k in keys}).encode()]


def test_worker_tcp_listener_environ() -> None:
    with forked_worker(echo_app, CONFIG, tcp=True) as w, connect(w.address) as s:
        s.sendall(GET)
        assert read_one(s)[0] == b"HTTP/1.1 200 OK"


def test_worker_tcp_addresses_in_environ() -> None:
    # SERVER_NAME/SERVER_PORT come from the listener's address (looked up once).
    with forked_worker(_addresses_app, CONFIG, tcp=True) as w:
        assert isinstance(w.address, tuple)
        for _ in range(2):
            with connect(w.address) as s:
                s.sendall(GET)
                env = json.loads(read_one(s)[2])
                assert env["SERVER_NAME"] == "127.0.0.1"
                assert env["SERVER_PORT"] == str(w.address[1])
                assert env["REMOTE_ADDR"] == "127.0.0.1"
                assert env["REMOTE_PORT"] == str(s.getsockname()[1])


def test_worker_client_close_is_a_plain_close(worker: ForkedWorker) -> None:
    # The client asked to close and sent nothing more: no lingering, the socket is
    # fully closed once the response is out, so writing to it fails at once.
    with connect(worker.address) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data = recv_all(s)
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Connection: close\r\n" in data
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            s.sendall(b"x")


def test_worker_bytes_after_client_close_get_a_lingering_close(
    worker: ForkedWorker,
) -> None:
    # Bytes after a Connection: close request are discarded, not answered, and the
    # server lingers (keeps reading) so they cannot reset the response away.
    with connect(worker.address) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + GET)
        data = recv_all(s)
        assert data.count(b"HTTP/1.1 200 OK\r\n") == 1
        s.sendall(b"more bytes the server discards")

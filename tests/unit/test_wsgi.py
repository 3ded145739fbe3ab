"""Unit tests for starman.wsgi (environ and response): environ from literal requests, start_response rules, output."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from starman.http.body import BodyBuffer, BodyInput, empty_input
from starman.http.events import NEED_DATA, PAUSED, Data, Request
from starman.http.h1 import ServerConnection, State
from starman.wsgi.environ import (
    RequestRejected,
    connection_environ,
    request_environ,
    server_environ,
)
from starman.wsgi.response import FileWrapper, StartResponse, call_app
from tests.harness.h1_replay import make_conn

SERVER = server_environ(worker_pid=123, generation="7")
TCP_ENV = connection_environ(
    SERVER, ("127.0.0.1", 8080), ("10.0.0.1", 5555), unix=False
)
UNIX_ENV = connection_environ(SERVER, None, None, unix=True)


def parse(raw: bytes) -> tuple[ServerConnection, Request, BodyInput, int]:
    conn = make_conn()
    conn.receive_data(raw)
    req = conn.next_event()
    assert isinstance(req, Request)
    buf = BodyBuffer(1 << 20)
    while True:
        ev = conn.next_event()
        if ev is PAUSED:
            break
        assert ev is not NEED_DATA
        if isinstance(ev, Data):
            buf.write(ev.data)
    return conn, req, buf.finish(), buf.size


def environ_for(
    raw: bytes, base: dict[str, Any] = TCP_ENV, **kw: Any
) -> dict[str, Any]:
    _, req, body, size = parse(raw)
    return request_environ(base, req, body, size, **kw)


def test_wsgi_environ_basic_keys() -> None:
    env = environ_for(b"GET /a?b=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n\r\n")
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/a"
    assert env["QUERY_STRING"] == "b=1"
    assert env["REQUEST_URI"] == env["RAW_URI"] == "/a?b=1"
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == "8080"
    assert env["REMOTE_ADDR"] == "10.0.0.1" and env["REMOTE_PORT"] == "5555"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["HTTP_HOST"] == "h"
    assert env["HTTP_X_A"] == "1, 2"
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is False
    assert env["wsgi.multiprocess"] is True
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.errors"] is sys.stderr
    assert env["starman.worker_pid"] == 123
    assert env["starman.generation"] == "7"
    assert env["SERVER_SOFTWARE"].startswith("starman/")
    assert "CONTENT_LENGTH" not in env
    assert "HTTP_CONNECTION" not in env


def test_wsgi_environ_chunked_body_gets_content_length() -> None:
    env = environ_for(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: text/plain\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\nX-T: 1\r\n\r\n"
    )
    assert env["CONTENT_LENGTH"] == "7"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert "HTTP_TRANSFER_ENCODING" not in env
    assert "HTTP_X_T" not in env
    assert "HTTP_CONTENT_TYPE" not in env
    assert env["wsgi.input"].read() == b"abcdefg"


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"/a%20b%2Fc?x=%41", "/a b/c", "x=%41"),
        (b"/caf%C3%A9", b"/caf\xc3\xa9".decode("latin-1"), ""),
        (b"/a#frag", "/a", ""),
        (b"http://ex.com/p?q=1", "/p", "q=1"),
        (b"http://ex.com", "/", ""),
    ],
)
def test_wsgi_environ_path_decoding(target: bytes, path: str, query: str) -> None:
    env = environ_for(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert env["PATH_INFO"] == path
    assert env["QUERY_STRING"] == query
    assert env["REQUEST_URI"] == target.decode("latin-1")


def test_wsgi_environ_absolute_form_authority_wins() -> None:
    env = environ_for(
        b"GET http://ex.com:81/p HTTP/1.1\r\nHost: other\r\n\r\n", UNIX_ENV, unix=True
    )
    assert env["HTTP_HOST"] == "ex.com:81"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("ex.com", "81")


def test_wsgi_environ_options_star() -> None:
    env = environ_for(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert env["PATH_INFO"] == ""
    assert env["REQUEST_URI"] == "*"


def test_wsgi_environ_unix_socket_uses_host() -> None:
    env = environ_for(
        b"GET / HTTP/1.1\r\nHost: example.org:8080\r\n\r\n", UNIX_ENV, unix=True
    )
    assert env["REMOTE_ADDR"] == ""
    assert "REMOTE_PORT" not in env
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.org", "8080")
    env = environ_for(b"GET / HTTP/1.0\r\n\r\n", UNIX_ENV, unix=True)
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("localhost", "80")


def test_wsgi_environ_drops_underscore_and_proxy_headers() -> None:
    env = environ_for(
        b"GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 1.2.3.4\r\nProxy: http://evil\r\n\r\n"
    )
    assert "HTTP_X_FORWARDED_FOR" not in env
    assert "HTTP_PROXY" not in env


def test_wsgi_environ_cookie_joined_with_semicolon() -> None:
    env = environ_for(
        b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n"
    )
    assert env["HTTP_COOKIE"] == "a=1; b=2"


def test_wsgi_environ_forwarded_proto_only_when_trusted() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https\r\n\r\n"
    assert environ_for(raw)["wsgi.url_scheme"] == "http"
    env = environ_for(raw, trusted=True)
    assert env["wsgi.url_scheme"] == "https" and env["HTTPS"] == "on"
    env = environ_for(
        b"GET / HTTP/1.1\r\nHost: h\r\nForwarded: for=x;proto=https\r\n\r\n",
        trusted=True,
    )
    assert env["wsgi.url_scheme"] == "https"
    with pytest.raises(RequestRejected) as info:
        environ_for(
            b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https\r\nForwarded: proto=http\r\n\r\n",
            trusted=True,
        )
    assert info.value.status == 400


def test_wsgi_environ_script_name_mount() -> None:
    base = connection_environ(server_environ(script_name="/app"), None, None, unix=True)
    env = environ_for(b"GET /app/x HTTP/1.1\r\nHost: h\r\n\r\n", base, unix=True)
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/x")
    env = environ_for(b"GET /app HTTP/1.1\r\nHost: h\r\n\r\n", base, unix=True)
    assert env["PATH_INFO"] == ""
    with pytest.raises(RequestRejected) as info:
        environ_for(b"GET /application HTTP/1.1\r\nHost: h\r\n\r\n", base, unix=True)
    assert info.value.status == 404


# --------------------------------------------------------------------- responses
class FakeTransport:
    def __init__(self) -> None:
        self.data = b""
        self.files: list[tuple[int, int, int]] = []

    def write(self, parts: list[bytes], final: bool = False) -> None:
        self.data += b"".join(parts)

    def sendfile(self, fd: int, offset: int, count: int) -> None:
        self.files.append((fd, offset, count))


def run(
    app: Any, raw: bytes = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
) -> tuple[ServerConnection, bytes]:
    conn, req, body, size = parse(raw)
    env = request_environ(TCP_ENV, req, body, size)
    transport = FakeTransport()
    call_app(app, env, conn, transport)
    return conn, transport.data


def split(data: bytes) -> tuple[bytes, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def test_wsgi_list_body_gets_content_length() -> None:
    def app(env: dict[str, Any], sr: StartResponse) -> Iterable[bytes]:
        sr("200 OK", [("Content-Type", "text/plain")])
        return [b"ab", b"c"]

    conn, data = run(app)
    head, body = split(data)
    assert b"Content-Length: 3" in head and b"chunked" not in head
    assert body == b"abc"
    assert conn.keep_alive


def test_wsgi_generator_body_is_chunked() -> None:
    def app(env: dict[str, Any], sr: StartResponse) -> Iterator[bytes]:
        sr("200 OK", [])
        yield b"a"
        yield b""
        yield b"b"

    _, data = run(app)
    head, body = split(data)
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n"


def test_wsgi_write_then_iterable() -> None:
    def app(env: dict[str, Any], sr: StartResponse) -> Iterable[bytes]:
        write = sr("200 OK", [])
        write(b"a")
        return [b"b"]

    _, data = run(app)
    assert split(data)[1] == b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n"


def test_wsgi_app_exception_before_headers_is_500() -> None:
    def app(env: dict[str, Any], sr: StartResponse) -> Iterable[bytes]:
        raise RuntimeError("boom")

    conn, data = run(app)
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"Connection: close" in data
    assert not conn.keep_alive


@pytest.mark.parametrize(
    "headers",
    [
        [("X-A", "a\r\nX-Injected: 1")],
        [("Bad Name", "v")],
        [("X-A", "\x00")],
        [("Transfer-Encoding", "chunked")],
        [("Content-Length", "abc")],
        [("X-A", "\u20ac")],
        ("X-A", "v"),
    ],
)
def test_wsgi_invalid_headers_give_500(headers: Any) -> None:
    def app(env: dict[str, Any], sr: StartResponse) -> Iterable[bytes]:
        sr("200 OK", headers)
        return [b"x"]

    _, data = run(app)
    assert data.startswith(b"HTTP/1.1 500 ")
    assert b"X-Injected" not in data


@pytest.mark.parametrize(
    "status", ["200", "OK 200", "99 x", "600 Too high", "100 Continue", 200]
)
def test_wsgi_invalid_status_gives_500(status: Any) -> None:
    def app(env: dict[str, Any], sr: StartResponse) -> Iterable[bytes]:
        sr(status, [])
        return [b"x"]

    assert run(app)[1].startswith(b"HTTP/1.1 500 ")


def test_wsgi_start_response_twice_without_exc_info_is_500() -> None:
    def app(env: dict[str, Any], sr: StartResponse) -> Iterable[bytes]:
        sr("200 OK", [])
        sr("201 Created", [])
        return [b"x"]

    assert run(app)[1].startswith(b"HTTP/1.1 500 ")


def test_wsgi_exc_info_before_body_replaces_status() -> None:
    def app(env: dict[str, Any], sr: StartResponse) -> Iterable[bytes]:
        sr("200 OK", [("X-A", "1")])
        try:
            raise ValueError("x")
        except ValueError:
            sr("503 Service Unavailable", [], sys.exc_info())  # type: ignore[arg-type]  # exc_info is a real triple here
        return [b"x"]

    head, _ = split(run(app)[1])
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable")
    assert b"X-A" not in head


def test_wsgi_exc_info_after_body_aborts() -> None:
    def app(env: dict[str, Any], sr: StartResponse) -> Iterator[bytes]:
        sr("200 OK", [])
        yield b"a"
        try:
            raise ValueError("x")
        except ValueError:
            sr("500 Oops", [], sys.exc_info())  # type: ignore[arg-type]  # exc_info is a real triple here
        yield b"never"

    conn, data = run(app)
    assert conn.our_state is State.ERROR
    assert not data.endswith(b"0\r\n\r\n")


def test_wsgi_close_called_once_even_on_error_and_head() -> None:
    calls: list[str] = []

    class Body:
        def __init__(self, fail: bool) -> None:
            self.fail = fail

        def __iter__(self) -> Iterator[bytes]:
            yield b"x"
            if self.fail:
                raise RuntimeError("mid-stream")

        def close(self) -> None:
            calls.append("close")

    def app_factory(fail: bool) -> Any:
        def app(env: dict[str, Any], sr: StartResponse) -> Iterable[bytes]:
            sr("200 OK", [("Content-Length", "1")])
            return Body(fail)

        return app

    run(app_factory(False))
    run(app_factory(True))
    conn, data = run(app_factory(False), b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert calls == ["close", "close", "close"]
    assert split(data)[1] == b""
    assert conn.keep_alive


def test_wsgi_str_body_is_an_error() -> None:
    def app(env: dict[str, Any], sr: StartResponse) -> Any:
        sr("200 OK", [])
        return "text"

    assert run(app)[1].startswith(b"HTTP/1.1 500 ")


def test_wsgi_hop_by_hop_stripped_and_app_date_kept() -> None:
    def app(env: dict[str, Any], sr: StartResponse) -> Iterable[bytes]:
        sr(
            "200 OK",
            [("Connection", "keep-alive"), ("Keep-Alive", "5"), ("Date", "app")],
        )
        return [b""]

    head, _ = split(run(app)[1])
    assert head.count(b"Date:") == 1 and b"Date: app" in head
    assert b"Keep-Alive" not in head and head.count(b"Connection:") == 1


def test_wsgi_informational_and_early_hints() -> None:
    def app(env: dict[str, Any], sr: StartResponse) -> Iterable[bytes]:
        env["wsgi.early_hints"]([("Link", "</a.css>; rel=preload")])
        sr("200 OK", [])
        return [b"x"]

    data = run(app)[1]
    assert data.startswith(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK"
    )


def test_wsgi_file_wrapper_uses_sendfile(tmp_path: Any) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")

    def app(env: dict[str, Any], sr: StartResponse) -> Iterable[bytes]:
        sr("200 OK", [])
        f = open(path, "rb")  # noqa: SIM115  # closed by the wrapper
        f.seek(2)
        return env["wsgi.file_wrapper"](f)  # type: ignore[no-any-return]  # environ values are Any

    conn, req, body, size = parse(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    transport = FakeTransport()
    call_app(app, request_environ(TCP_ENV, req, body, size), conn, transport)
    assert b"Content-Length: 8\r\n" in transport.data
    assert [(off, n) for _, off, n in transport.files] == [(2, 8)]
    assert conn.keep_alive


def test_wsgi_file_wrapper_without_fd_is_iterated() -> None:
    import io

    wrapper = FileWrapper(io.BytesIO(b"abc"), 2)
    assert list(wrapper) == [b"ab", b"c"]


def test_wsgi_harakiri_commit_closes() -> None:
    def app(env: dict[str, Any], sr: StartResponse) -> Iterable[bytes]:
        assert env["starman.harakiri"] is True
        env["starman.harakiri.commit"] = True
        sr("200 OK", [])
        return [b"x"]

    conn, data = run(app)
    assert b"Connection: close" in data
    assert not conn.keep_alive


def test_wsgi_empty_input_for_get() -> None:
    assert empty_input().read() == b""


def test_wsgi_cached_headers_and_targets_give_the_same_bytes() -> None:
    # start_response caches checked (name, value) pairs and request_environ caches
    # split targets: a repeat must give exactly the first answer, and a bad header
    # next to cached good ones must still be refused.
    good = [("Content-Type", "text/plain"), ("Content-Length", "2"), ("X-A", "1")]

    def app(env: dict[str, Any], sr: StartResponse) -> Iterable[bytes]:
        sr("200 OK", list(good))
        return [env["PATH_INFO"].encode()[:2]]

    raw = b"GET /a%20b?q=1 HTTP/1.1\r\nHost: h\r\n\r\n"
    first = run(app, raw)[1]
    assert run(app, raw)[1] == first
    head, body = split(first)
    assert head.count(b"Content-Length: 2\r\n") == 1
    assert b"X-A: 1\r\n" in head and body == b"/a"
    assert environ_for(raw)["PATH_INFO"] == environ_for(raw)["PATH_INFO"] == "/a b"

    class Name(str):
        pass

    for bad in (("X-A", "1\r\nX-Injected: 1"), ["X-A", "1"], (Name("X-A"), "1")):
        good.append(bad)  # type: ignore[arg-type]  # deliberately not a (str, str)
        data = run(app, raw)[1]
        assert data.startswith(b"HTTP/1.1 500 "), bad
        good.pop()

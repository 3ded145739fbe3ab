"""Every app in docs/examples/ served by ``python -m starman`` on a unix socket."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.harness.process import REPO
from tests.harness.rawhttp import http_get, http_request, response_body
from tests.harness.starman_program import Launcher, Server, launcher

__all__ = ["launcher"]

EXAMPLES = os.path.join(REPO, "docs", "examples")


def _serve(launcher: Launcher, example: str) -> tuple[Server, str]:
    path = os.path.join(launcher.tmpdir, "ex.sock")
    server = launcher.run(
        [
            "--workers",
            "1",
            "--listen",
            f"unix:{path}",
            os.path.join(EXAMPLES, example),
        ]
    )
    server.wait_log("all 1 workers ready", timeout=30)
    return server, path


def _stop(server: Server) -> None:
    server.signal(signal.SIGTERM)
    assert server.proc.wait(timeout=15) == 0


def _post(path: str, target: str, body: bytes, ctype: str) -> bytes:
    head = (
        f"POST {target} HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return http_request(path, head.encode() + body)


def _ok_body(raw: bytes) -> bytes:
    assert raw.startswith(b"HTTP/1.1 200"), raw
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    body = response_body(raw)
    if b"\r\ntransfer-encoding: chunked" not in head:
        return body
    out = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out, body = out + body[:size], body[size + 2 :]


def test_hello_example(launcher: Launcher) -> None:
    server, path = _serve(launcher, "hello.py")
    worker = next(iter(server.workers()))
    body = _ok_body(http_get(path)).decode()
    assert body == f"Hello World from pid {worker} (generation -)\n"
    _stop(server)


def test_flask_example(launcher: Launcher) -> None:
    pytest.importorskip("flask")
    server, path = _serve(launcher, "flask_app.py")
    worker = next(iter(server.workers()))
    assert _ok_body(http_get(path)) == f"Hello from Flask, pid {worker}\n".encode()
    raw = _post(path, "/echo", b'{"a": [1, 2]}', "application/json")
    assert json.loads(_ok_body(raw)) == {"got": {"a": [1, 2]}, "scheme": "http"}
    assert http_get(path, "/missing").startswith(b"HTTP/1.1 404")
    _stop(server)


def test_django_example(launcher: Launcher) -> None:
    pytest.importorskip("django")
    server, path = _serve(launcher, "django_app.py")
    worker = next(iter(server.workers()))
    assert _ok_body(http_get(path)) == f"Hello from Django, pid {worker}\n".encode()
    info = json.loads(_ok_body(http_get(path, "/info?q=caf%C3%A9")))
    assert info == {"scheme": "http", "path": "/info", "q": "café"}
    _stop(server)


def test_bottle_example(launcher: Launcher) -> None:
    pytest.importorskip("bottle")
    server, path = _serve(launcher, "bottle_app.py")
    worker = next(iter(server.workers()))
    assert _ok_body(http_get(path)) == f"Hello from Bottle, pid {worker}\n".encode()
    assert _ok_body(http_get(path, "/hello/world")) == b"Hello, world\n"
    _stop(server)


def test_falcon_example(launcher: Launcher) -> None:
    pytest.importorskip("falcon")
    server, path = _serve(launcher, "falcon_app.py")
    worker = next(iter(server.workers()))
    assert _ok_body(http_get(path)) == f"Hello from Falcon, pid {worker}\n".encode()
    raw = _post(path, "/", b"x" * 70000, "application/octet-stream")
    assert json.loads(_ok_body(raw)) == {"received": 70000}
    _stop(server)

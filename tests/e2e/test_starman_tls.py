"""TLS (--enable-ssl, --ssl-cert, --ssl-key, HOST:PORT:ssl) over 127.0.0.1.

A throw-away self-signed certificate is made with the ``openssl`` command (the test is
skipped if it is missing). Checks: HTTPS requests with keep-alive, a large request body
and large responses, wsgi.url_scheme=https, file_wrapper (no sendfile through TLS),
handshakes that stall do not pin the only worker, plain HTTP on a TLS port is refused
without harm, --enable-ssl covers an inherited socket, and a bad key is a clear error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.harness.process import FIXTURES, wait_for
from tests.harness.starman_program import Launcher, Server, launcher

__all__ = ["launcher"]  # the fixture, shared from the harness

APP = os.path.join(FIXTURES, "apps", "tls_app.py")
OPENSSL = shutil.which("openssl")

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")


@dataclass
class Cert:
    cert: str
    key: str


@pytest.fixture(scope="module")
def cert() -> Iterator[Cert]:
    tmp = tempfile.mkdtemp(prefix="tc", dir="/tmp")
    try:
        c, k = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        assert OPENSSL is not None
        subprocess.run(
            [
                OPENSSL,
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                k,
                "-out",
                c,
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        yield Cert(c, k)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def tls_port(server: Server) -> int:
    def find() -> int | None:
        m = re.search(r"listening on 127\.0\.0\.1:(\d+):ssl ", server.log())
        return int(m.group(1)) if m else None

    return wait_for(find, timeout=20)


def client(cert: Cert, port: int) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=cert.cert)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def read_response(s: ssl.SSLSocket, buf: bytearray) -> tuple[bytes, bytes]:
    """One Content-Length response from ``s`` (``buf`` carries bytes read past it)."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, bytes(buf)
        buf += chunk
    head, _, _ = bytes(buf).partition(b"\r\n\r\n")
    del buf[: len(head) + 4]
    m = re.search(rb"\r\nContent-Length: (\d+)", head)
    assert m, head
    n = int(m.group(1))
    while len(buf) < n:
        chunk = s.recv(1 << 20)
        assert chunk
        buf += chunk
    body = bytes(buf[:n])
    del buf[:n]
    return head, body


def start(launcher: Launcher, cert: Cert, *extra: str, workers: int = 1) -> Server:
    server = launcher.run(
        [
            "--workers",
            str(workers),
            "--listen",
            "127.0.0.1:0:ssl",
            "--ssl-cert",
            cert.cert,
            "--ssl-key",
            cert.key,
            *extra,
            APP,
        ]
    )
    server.wait_log(f"all {workers} workers ready", timeout=20)
    return server


def test_https_keep_alive_big_bodies_and_scheme(launcher: Launcher, cert: Cert) -> None:
    server = start(launcher, cert)
    port = tls_port(server)
    with client(cert, port) as s:
        assert s.version() in ("TLSv1.2", "TLSv1.3")
        buf = bytearray()
        pids = set()
        for _ in range(3):
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            head, body = read_response(s, buf)
            assert head.startswith(b"HTTP/1.1 200 ")
            info = json.loads(body)
            assert (info["scheme"], info["https"]) == ("https", "on")
            pids.add(info["pid"])
        assert len(pids) == 1  # one connection, kept alive
        payload = os.urandom(1 << 20)
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
            % len(payload)
            + payload
        )
        head, body = read_response(s, buf)
        assert json.loads(body)["body"] == len(payload)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head, body = read_response(s, buf)
        assert body == b"x" * (4 << 20)
        s.sendall(b"GET /file HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head, body = read_response(s, buf)
        with open(APP, "rb") as f:
            assert body == f.read()


def test_stalled_handshakes_do_not_pin_the_only_worker(
    launcher: Launcher, cert: Cert
) -> None:
    server = start(launcher, cert, "--read-timeout", "2")
    port = tls_port(server)
    stalled = []
    try:
        for i in range(20):
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i % 2:
                raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # partial
            stalled.append(raw)
        start_at = time.monotonic()
        with client(cert, port) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            head, _ = read_response(s, bytearray())
        assert head.startswith(b"HTTP/1.1 200 ")
        assert time.monotonic() - start_at < 1.0
        # The stalled handshakes are closed at --read-timeout, without a word.
        stalled[0].settimeout(5)
        assert stalled[0].recv(100) == b""
    finally:
        for raw in stalled:
            raw.close()


def test_plain_http_on_a_tls_port_is_refused_harmlessly(
    launcher: Launcher, cert: Cert
) -> None:
    server = start(launcher, cert)
    port = tls_port(server)
    (worker,) = server.workers()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        try:
            data = raw.recv(100)
        except ConnectionResetError:
            data = b""
        assert not data.startswith(b"HTTP/1.1 200")
    with client(cert, port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert read_response(s, bytearray())[0].startswith(b"HTTP/1.1 200 ")
    assert server.workers() == {worker}


def test_enable_ssl_covers_an_inherited_tcp_socket(
    launcher: Launcher, cert: Cert
) -> None:
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    try:
        server = launcher.run(
            [
                "--workers",
                "1",
                "--enable-ssl",
                "--ssl-cert",
                cert.cert,
                "--ssl-key",
                cert.key,
                APP,
            ],
            env={"SERVER_STARTER_PORT": f"127.0.0.1:{port}={lsock.fileno()}"},
            pass_fds=[lsock.fileno()],
        )
    finally:
        lsock.close()
    server.wait_log("all 1 workers ready", timeout=20)
    with client(cert, port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        _, body = read_response(s, bytearray())
    assert json.loads(body)["scheme"] == "https"


def test_a_bad_key_is_a_clear_start_up_error(launcher: Launcher, cert: Cert) -> None:
    server = launcher.run(
        [
            "--listen",
            "127.0.0.1:0:ssl",
            "--ssl-cert",
            cert.cert,
            "--ssl-key",
            APP,  # not a key
            APP,
        ]
    )
    assert server.proc.wait(timeout=20) == 2  # a configuration error
    log = server.log()
    assert "cannot load the TLS certificate/key" in log
    assert "Traceback" not in log

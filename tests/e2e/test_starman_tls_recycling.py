"""A TLS connection cannot move (its session lives in the worker): at --max-requests its
last answer says ``Connection: close`` as before, while plain connections move."""

from __future__ import annotations

import json

from tests.e2e.test_starman_tls import (
    Cert,
    cert,
    client,
    pytestmark,
    read_response,
    start,
    tls_port,
)
from tests.harness.starman_program import Launcher, launcher

__all__ = ["cert", "launcher", "pytestmark"]


def test_a_tls_connection_at_the_limit_is_answered_with_close(
    launcher: Launcher, cert: Cert
) -> None:
    server = start(launcher, cert, "--max-requests", "3")
    port = tls_port(server)
    with client(cert, port) as s:
        buf = bytearray()
        heads = []
        for _ in range(3):
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            head, body = read_response(s, buf)
            heads.append(head.lower())
            json.loads(body)
        assert [b"connection: close" in h for h in heads] == [False, False, True]
        assert s.recv(10) == b""

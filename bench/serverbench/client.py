"""Raw HTTP clients of the bench: one request (is the server ready?) and the conns-served probe."""

from __future__ import annotations

import errno
import re
import selectors
import socket
import time
from typing import Any

from .places import HOST


def http_once(
    port: int, method: str = "GET", body: bytes = b"", timeout: float = 2.0
) -> tuple[int, bytes] | None:
    """One request on a fresh connection: (status, body), or None on any failure."""
    head = (
        f"{method} / HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
        if method != "GET"
        else f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
    )
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(head.encode() + body)
            while time.monotonic() < deadline:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
                end = _response_end(buf)
                if end is not None and len(buf) >= end:
                    break
    except OSError:
        return None
    end = _response_end(buf)
    m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
    if m is None or end is None:
        return None
    return int(m.group(1)), buf[buf.index(b"\r\n\r\n") + 4 : end]


_CL_RE = re.compile(rb"(?im)^content-length:[ \t]*(\d+)[ \t]*\r?$")


def _response_end(buf: bytes) -> int | None:
    """Offset just past the first response in buf if its head is complete (CL framing)."""
    h = buf.find(b"\r\n\r\n")
    if h < 0:
        return None
    m = _CL_RE.search(buf, 0, h + 2)
    return h + 4 + int(m.group(1)) if m else len(buf)


_REQ = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class _Conn:
    """One closed-loop keep-alive client slot (reconnects when the server closes)."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.buf = b""
        self.answered = 0
        self.reconnects = 0
        self.asked_at = 0.0
        self.first_ms: float | None = None


def served_probe(port: int, conns: int, seconds: float) -> dict[str, Any]:
    """How many of ``conns`` keep-alive connections get at least one answer in ``seconds``.

    wrk says nothing about a connection that never gets answered, so a server that keeps
    one connection per worker busy looks error-free while the other connections starve.
    """
    sel = selectors.DefaultSelector()
    slots = [_Conn() for _ in range(conns)]

    def drop(c: _Conn) -> None:
        if c.sock is not None:
            sel.unregister(c.sock)
            c.sock.close()
            c.sock = None

    def connect(c: _Conn) -> None:
        drop(c)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        if s.connect_ex((HOST, port)) not in (0, errno.EINPROGRESS):
            s.close()
            return
        c.sock, c.buf = s, b""
        sel.register(s, selectors.EVENT_WRITE, c)

    def ask(c: _Conn) -> bool:
        assert c.sock is not None
        try:
            c.sock.send(_REQ)  # 37 bytes: always fits an empty send buffer
        except OSError:
            return False
        if not c.asked_at:
            c.asked_at = time.monotonic()
        sel.modify(c.sock, selectors.EVENT_READ, c)
        return True

    deadline = time.monotonic() + seconds
    for c in slots:
        connect(c)
    try:
        while time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.05):
                c = key.data
                assert isinstance(c, _Conn) and c.sock is not None
                if key.events & selectors.EVENT_WRITE:
                    if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or not ask(
                        c
                    ):
                        c.reconnects += 1
                        connect(c)
                    continue
                try:
                    data = c.sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    c.reconnects += 1
                    connect(c)
                    continue
                c.buf += data
                end = _response_end(c.buf)
                if end is None or len(c.buf) < end:
                    continue
                head = c.buf[: c.buf.index(b"\r\n\r\n")].lower()
                c.answered += 1
                if c.first_ms is None:
                    c.first_ms = (time.monotonic() - c.asked_at) * 1e3
                c.buf = c.buf[end:]
                if b"\nconnection: close" in head or not ask(c):
                    c.reconnects += 1
                    connect(c)
    finally:
        for c in slots:
            drop(c)
        sel.close()
    firsts = [c.first_ms for c in slots if c.first_ms is not None]
    return {
        "connections": conns,
        "seconds": seconds,
        "served": sum(1 for c in slots if c.answered),
        "responses": sum(c.answered for c in slots),
        "reconnects": sum(c.reconnects for c in slots),
        "max_first_response_ms": max(firsts) if firsts else None,
    }

"""Raw HTTP over a socket for the tests: send bytes, read until the peer closes."""

from __future__ import annotations

import socket


def http_request(
    address: str | tuple[str, int],
    raw: bytes,
    timeout: float = 5.0,
) -> bytes:
    """Send raw bytes to a unix path or (host, port), read until the peer closes."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    if isinstance(address, tuple) and ":" in address[0]:
        family = socket.AF_INET6
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(address)
        s.sendall(raw)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def http_get(
    address: str | tuple[str, int], path: str = "/", timeout: float = 5.0
) -> bytes:
    """GET ``path`` with ``Connection: close``; return the whole raw response."""
    req = f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode()
    return http_request(address, req, timeout=timeout)


def response_body(raw: bytes) -> bytes:
    """The bytes after the head of a raw (non-chunked) response."""
    return raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""

"""Every limit, set through the starman command line, enforced by a live server.

--limit-request-line (414), --limit-request-fields and --limit-request-field-size (431),
the 64 KiB head cap (431), --max-request-body (413, declared and chunked),
--read-timeout (408 for a stalled head), --body-timeout (408 for a stalled body),
--write-timeout (a client that stops reading is dropped, the worker serves others
meanwhile) and --max-connections-per-worker (at the cap, a connection holding no request
makes room for a new one; requests in progress are never dropped, and a connection over
the cap then waits in the kernel queue, it is never refused). Each answer closes the
connection.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator

import psutil
import pytest

from tests.harness.process import FIXTURES, wait_for
from tests.harness.starman_program import Launcher, Server

APP = os.path.join(FIXTURES, "apps", "fault_app.py")
OPTIONS = [
    "--limit-request-line",
    "100",
    "--limit-request-fields",
    "5",
    "--limit-request-field-size",
    "64",
    "--max-request-body",
    "10",
    "--read-timeout",
    "0.6",
    "--body-timeout",
    "0.6",
    "--write-timeout",
    "0.6",
    "--max-connections-per-worker",
    "4",
    "--keepalive-timeout",
    "5",
]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    tmp = tempfile.mkdtemp(prefix="lm", dir="/tmp")
    launch = Launcher(tmp)
    try:
        yield launch.inherited(*OPTIONS, APP, workers=1)
    finally:
        launch.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _connections(pid: int, path: str) -> int:
    """Accepted connections the worker holds on ``path`` (its listener not counted)."""
    conns = psutil.Process(pid).net_connections("unix")
    return sum(1 for c in conns if str(c.laddr) == path) - 1


def connect(server: Server) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    assert isinstance(server.address, str)
    s.connect(server.address)
    return s


def until_close(s: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def status_of(server: Server, raw: bytes) -> bytes:
    with connect(server) as s:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = until_close(s)
    assert b"Connection: close\r\n" in data, data
    return data.split(b"\r\n", 1)[0]


H = b"Host: a\r\n"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n" + H + b"\r\n", b"414"),
        (b"GET / HTTP/1.1\r\n" + H + b"X: 1\r\n" * 5 + b"\r\n", b"431"),
        (b"GET / HTTP/1.1\r\n" + H + b"X: " + b"a" * 70 + b"\r\n\r\n", b"431"),
        (b"GET / HTTP/1.1\r\n" + H + (b"X: " + b"a" * 40 + b"\r\n") * 2000, b"431"),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 11\r\n\r\n", b"413"),
        (
            b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
            b"6\r\nabcdef\r\n6\r\nabcdef\r\n0\r\n\r\n",
            b"413",
        ),
    ],
    ids=["line", "fields", "field-size", "head-size", "body-declared", "body-chunked"],
)
def test_limit_gets_its_status_and_closes(
    server: Server, raw: bytes, status: bytes
) -> None:
    assert status_of(server, raw).startswith(b"HTTP/1.1 " + status)


def test_within_the_limits_is_served(server: Server) -> None:
    raw = b"POST / HTTP/1.1\r\n" + H + b"X: 1\r\nContent-Length: 10\r\n"
    raw += b"Connection: close\r\n\r\n0123456789"
    assert status_of(server, raw) == b"HTTP/1.1 200 OK"


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nHo",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nab",
    ],
    ids=["head", "body"],
)
def test_stalled_request_gets_408_after_its_timeout(server: Server, raw: bytes) -> None:
    with connect(server) as s:
        start = time.monotonic()
        s.sendall(raw)
        data = until_close(s)
        took = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert 0.4 <= took < 3.0, took


def test_client_that_stops_reading_is_dropped_after_the_write_timeout(
    server: Server,
) -> None:
    with connect(server) as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(b"GET /big HTTP/1.1\r\n" + H + b"\r\n")
        # Meanwhile the (single) worker answers someone else at once.
        raw = b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
        start = time.monotonic()
        assert status_of(server, raw) == b"HTTP/1.1 200 OK"
        assert time.monotonic() - start < 1.0
        # Then the stalled reader is cut off (the worker closes its end): reading now
        # ends well short of 4 MiB.
        (worker,) = server.workers()
        assert isinstance(server.address, str)
        path = server.address
        wait_for(lambda: _connections(worker, path) == 0, timeout=5)
        got = len(until_close(slow))
    assert got < 4 << 20, got


def test_connections_over_the_cap_wait_and_are_not_refused(server: Server) -> None:
    # The worker's cap is 4; requests in progress (bodies half sent) are never evicted.
    held = [connect(server) for _ in range(4)]
    try:
        for s in held:
            s.sendall(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 4\r\n\r\nab")
        (worker,) = server.workers()
        assert isinstance(server.address, str)
        path = server.address
        wait_for(lambda: _connections(worker, path) == 4, timeout=5)
        extra = connect(server)  # accepted by the kernel, not yet by the worker
        extra.sendall(b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
        extra.settimeout(0.3)
        with pytest.raises(socket.timeout):
            extra.recv(1000)
        held[0].sendall(b"cd")  # one request completes...
        assert held[0].recv(1000).startswith(b"HTTP/1.1 200")
        held.pop(0).close()  # ...its slot frees up: the waiting connection is served
        extra.settimeout(5)
        assert until_close(extra).startswith(b"HTTP/1.1 200")
        extra.close()
        for s in held:  # the other requests in progress were kept
            s.sendall(b"cd")
            assert s.recv(1000).startswith(b"HTTP/1.1 200")
    finally:
        for s in held:
            s.close()
    wait_for(lambda: status_of(server, b"GET / HTTP/1.0\r\n\r\n") == b"HTTP/1.1 200 OK")


def test_at_the_cap_an_idle_connection_makes_room(server: Server) -> None:
    idle = [connect(server) for _ in range(4)]  # silent connections fill the cap
    try:
        start = time.monotonic()
        raw = b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
        assert status_of(server, raw) == b"HTTP/1.1 200 OK"
        assert time.monotonic() - start < 1.0
        idle[0].settimeout(5)
        assert until_close(idle[0]) == b""  # the longest-waiting one was dropped
    finally:
        for s in idle:
            s.close()

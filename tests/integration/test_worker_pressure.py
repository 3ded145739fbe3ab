"""A worker under resource pressure: out of descriptors (EMFILE), and at its connection cap.

EMFILE: the forked worker runs with RLIMIT_NOFILE lowered to leave room for 4 connections.
With 12 clients connected, accept() fails; the worker must back off instead of spinning on
the still-readable listener (CPU stays low), keep serving the connections it has, log once,
and accept the waiting clients as descriptors free up.

The cap: at --max-connections-per-worker, a new client evicts the longest-waiting
connection that holds no request (idle keep-alive, or a head still incomplete: what a
slowloris holds). Connections with a request in progress are never evicted; then the new
client waits in the kernel queue until one finishes.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from collections.abc import Iterable
from typing import Any

import psutil

from tests.harness.forked_worker import (
    connect,
    forked_worker,
    make_config,
    read_one,
    recv_all,
)
from tests.harness.process import wait_for

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def low_fd_app() -> Any:
    """Runs in the forked worker before run_worker: room for about 4 connections."""
    in_use = len(os.listdir("/proc/self/fd"))
    limit = in_use + 3 + 4  # run_worker adds epoll and the signal socketpair
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return hello


def cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def test_emfile_backs_off_keeps_serving_and_recovers() -> None:
    config = make_config(keepalive_timeout=30.0, read_timeout=30.0)
    with forked_worker(low_fd_app, config, factory=True) as w:
        clients = [connect(w.address) for _ in range(12)]
        try:
            # The first few are accepted and served; the rest wait in the backlog.
            clients[0].sendall(GET)
            assert read_one(clients[0])[0] == b"HTTP/1.1 200 OK"
            before = cpu_seconds(w.pid)
            start = time.monotonic()
            # Over one second, an accept loop spinning on EMFILE would burn ~1 s of CPU.
            wait_for(lambda: time.monotonic() - start >= 1.0, timeout=5)
            spent = cpu_seconds(w.pid) - before
            assert spent < 0.3, spent
            # Connections already open keep being served meanwhile.
            clients[0].sendall(GET)
            assert read_one(clients[0])[0] == b"HTTP/1.1 200 OK"
            # Free descriptors: the waiting clients get in, each one served.
            for c in clients[:4]:
                c.close()
            for c in clients[4:8]:
                c.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                assert recv_all(c).startswith(b"HTTP/1.1 200 OK")
            assert w.alive()
        finally:
            for c in clients:
                c.close()


def test_at_the_cap_a_new_client_evicts_the_longest_idle_connection() -> None:
    config = make_config(
        max_connections_per_worker=4, read_timeout=30.0, keepalive_timeout=30.0
    )
    with forked_worker(hello, config) as w:
        idle = [connect(w.address) for _ in range(4)]  # silent: heads never come
        try:
            for c in idle[2:]:
                c.sendall(GET)  # these two become idle keep-alive connections
                assert read_one(c)[0] == b"HTTP/1.1 200 OK"
            start = time.monotonic()
            with connect(w.address) as fresh:
                fresh.sendall(GET)
                assert read_one(fresh)[0] == b"HTTP/1.1 200 OK"
            assert time.monotonic() - start < 0.5
            # The oldest one (connected first, never sent a byte) was closed, silently.
            idle[0].settimeout(5)
            assert idle[0].recv(10) == b""
        finally:
            for c in idle:
                c.close()


def test_at_the_cap_requests_in_progress_are_never_evicted() -> None:
    config = make_config(
        max_connections_per_worker=3, read_timeout=30.0, body_timeout=30.0
    )
    with forked_worker(hello, config) as w:
        busy = [connect(w.address) for _ in range(3)]
        try:
            for c in busy:  # bodies half sent: requests in progress
                c.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
            wait_for(lambda: _open_connections(w.pid) == 3, timeout=5)
            waiting = connect(w.address)
            waiting.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            waiting.settimeout(0.3)
            try:
                waiting.recv(10)
                raise AssertionError("served over the cap")
            except socket.timeout:
                pass
            busy[0].sendall(b"cd")  # one finishes...
            assert read_one(busy[0])[0] == b"HTTP/1.1 200 OK"
            busy[0].close()
            waiting.settimeout(5)  # ...and the waiting client gets its slot
            assert recv_all(waiting).startswith(b"HTTP/1.1 200 OK")
            waiting.close()
            for c in busy[1:]:  # the others were kept: they complete
                c.sendall(b"cd")
                assert read_one(c)[0] == b"HTTP/1.1 200 OK"
        finally:
            for c in busy:
                c.close()


def _open_connections(pid: int) -> int:
    return (
        sum(
            1
            for c in psutil.Process(pid).net_connections("unix")
            if str(c.laddr).endswith("/s")
        )
        - 1
    )

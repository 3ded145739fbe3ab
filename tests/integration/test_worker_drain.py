"""Graceful drain and many slow/idle connections against one forked worker."""

from __future__ import annotations

import signal
import socket
import time

from tests.fixtures.apps.engine_apps import echo_app
from tests.harness.forked_worker import (
    connect,
    forked_worker,
    make_config,
    read_one,
    recv_all,
)

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def test_worker_term_during_slow_request_completes_it() -> None:
    cfg = make_config(graceful_timeout=10, keepalive_timeout=5)
    with forked_worker(echo_app, cfg) as w:
        with connect(w.address) as idle:
            idle.sendall(GET)
            read_one(idle)  # now an idle keep-alive connection
            with connect(w.address) as s:
                s.sendall(b"GET /slow?1 HTTP/1.1\r\nHost: a\r\n\r\n")
                time.sleep(0.3)  # let the worker enter the app (not synchronisation)
                w.signal(signal.SIGTERM)
                status, headers, body = read_one(s)
                assert status == b"HTTP/1.1 200 OK" and body == b"slow done"
                assert headers["connection"] == "close"
            # the idle keep-alive connection may send one more request: answered with close
            idle.sendall(GET)
            status, headers, _ = read_one(idle)
            assert status == b"HTTP/1.1 200 OK"
            assert headers["connection"] == "close"
        assert w.wait(5) == 0
        # listeners were closed at once: nobody accepts any more
        try:
            with connect(w.address, timeout=1) as late:
                late.sendall(GET)
                assert recv_all(late) == b""
        except (ConnectionRefusedError, ConnectionResetError, FileNotFoundError):
            pass


def test_worker_int_exits_at_once() -> None:
    with forked_worker(echo_app, make_config()) as w:
        with connect(w.address) as s:
            s.sendall(GET)
            read_one(s)
            w.signal(signal.SIGINT)
            assert w.wait(2) == 0


def test_worker_exits_when_parent_changes() -> None:
    with forked_worker(echo_app, make_config(parent_pid=1)) as w:
        assert w.wait(5) == 0


def test_worker_400_slow_and_idle_connections_do_not_delay_a_request() -> None:
    cfg = make_config(
        read_timeout=30, keepalive_timeout=30, max_connections_per_worker=1000
    )
    with forked_worker(echo_app, cfg) as w:
        held: list[socket.socket] = []
        try:
            for _ in range(200):
                s = connect(w.address)
                s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
                held.append(s)
            for _ in range(200):
                s = connect(w.address)
                s.sendall(GET)
                read_one(s)
                held.append(s)
            started = time.monotonic()
            with connect(w.address) as s:
                s.sendall(GET)
                status, _, _ = read_one(s)
            latency = time.monotonic() - started
            print(
                f"\n400 held connections: request answered in {latency * 1000:.1f} ms"
            )
            assert status == b"HTTP/1.1 200 OK"
            assert latency < 2.0
        finally:
            for s in held:
                s.close()

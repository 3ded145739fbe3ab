"""Seamless recycling: a worker that leaves while the pool serves on (--max-requests,
--max-worker-lifetime, SIGHUP or SIGTTOU to the master) hands its keep-alive connections
over to a live worker; the client never sees a close (docs/architecture.md §2)."""

from __future__ import annotations

import signal
import socket
import threading
import time

from tests.harness.process import wait_for
from tests.harness.starman_program import (
    APP,
    Launcher,
    Server,
    launcher,
    listening_address,
)

__all__ = ["launcher"]


def _get(sock: socket.socket) -> tuple[bytes, str]:
    """One keep-alive GET: (head, body); fails if the server closes the connection."""
    sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed the connection after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, "the server closed the connection inside a response"
        body += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"connection: close" not in head.lower(), head
    return head, body.decode()


def _pid(sock: socket.socket) -> int:
    return int(_get(sock)[1].split(":")[0])


def _connect(
    server: Server, address: str | tuple[str, int] | None = None
) -> socket.socket:
    target = server.address if address is None else address
    family = socket.AF_UNIX if isinstance(target, str) else socket.AF_INET
    sock = socket.socket(family)
    sock.settimeout(10)
    sock.connect(target)
    return sock


def test_max_requests_moves_the_connection_instead_of_closing_it(
    launcher: Launcher,
) -> None:
    server = launcher.inherited(APP, "--max-requests", "200", workers=2)
    with _connect(server) as sock:
        pids = [_pid(sock) for _ in range(1500)]
    # One connection, 1,500 requests, limit 200: it went through several workers.
    assert len(set(pids)) >= 4, sorted(set(pids))
    assert "cannot hand" not in server.log()


def test_max_requests_moves_a_tcp_connection_too(launcher: Launcher) -> None:
    server = launcher.run(
        ["--listen", "127.0.0.1:0", "--workers", "2", "--max-requests", "50", APP]
    )
    address = listening_address(server, r"127\.0\.0\.1")
    server.wait_log("all 2 workers ready")
    with _connect(server, address) as sock:
        pids = {_pid(sock) for _ in range(300)}
    assert len(pids) >= 3, pids


def test_max_requests_limit_answer_keeps_the_connection(launcher: Launcher) -> None:
    # The limiting response is a normal keep-alive one; the next request on the same
    # connection is answered by the replacement.
    server = launcher.inherited(APP, "--max-requests", "3", workers=1)
    with _connect(server) as sock:
        first = [_pid(sock) for _ in range(3)]
        assert len(set(first)) == 1
        after = wait_for(lambda: (p := _pid(sock)) != first[0] and p, timeout=10)
    assert after != first[0]


def _pids_until(sock: socket.socket, done: object, limit: float = 15.0) -> set[int]:
    """Requests on ``sock`` until ``done()`` holds (bounded): the pids that answered."""
    pids: set[int] = set()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        pids.add(_pid(sock))
        if done():  # type: ignore[operator]
            return pids
    raise AssertionError(f"not done after {limit}s; pids {pids}")


def test_hup_to_the_master_moves_connections_to_the_new_generation(
    launcher: Launcher,
) -> None:
    server = launcher.inherited(APP, workers=2)
    socks = [_connect(server) for _ in range(4)]
    try:
        old = {_pid(s) for s in socks}
        server.signal(signal.SIGHUP)
        server.wait_log("generation 2 ready")
        for sock in socks:
            _pids_until(sock, lambda: not (old & server.workers()))
        new = {_pid(s) for s in socks}
    finally:
        for sock in socks:
            sock.close()
    assert new and not (new & old), (old, new)
    assert "cannot hand" not in server.log()


def test_ttou_to_the_master_moves_the_retired_workers_connections(
    launcher: Launcher,
) -> None:
    server = launcher.inherited(APP, workers=3)
    socks = [_connect(server) for _ in range(6)]
    try:
        before = server.workers()
        for sock in socks:
            _pid(sock)
        server.signal(signal.SIGTTOU)
        wait_for(lambda: len(server.workers()) == 2, timeout=10)
        after = server.workers()
        answered = {_pid(s) for s in socks}
    finally:
        for sock in socks:
            sock.close()
    assert answered <= after < before, (answered, after, before)


def test_max_worker_lifetime_moves_the_connection(launcher: Launcher) -> None:
    server = launcher.inherited(
        APP, "--max-requests", "0", "--max-worker-lifetime", "1", workers=2
    )
    with _connect(server) as sock:
        first = server.workers()
        pids = _pids_until(sock, lambda: not (first & server.workers()))
        pids |= {_pid(sock) for _ in range(20)}
    assert len(pids) >= 2, pids


def test_a_stop_still_closes_the_connections(launcher: Launcher) -> None:
    # A whole pool leaving (TERM to the master, as start_server's switch of generation
    # does) has nobody to hand over to: idle connections close, as before.
    server = launcher.inherited(APP, workers=2)
    with _connect(server) as sock:
        _pid(sock)
        server.signal(signal.SIGTERM)
        assert sock.recv(4096) == b""
    assert server.proc.wait(timeout=10) == 0


def test_max_worker_memory_recycles_and_moves_the_connection(
    launcher: Launcher,
) -> None:
    # 1 MB of private memory: every worker is past it within its first second.
    server = launcher.inherited(
        APP, "--max-requests", "0", "--max-worker-memory", "1", workers=2
    )
    with _connect(server) as sock:
        first = server.workers()
        pids = _pids_until(sock, lambda: not (first & server.workers()))
    assert len(pids) >= 2, pids
    assert "past --max-worker-memory" in server.log()


def test_many_keepalive_clients_through_many_recycles_see_no_close(
    launcher: Launcher,
) -> None:
    server = launcher.inherited(APP, "--max-requests", "100", workers=2)
    failures: list[str] = []
    pids: set[int] = set()
    lock = threading.Lock()

    def client() -> None:
        try:
            with _connect(server) as sock:
                mine = {_pid(sock) for _ in range(300)}
            with lock:
                pids.update(mine)
        except (AssertionError, OSError) as exc:
            with lock:
                failures.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures[:3]
    assert len(pids) >= 10, pids  # 3,000 requests at 100 per worker

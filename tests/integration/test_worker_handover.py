"""The handover of an idle connection between two workers (starman.worker.handover),
driven in-process: a retiring worker sends it, a live one adopts it and serves its next
request; a move that fails closes that connection only and logs one line."""

from __future__ import annotations

import logging
import os
import resource
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from starman.worker.config import in_process_config
from starman.worker.connection import ConnState
from starman.worker.handover import Handover, handover_pair, receive, send
from starman.worker.loop import Worker

REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def _answer(client: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"ok"):
        chunk = client.recv(4096)
        assert chunk, data
        data += chunk
    return data


_OPEN: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_the_pairs() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _pair_for_two() -> tuple[Handover, Handover]:
    """Each worker's own copies of the master's two ends (as after a fork)."""
    pair = handover_pair()
    mine = Handover(pair.inbox.dup(), pair.outbox.dup())
    _OPEN.extend((pair.inbox, pair.outbox, mine.inbox, mine.outbox))
    return mine, pair


def test_an_idle_connection_moves_and_its_next_request_is_served_there() -> None:
    mine, theirs = _pair_for_two()
    old = Worker([], app, in_process_config(), None, mine)
    new = Worker([], app, in_process_config(), None, theirs)
    a, client = socket.socketpair()
    client.settimeout(5)
    with client:
        conn = old.adopt(a)
        client.sendall(REQUEST)
        old.serve_input(conn, time.monotonic())
        answer = _answer(client)
        assert b"connection: close" not in answer.lower()
        assert conn.state is ConnState.IDLE
        old.start_drain(time.monotonic(), True)  # retiring: the idle connection moves
        assert conn.state is ConnState.CLOSED and not old.conns
        assert theirs.inbox.fileno() in new.listeners
        new.take_moved(theirs.inbox, time.monotonic())
        (moved,) = new.conns.values()
        assert moved.nreq == 1 and moved.unix
        client.sendall(REQUEST)
        new.serve_input(moved, time.monotonic())
        assert _answer(client).startswith(b"HTTP/1.1 200")
        new.release()
        old.release()


def test_a_request_in_progress_finishes_then_moves() -> None:
    mine, theirs = _pair_for_two()
    old = Worker([], app, in_process_config(), None, mine)
    a, client = socket.socketpair()
    client.settimeout(5)
    with client:
        conn = old.adopt(a)
        client.sendall(REQUEST[:10])
        old.serve_input(conn, time.monotonic())
        old.start_drain(time.monotonic(), True)
        assert conn.state is ConnState.READ_HEAD  # half a head: it stays for now
        client.sendall(REQUEST[10:])
        old.serve_input(conn, time.monotonic())
        answer = _answer(client)
        assert b"connection: close" not in answer.lower()
        assert conn.state is ConnState.CLOSED  # answered, then moved
        got = receive(theirs.inbox)
        assert got is not None
        got[0].close()
        assert got[1] == 1
        old.release()


def test_a_failed_move_closes_that_connection_only_and_logs_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mine, theirs = _pair_for_two()
    theirs.inbox.close()
    mine.inbox.close()  # nobody can ever receive: the send is refused
    old = Worker([], app, in_process_config(), None, mine)
    a, client = socket.socketpair()
    client.settimeout(5)
    with client, caplog.at_level(logging.WARNING, logger="starman.worker"):
        conn = old.adopt(a)
        client.sendall(REQUEST)
        old.serve_input(conn, time.monotonic())
        _answer(client)
        old.start_drain(time.monotonic(), True)
        assert conn.state is ConnState.CLOSED
        assert client.recv(10) == b""
    lines = [r for r in caplog.records if "hand a connection over" in r.getMessage()]
    assert len(lines) == 1
    old.release()


def test_a_drain_without_handover_closes_idle_connections_as_before() -> None:
    mine, theirs = _pair_for_two()
    old = Worker([], app, in_process_config(), None, mine)
    a, client = socket.socketpair()
    with client:
        conn = old.adopt(a)
        client.sendall(REQUEST)
        old.serve_input(conn, time.monotonic())
        old.start_drain(time.monotonic())  # a stop: nothing moves
        assert conn.state is ConnState.IDLE
        assert receive(theirs.inbox) is None
        old.release()


def test_a_moved_descriptor_that_does_not_fit_is_lost_with_an_error() -> None:
    # The receiver at its descriptor limit: the kernel drops the descriptor, and
    # receive says so (the caller logs one line and serves on).
    pair = handover_pair()
    _OPEN.extend((pair.inbox, pair.outbox))
    a, b = socket.socketpair()
    send(pair.outbox, a, 3)
    a.close()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports by its exit code
        code = 1
        try:
            lowest_free = os.dup(0)  # no descriptor below it is free
            os.close(lowest_free)
            limit = (lowest_free, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            try:
                receive(pair.inbox)
            except OSError:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    b.settimeout(5)
    assert b.recv(10) == b""  # the connection closed with the lost descriptor
    b.close()


def test_moves_that_find_the_queue_full_wait_and_go_when_there_is_room() -> None:
    mine, theirs = _pair_for_two()
    # A socketpair's queue is bounded by the sender's buffer: make it the smallest.
    mine.outbox.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
    old = Worker([], app, in_process_config(), None, mine)
    clients = []
    conns = []
    for _ in range(40):  # more than that buffer holds
        a, client = socket.socketpair()
        clients.append(client)
        conns.append(old.adopt(a))
    try:
        old.start_drain(time.monotonic(), True)
        assert old.moving, "the queue never filled"
        taken = []
        deadline = time.monotonic() + 10
        while old.conns and time.monotonic() < deadline:
            got = receive(theirs.inbox)
            if got is not None:
                taken.append(got[0])
            old.retry_moves()
        assert not old.conns and not old.moving
        while (got := receive(theirs.inbox)) is not None:
            taken.append(got[0])
        assert len(taken) == 40
        for sock in taken:
            sock.close()
    finally:
        for client in clients:
            client.close()
        old.release()

"""Corking: whole answers of one epoll batch are held and sent back to back.

A gate request holds the worker inside the app while twenty more requests arrive on other
connections, so they all come out of one epoll wait (more than CORK_MAX of them). Every
connection must get its own answer, complete, and keep-alive must go on; a client that
resets its connection while its answer is held must not disturb the others; and a worker
that reaches --max-requests inside such a batch must still deliver every held answer.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import struct
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from starman.worker.dispatch import CORK_MAX
from tests.harness.forked_worker import connect, forked_worker, make_config, read_one
from tests.harness.process import wait_for

N = 20  # more than CORK_MAX: the batch is flushed at least twice


@pytest.fixture
def gate_dir() -> Iterator[pathlib.Path]:
    with tempfile.TemporaryDirectory(prefix="cork-") as d:
        yield pathlib.Path(d)


@pytest.fixture
def closing() -> Iterator[contextlib.ExitStack]:
    """Every client socket a test opens is closed at its end."""
    with contextlib.ExitStack() as stack:
        yield stack


def gated_app(gate: pathlib.Path) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/gate":
            (gate / "inside").touch()
            deadline = time.monotonic() + 10.0
            while not (gate / "open").exists() and time.monotonic() < deadline:
                time.sleep(0.005)
        body = f"{path} {os.getpid()}".encode()
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode()


def one_batch(
    address: Any,
    gate: pathlib.Path,
    closing: contextlib.ExitStack,
    reset: int | None = None,
) -> tuple[socket.socket, list[socket.socket]]:
    """Hold the worker in /gate, send N requests, then open the gate.

    Every connection is first accepted and served once (N + 1 requests), so the N
    requests all wait on accepted connections, not in the listen queue.
    """
    gate_conn = closing.enter_context(connect(address))
    conns = [closing.enter_context(connect(address)) for _ in range(N)]
    for c in [gate_conn, *conns]:
        c.sendall(get("/warm"))
        assert read_one(c)[2].split()[0] == b"/warm"
    gate_conn.sendall(get("/gate"))
    wait_for(lambda: (gate / "inside").exists(), 5.0)
    for i, c in enumerate(conns):
        c.sendall(get(f"/r{i}"))
    if reset is not None:
        conns[reset].setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        conns[reset].close()
    (gate / "open").touch()
    return gate_conn, conns


def test_cork_max_is_smaller_than_the_batch() -> None:
    assert CORK_MAX < N


def test_every_held_answer_reaches_its_own_connection(
    gate_dir: pathlib.Path, closing: contextlib.ExitStack
) -> None:
    config = make_config(keepalive_timeout=30.0)
    with forked_worker(gated_app(gate_dir), config, tcp=True) as w:
        gate_conn, conns = one_batch(w.address, gate_dir, closing)
        assert read_one(gate_conn)[2].startswith(b"/gate ")
        for i, c in enumerate(conns):
            status, headers, body = read_one(c)
            assert status == b"HTTP/1.1 200 OK"
            assert body.split()[0] == f"/r{i}".encode()
            assert headers.get("connection", "keep-alive") != "close"
        # Keep-alive goes on after a held answer.
        for i, c in enumerate(conns):
            c.sendall(get(f"/again{i}"))
        for i, c in enumerate(conns):
            assert read_one(c)[2].split()[0] == f"/again{i}".encode()


def test_a_reset_client_does_not_disturb_the_batch(
    gate_dir: pathlib.Path, closing: contextlib.ExitStack
) -> None:
    config = make_config(keepalive_timeout=30.0)
    with forked_worker(gated_app(gate_dir), config, tcp=True) as w:
        gate_conn, conns = one_batch(w.address, gate_dir, closing, reset=3)
        read_one(gate_conn)
        for i, c in enumerate(conns):
            if i != 3:
                assert read_one(c)[2].split()[0] == f"/r{i}".encode()
        fresh = closing.enter_context(connect(w.address))
        fresh.sendall(get("/after"))
        assert read_one(fresh)[2].split()[0] == b"/after"
        assert w.alive()


def test_max_requests_inside_a_batch_delivers_every_held_answer(
    gate_dir: pathlib.Path, closing: contextlib.ExitStack
) -> None:
    # N + 1 warm-up requests, the gate, then the batch: the limit falls inside the batch.
    config = make_config(
        keepalive_timeout=30.0, max_requests=N + 10, graceful_timeout=10.0
    )
    with forked_worker(gated_app(gate_dir), config, tcp=True) as w:
        gate_conn, conns = one_batch(w.address, gate_dir, closing)
        read_one(gate_conn)  # request N + 2
        kept: list[socket.socket] = []
        closed: list[socket.socket] = []
        for i, c in enumerate(conns):
            status, headers, body = read_one(c)
            assert status == b"HTTP/1.1 200 OK"
            assert body.split()[0] == f"/r{i}".encode()
            (closed if headers.get("connection") == "close" else kept).append(c)
        # Requests N+3..N+9 were answered before the limit; N+10 (the limit) and the
        # ones after it in the same batch carry Connection: close.
        assert (len(kept), len(closed)) == (7, 13)
        # A connection whose answer was held when the drain began is idle now: its
        # next request is still answered, with close.
        kept[0].sendall(get("/last"))
        status, headers, body = read_one(kept[0])
        assert body.split()[0] == b"/last"
        assert headers.get("connection") == "close"

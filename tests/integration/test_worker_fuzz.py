"""Socket-level fuzzing of a live worker: 300 generated, mutated and random inputs.

Inputs come from tests/fixtures/h1_fuzz.py (seeded), 50 connections at a time, each sent in
random pieces; half the clients then half-close, the rest go silent. Properties: every byte
the worker sends parses as HTTP/1.1 responses with spec statuses (or 200 from the app),
every connection is closed by the worker within its deadlines (no hang), the worker never
dies, and a normal request is served afterwards.
"""

from __future__ import annotations

import random
import selectors
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from tests.fixtures.h1_fuzz import ALLOWED_ERRORS, gen_input, split
from tests.harness.forked_worker import (
    ForkedWorker,
    connect,
    forked_worker,
    make_config,
    read_one,
)

CONFIG = make_config(
    read_timeout=0.5,
    body_timeout=0.5,
    keepalive_timeout=0.2,
    max_request_body=4096,
)
STATUSES = {100, 200, 408} | ALLOWED_ERRORS


def empty_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Length", "0")])
    return []


@pytest.fixture(scope="module")
def worker() -> Iterator[ForkedWorker]:
    with forked_worker(empty_app, CONFIG) as w:
        yield w


def statuses(raw: bytes) -> list[int]:
    """Statuses of a stream of responses; fails on anything that is not one."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep and head.startswith(b"HTTP/1.1 "), raw
        lines = head.split(b"\r\n")
        code = int(lines[0][9:12])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            assert name and value, raw
            if name.lower() == b"content-length":
                length = int(value)
        assert len(rest) >= length, raw
        out.append(code)
        raw = rest[length:]
    return out


def run_batch(address: str, inputs: list[tuple[list[bytes], bool]]) -> list[bytes]:
    """Send each input on its own connection; collect what comes back until each closes."""
    socks: list[socket.socket] = []
    received: dict[int, list[bytes]] = {}
    sel = selectors.DefaultSelector()
    try:
        for i, (pieces, half_close) in enumerate(inputs):
            s = connect(address)
            socks.append(s)
            received[i] = []
            for piece in pieces:
                try:
                    s.sendall(piece)
                except (BrokenPipeError, ConnectionResetError):
                    break  # refused early: the worker closed after its error response
            if half_close:
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, i)
        deadline = time.monotonic() + 10.0
        while sel.get_map():
            left = deadline - time.monotonic()
            assert left > 0, f"{len(sel.get_map())} connections never closed"
            for key, _ in sel.select(left):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    data = b""
                if data:
                    received[key.data].append(data)
                else:
                    sel.unregister(sock)
    finally:
        sel.close()
        for s in socks:
            s.close()
    return [b"".join(received[i]) for i in range(len(inputs))]


@pytest.mark.parametrize("seed", range(6))
def test_live_worker_survives_fuzzed_connections(
    worker: ForkedWorker, seed: int
) -> None:
    rng = random.Random(1000 + seed)
    inputs = []
    for _ in range(50):
        data, _ = gen_input(rng)
        inputs.append((split(rng, data), rng.random() < 0.5))
    address = worker.address
    assert isinstance(address, str)
    seen: set[int] = set()
    for raw in run_batch(address, inputs):
        codes = set(statuses(raw))
        assert codes <= STATUSES, raw
        seen |= codes
    assert 200 in seen and seen & ALLOWED_ERRORS, seen  # both kinds were exercised
    assert worker.alive()
    with connect(address) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_one(s)[0] == b"HTTP/1.1 200 OK"

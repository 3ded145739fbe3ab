"""In-process micro-benchmark of starman's per-request path (no network, no master).

Three levels, all against the hello app of bench/apps/hello_wsgi.py (copied here):

``engine``: one ``ServerConnection`` + ``request_environ`` + ``call_app`` driven with literal
keep-alive GET requests through a fake transport (pure CPU: parser, environ, response).

``worker``: the real worker's request path (``Worker.adopt`` + ``Worker.serve_input``: read,
serve, write, keep-alive) over one end of a ``socketpair``; the other end writes a request
and reads the answer, so the figure includes the recv/sendmsg syscalls of one request.

``close``: ``Worker.accept`` of a new TCP connection per request (``Connection: close``).

Times are CPU seconds of this process (``time.process_time``), so a busy machine
skews them less than wall time would.

Usage::

    .venv/bin/python bench/micro.py                 # every level, best of 5
    .venv/bin/python bench/micro.py --profile worker  # cProfile top entries
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import socket
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from starman.config import Settings  # noqa: E402
from starman.http.body import empty_input  # noqa: E402
from starman.http.events import PAUSED, Request  # noqa: E402
from starman.http.h1 import ServerConnection  # noqa: E402
from starman.wsgi.environ import (  # noqa: E402
    connection_environ,
    request_environ,
    server_environ,
)
from starman.wsgi.response import call_app  # noqa: E402

REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
)
DATE = b"Thu, 01 Jan 1970 00:00:00 GMT"
BODY = b"Hello World"


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """bench/apps/hello_wsgi.py's app."""
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]
    )
    return [BODY]


class _NullTransport:
    def __init__(self) -> None:
        self.nbytes = 0

    def write(self, parts: list[bytes], final: bool = False) -> None:
        for p in parts:
            self.nbytes += len(p)

    def sendfile(self, fd: int, offset: int, count: int) -> None:
        raise AssertionError("no files here")


def run_engine(n: int) -> float:
    """Seconds for ``n`` requests through h1 + WSGI glue."""
    settings = Settings()
    conn = ServerConnection(
        lambda: DATE,
        limit_request_line=settings.limit_request_line,
        limit_request_fields=settings.limit_request_fields,
        limit_request_field_size=settings.limit_request_field_size,
        max_body=settings.max_request_body,
    )
    senv = server_environ()
    cenv = connection_environ(
        senv, ("127.0.0.1", 8080), ("127.0.0.1", 40000), unix=False
    )
    transport = _NullTransport()
    t0 = time.process_time()
    for _ in range(n):
        conn.receive_data(REQUEST)
        req = conn.next_event()
        assert type(req) is Request
        conn.next_event()  # EndOfMessage
        assert conn.next_event() is PAUSED
        environ = request_environ(cenv, req, empty_input(), 0)
        call_app(app, environ, conn, transport)
        conn.start_next_cycle()
    return time.process_time() - t0


def run_worker(n: int) -> float:
    """Seconds for ``n`` requests through the worker's request path over a socketpair."""
    from starman.worker.config import in_process_config
    from starman.worker.connection import ConnState
    from starman.worker.loop import Worker

    a, b = socket.socketpair()
    worker = Worker([], app, in_process_config(), None)
    conn = worker.adopt(a)
    b.settimeout(5)
    b.sendall(REQUEST)  # warm the first one outside the timing
    _one(worker, conn, b, time.monotonic())
    t0 = time.process_time()
    for _ in range(n):
        b.send(REQUEST)
        _one(worker, conn, b, time.monotonic())
    dt = time.process_time() - t0
    assert conn.state is not ConnState.CLOSED
    worker.release()
    b.close()
    return dt


def run_close(n: int) -> float:
    """Seconds for ``n`` close-mode exchanges: connect, accept, one request, close."""
    from starman.worker.config import in_process_config
    from starman.worker.loop import Worker

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(128)
    addr = lsock.getsockname()
    worker = Worker([lsock], app, in_process_config(), None)
    worker.register_listeners()
    request = REQUEST.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    t0 = time.process_time()
    for _ in range(n):
        c = socket.create_connection(addr)
        c.sendall(request)
        now = time.monotonic()
        worker.accept(lsock, now)  # reads and answers at once (then closes)
        for conn in list(worker.conns.values()):
            worker.serve_input(conn, now)
        data = c.recv(65536)
        assert data.startswith(b"HTTP/1.1 200 OK"), data
        c.close()
    dt = time.process_time() - t0
    assert not worker.conns, worker.conns
    worker.release()
    lsock.close()
    return dt


def _one(worker: Any, conn: Any, peer: socket.socket, now: float) -> None:
    worker.serve_input(conn, now)
    data = peer.recv(65536)
    assert data.startswith(b"HTTP/1.1 200 OK"), data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", choices=("engine", "worker", "close"))
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument(
        "--level", choices=("engine", "worker", "close"), help="run only this level"
    )
    args = ap.parse_args()
    runners = {"engine": run_engine, "worker": run_worker, "close": run_close}
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        runners[args.profile](args.n)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)
        return
    for name, fn in runners.items():
        if args.level and name != args.level:
            continue
        fn(1000)  # warm-up
        best = min(fn(args.n) for _ in range(args.rounds))
        print(
            f"{name:7s} {best / args.n * 1e6:7.2f} us/request (best of {args.rounds})"
        )


if __name__ == "__main__":
    main()

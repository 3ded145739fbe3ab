"""The pre-fork rehearsal: the master serves a built-in app through the real request path
before it forks, so that every worker inherits that path's bytecode already specialised."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

from starman.worker.config import in_process_config
from starman.worker.connection import RECV_SIZE
from starman.worker.loop import Worker

__all__ = ["rehearse"]

log = logging.getLogger("starman.worker")

_REHEARSAL_BODY = b"rehearsal"
_REHEARSAL_REQUEST = (
    b"GET /rehearsal?x=1 HTTP/1.1\r\nHost: localhost\r\n"
    b"User-Agent: starman\r\nAccept: */*\r\n\r\n"
)


def _rehearsal_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(_REHEARSAL_BODY)))],
    )
    return [_REHEARSAL_BODY]


def rehearse(rounds: int = 64) -> int:
    """Serve ``rounds`` requests to a built-in app over a private socket pair, in the
    master before it forks: the request path's bytecode is then specialised once, and
    every worker inherits it warm instead of re-specialising (and so copying) it.

    Never calls the user's app. Returns the number of answers seen (0 if the socket pair
    could not be made: the workers then simply warm up themselves).
    """
    try:
        server_sock, client = socket.socketpair()
    except OSError:
        return 0
    worker: Worker | None = None
    answers = 0
    try:
        worker = Worker([], _rehearsal_app, in_process_config(), None)
        client.settimeout(1.0)
        conn = worker.adopt(server_sock)
        for i in range(rounds):
            client.sendall(_REHEARSAL_REQUEST)
            # Both ways out: odd rounds are held for the batch, even ones sent directly.
            worker.serve_input(conn, time.monotonic(), cork=bool(i & 1))
            if client.recv(RECV_SIZE).startswith(b"HTTP/1.1 200 "):
                answers += 1
    except Exception:  # only ever a bug of ours; the workers would meet it too
        log.exception("request-path rehearsal failed after %d answers", answers)
    finally:
        if worker is not None:
            worker.release()
        server_sock.close()
        client.close()
    return answers

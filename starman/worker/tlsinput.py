"""The TLS side of a worker's read path: the handshake, driven one step per readiness
event, and the reading of TLS records into the request path (starman.worker.dispatch).

Must not import ssl or starman.worker.tls at module level: they load only once a TLS
connection exists.
"""

from __future__ import annotations

import select
from typing import TYPE_CHECKING

from starman.worker.connection import (  # the members as globals
    CLOSED as _CLOSED,
    IDLE as _IDLE,
    LINGER as _LINGER,
    READ_BODY as _READ_BODY,
    READ_HEAD as _READ_HEAD,
    RECV_SIZE,
    TLS_HANDSHAKE as _TLS_HANDSHAKE,
    Connection,
)

if TYPE_CHECKING:
    import ssl

    from starman.worker.dispatch import Dispatcher

_IN = select.EPOLLIN


def tls_handshake(loop: Dispatcher, conn: Connection, now: float) -> None:
    """Drive a TLS handshake one step (under --read-timeout, set at accept)."""
    from starman.worker.tls import handshake_step

    sock: ssl.SSLSocket = conn.sock  # type: ignore[assignment]  # conn.tls: wrapped
    try:
        want = handshake_step(sock)
    except OSError:  # a failed handshake: no HTTP to answer with
        loop.close(conn)
        return
    if want:
        loop.set_mask(conn, want)
        return
    loop.goto(conn, _READ_HEAD)
    loop.set_mask(conn, _IN)
    if sock.pending():
        loop.on_readable(conn, now)


def on_readable_tls(loop: Dispatcher, conn: Connection, now: float) -> None:
    """TLS input: the handshake, then records; plaintext already decrypted inside
    the TLS object (``pending()``) raises no epoll event, so it is read in a loop."""
    from starman.worker import tls

    sock: ssl.SSLSocket = conn.sock  # type: ignore[assignment]  # conn.tls: wrapped
    while True:
        state = conn.state
        if state is _TLS_HANDSHAKE:
            tls_handshake(loop, conn, now)
            return
        if state is _LINGER:
            if conn.linger_read():
                loop.close(conn)
            return
        if state is not _READ_HEAD and state is not _READ_BODY and state is not _IDLE:
            return
        try:
            data = tls.recv(sock, RECV_SIZE)
        except OSError:
            loop.close(conn)
            return
        if data is None:
            return
        loop.on_data(conn, data, state, now)
        if not data or conn.state is _CLOSED or not sock.pending():
            return

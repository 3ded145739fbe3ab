"""The connections of one worker's epoll: registration and epoll masks, state moves,
deadlines, the ready queue and corked list, lingering close and close.

What a request does on a connection is starman.worker.dispatch; the loop is
starman.worker.loop. Both extend this class (a subclass, not a member: the request path
reaches these fields with one attribute read, no extra hop).
"""

from __future__ import annotations

import select
import socket
from collections import deque
from typing import Protocol

from starman.worker.admit import ConnectionFactory
from starman.worker.config import WorkerConfig
from starman.worker.connection import (  # the members as globals
    CLOSED as _CLOSED,
    IDLE as _IDLE,
    LINGER as _LINGER,
    LINGER_SECONDS,
    READ_HEAD as _READ_HEAD,
    TLS_HANDSHAKE as _TLS_HANDSHAKE,
    TRANSITIONS,
    Connection,
    ConnState,
    WriteControl,
)

_NEVER = float("inf")
_IN = select.EPOLLIN


class WorkerHooks(Protocol):
    """Callbacks into the master's bookkeeping (the scoreboard)."""

    def ready(self) -> None: ...
    def request_started(self) -> None: ...
    def request_finished(self) -> None: ...
    def retiring(self) -> None: ...
    def draining(self) -> None: ...


class ConnectionTable:
    """Every open connection of one worker, by descriptor, and their epoll interest."""

    __slots__ = (
        "config",
        "conns",
        "corked",
        "ctl",
        "epoll",
        "factory",
        "hooks",
        "next_sweep",
        "ready",
    )

    def __init__(
        self,
        factory: ConnectionFactory,
        config: WorkerConfig,
        hooks: WorkerHooks | None,
    ) -> None:
        self.factory = factory
        self.config = config
        self.hooks = hooks
        self.epoll = select.epoll()
        self.conns: dict[int, Connection] = {}
        # Connections whose request is complete, served one per loop turn.
        self.ready: deque[Connection] = deque()
        # Corking: while the loop handles one epoll batch, whole responses are held and
        # sent together at its end (or every CORK_MAX answers). Back-to-back sends wake
        # the client once per batch instead of once per answer: on loopback and in VMs
        # that wake-up is the largest kernel cost of a small request.
        self.ctl: WriteControl = factory.ctl
        self.corked: list[Connection] = []
        # Deadlines live on the connections; the loop sweeps them when the earliest is due
        # (``next_sweep`` only moves forward in a sweep). No timer heap: a closed
        # connection is not kept alive by a pending timer (close mode would hold
        # thousands until their read timeout), and setting a deadline is one compare.
        self.next_sweep = _NEVER

    def adopt(self, sock: socket.socket) -> Connection:
        """Serve a connected AF_UNIX socket (the other end plays the client)."""
        conn = self.factory.adopted(sock)
        self.conns[conn.fd] = conn
        self.set_mask(conn, _IN)
        return conn

    def release(self) -> None:
        """Close every connection and the epoll."""
        for conn in list(self.conns.values()):
            self.close(conn)
        self.epoll.close()

    # ------------------------------------------------------------------ state
    def goto(self, conn: Connection, state: ConnState) -> None:
        assert state in TRANSITIONS[conn.state], (conn.state, state)
        conn.state = state

    def set_mask(self, conn: Connection, mask: int) -> None:
        if conn.mask != mask:
            if conn.mask:
                self.epoll.modify(conn.fd, mask)
            else:
                self.epoll.register(conn.fd, mask)
            conn.mask = mask

    def set_deadline(self, conn: Connection, deadline: float) -> None:
        conn.deadline = deadline
        if deadline < self.next_sweep:
            self.next_sweep = deadline

    # ------------------------------------------------------------------ close
    def linger(self, conn: Connection, now: float) -> None:
        """Lingering close: stop sending, discard input for a while, then close."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(conn)
            return
        self.goto(conn, _LINGER)
        self.set_mask(conn, _IN)
        self.set_deadline(conn, now + LINGER_SECONDS)

    def close(self, conn: Connection) -> None:
        if conn.state is _CLOSED:
            return
        conn.state = _CLOSED
        self.conns.pop(conn.fd, None)
        conn.close()

    def wind_down(self, deadline: float) -> None:
        """Every connection's part of a drain: one that holds no request closes by
        ``deadline`` at the latest; one with a request in hand answers it with
        ``Connection: close``."""
        for conn in list(self.conns.values()):
            state = conn.state
            if (
                state is _IDLE
                or state is _TLS_HANDSHAKE
                or (state is _READ_HEAD and not conn.h1.has_partial_request)
            ):
                self.set_deadline(conn, min(conn.deadline, deadline))
            elif state is not _LINGER and conn.corked is None:
                # (A held answer is complete: its connection goes idle with the
                # drain deadline, and a next request is answered with close.)
                conn.h1.close_after_response()

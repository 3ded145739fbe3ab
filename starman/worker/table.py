"""The connections of one worker's epoll: registration and epoll masks, state moves,
deadlines, the ready queue and corked list, lingering close and close.

What a request does on a connection is starman.worker.dispatch; the loop is
starman.worker.loop. Both extend this class (a subclass, not a member: the request path
reaches these fields with one attribute read, no extra hop).
"""

from __future__ import annotations

import logging
import os
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
from starman.worker.handover import send as send_connection

log = logging.getLogger("starman.worker")

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
        "accepting",
        "close_checks",
        "config",
        "conns",
        "corked",
        "ctl",
        "drain_deadline",
        "draining",
        "epoll",
        "factory",
        "handing_over",
        "hooks",
        "listeners",
        "moving",
        "next_sweep",
        "outbox",
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
        # The listening sockets by descriptor (Worker: and the handover inbox), and
        # whether they are in the epoll now.
        self.listeners: dict[int, socket.socket] = {}
        self.accepting = False
        # Seamless recycling (starman.worker.handover): where a retiring worker sends its
        # idle connections (None: they close, as in a drain); whether it does so now; and
        # the connections waiting for room in the receivers' queue.
        self.draining = False
        self.drain_deadline = 0.0
        self.outbox: socket.socket | None = None
        self.handing_over = False
        self.moving: list[Connection] = []

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

    def start_drain(self, now: float, hand_over: bool = False) -> None:
        """Graceful drain of the connections (docs/architecture.md): finish what is in
        hand, answer a next request with ``Connection: close``, and close idle ones by
        the drain deadline. ``Worker.start_drain`` also stops accepting first;
        the request path (starman.worker.dispatch) answers what is in hand.

        ``hand_over`` (a worker retiring while the pool serves on): move the plain
        connections to the live workers instead, each once it holds no request
        (starman.worker.handover); no response says ``Connection: close`` for it."""
        hand_over = hand_over and self.outbox is not None
        if self.draining:
            if self.handing_over and not hand_over:  # a stop after a retirement
                self.handing_over = False
                self.moving.clear()
                self.wind_down(self.drain_deadline)
            return
        self.handing_over = hand_over
        self.draining = True
        self.close_checks = True
        self.drain_deadline = now + self.config.graceful_timeout
        if self.hooks is not None:
            self.hooks.draining()
        self.wind_down(self.drain_deadline)

    def victim(self) -> Connection | None:
        """The connection to drop for a new one at the cap: the longest-waiting one that
        holds no request (an idle keep-alive, or a head not yet complete: what a
        slowloris holds). None when every connection has a request in progress."""
        best: Connection | None = None
        for conn in self.conns.values():
            state = conn.state
            if (state is _IDLE or state is _READ_HEAD or state is _TLS_HANDSHAKE) and (
                best is None or conn.since < best.since
            ):
                best = conn
        return best

    # -------------------------------------------------------------- listeners
    def register_listeners(self) -> None:
        for fd, sock in self.listeners.items():
            sock.setblocking(False)
            try:
                self.epoll.register(fd, _IN | select.EPOLLEXCLUSIVE)
            except OSError:  # kernels before 4.5
                self.epoll.register(fd, _IN)
        self.accepting = True

    def unregister_listeners(self) -> None:
        for fd in self.listeners:
            try:
                self.epoll.unregister(fd)
            except (OSError, ValueError):
                pass
        self.accepting = False

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
        ``Connection: close``. When handing over, a plain connection that holds no
        request moves now, and one with a request in hand moves once it is answered."""
        handing_over = self.handing_over
        for conn in list(self.conns.values()):
            state = conn.state
            if (
                state is _IDLE
                or state is _TLS_HANDSHAKE
                or (state is _READ_HEAD and not conn.h1.has_partial_request)
            ):
                self.set_deadline(conn, min(conn.deadline, deadline))
                if handing_over:
                    self.hand_over(conn)
            elif handing_over and not conn.tls:
                pass  # answered keep-alive, then moved (Dispatcher.finish)
            elif state is not _LINGER and conn.corked is None:
                # (A held answer is complete: its connection goes idle with the
                # drain deadline, and a next request is answered with close.)
                conn.h1.close_after_response()

    # --------------------------------------------------------------- handover
    def hand_over(self, conn: Connection) -> None:
        """Move ``conn`` to a live worker if it holds no request and speaks plain HTTP
        (a TLS session cannot move: it closes by the drain deadline, as in a drain).
        While the receivers' queue is full it waits in ``moving``; a move that fails
        otherwise closes that connection only."""
        if (
            conn.tls
            or conn.out
            or conn.corked is not None
            or conn.h1.pending
            or conn.h1.has_partial_request
            or (conn.state is not _IDLE and conn.state is not _READ_HEAD)
        ):
            return
        assert self.outbox is not None
        try:
            send_connection(self.outbox, conn.sock, conn.nreq)
        except BlockingIOError:
            if conn not in self.moving:
                self.moving.append(conn)
            return
        except OSError as exc:
            log.warning(
                "worker %d: cannot hand a connection over (%s); closing it",
                os.getpid(),
                exc.strerror or exc,
            )
            self.close(conn)
            return
        # The socket lives on in the message: unregister it from this epoll by hand
        # (closing this descriptor does not remove it while another one is open).
        if conn.mask:
            try:
                self.epoll.unregister(conn.fd)
            except OSError:
                pass
            conn.mask = 0
        self.close(conn)

    def retry_moves(self) -> None:
        """Try again the moves that found the receivers' queue full."""
        moving, self.moving = self.moving, []
        for conn in moving:
            if conn.state is not _CLOSED:
                self.hand_over(conn)

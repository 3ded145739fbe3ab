"""One starman worker: one process, one thread, one epoll over listeners and connections.

The loop: accept, timers, signals, graceful drain, and the epoll turn that hands events to
the request path (starman.worker.dispatch). See the worker section of docs/architecture.md.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Sequence

from starman.worker.admit import ConnectionFactory
from starman.worker.config import WorkerConfig
from starman.worker.connection import (  # the members as globals
    CLOSED as _CLOSED,
    DRAIN_OUT as _DRAIN_OUT,
    IDLE as _IDLE,
    READ_BODY as _READ_BODY,
    READ_HEAD as _READ_HEAD,
    READY as _READY,
    TLS_HANDSHAKE as _TLS_HANDSHAKE,
    TRANSITIONS,
    Connection,
    ConnState,
    WriteControl,
)
from starman.worker.dispatch import Dispatcher
from starman.worker.handover import Handover, receive
from starman.worker.retire import LIMIT_LEAD_SECONDS
from starman.worker.table import WorkerHooks
from starman.worker.tlsinput import tls_handshake
from starman.wsgi.response import WSGIApp
from start_server.common.sigwake import SignalWaker

__all__ = [
    "ConnState",
    "TRANSITIONS",
    "Worker",
    "WorkerConfig",
    "WorkerHooks",
    "run_worker",
]

log = logging.getLogger("starman.worker")

PARENT_CHECK_INTERVAL = 1.0
# accept() failing for lack of descriptors or memory (EMFILE, ENFILE...): stop accepting for
# a while instead of spinning on a listener that stays readable; doubles up to the max.
ACCEPT_BACKOFF_MIN = 0.05
ACCEPT_BACKOFF_MAX = 1.0
# At --max-connections-per-worker with nothing to evict: look again after this long.
FULL_RECHECK = 0.1
# A retiring worker whose moves found the receivers' queue full tries again this often.
MOVE_RETRY = 0.005
_ACCEPT_RESOURCE_ERRORS = frozenset(
    (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
)

# Module globals, not enum attribute lookups (see starman.worker.dispatch).
_NEVER = float("inf")
_IN = select.EPOLLIN


class Worker(Dispatcher):
    """The event loop around the request path: listeners, accept, timers, drain.

    Public surface: ``run()``; and, to drive it without the loop (rehearsal,
    bench/micro.py), ``register_listeners()``, ``accept()``, ``conns`` and the
    Dispatcher's ``adopt()``, ``serve_input()`` and ``release()``.
    """

    __slots__ = (
        "accept_backoff",
        "accept_warned",
        "exit_now",
        "inbox",
        "pending_accept",
        "resume_accept_at",
    )

    def __init__(
        self,
        listeners: Sequence[socket.socket],
        app: WSGIApp,
        config: WorkerConfig,
        hooks: WorkerHooks | None,
        handover: Handover | None = None,
    ) -> None:
        factory = ConnectionFactory(
            listeners, config, WriteControl(config.write_timeout), os.getpid()
        )
        super().__init__(factory, app, config, hooks)
        self.listeners.update((sock.fileno(), sock) for sock in listeners)
        # Connections handed over by retiring workers come in like accepted ones: the
        # inbox is polled (and closed in a drain) with the listeners.
        self.inbox: socket.socket | None = None
        if handover is not None:
            self.inbox = handover.inbox
            self.outbox = handover.outbox
            self.listeners[handover.inbox.fileno()] = handover.inbox
        self.exit_now = False
        self.pending_accept: list[socket.socket] = []
        # Accepting paused (EMFILE backoff, or full with nothing to evict) until then.
        self.resume_accept_at = 0.0
        self.accept_backoff = 0.0
        self.accept_warned = False

    # -------------------------------------------------------------- listeners
    def pause_accepting(self, now: float, seconds: float) -> None:
        """Stop accepting for ``seconds`` (the loop registers the listeners again)."""
        if self.accepting:
            self.unregister_listeners()
        self.resume_accept_at = now + seconds

    def accept(self, lsock: socket.socket, now: float) -> None:
        """Take one connection per wake-up (skipping clients already gone).

        One, not a batch: the rest of the queue goes to the other workers, each woken by
        EPOLLEXCLUSIVE for its own connection. Keep-alive clients stay where they land, so
        a worker that grabbed a batch (say, every client of a recycled worker) would keep
        them all while its neighbours idle.
        """
        if lsock is self.inbox:
            self.take_moved(lsock, now)
            return
        config = self.config
        while True:
            victim = None
            if len(self.conns) >= config.max_connections:
                # Full: a new client is worth more than the longest-waiting connection
                # that holds no request (nginx drops idle keep-alives the same way).
                victim = self.victim()
                if victim is None:
                    self.pause_accepting(now, FULL_RECHECK)
                    return
            try:
                # socket.accept() minus its two enum conversions (Python code) per call.
                fd, peer = lsock._accept()  # type: ignore[attr-defined]  # CPython's socket.accept() uses it
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in _ACCEPT_RESOURCE_ERRORS:
                    # Out of descriptors or memory: the listener stays readable, so
                    # polling it again at once would spin. Back off; open connections
                    # keep being served meanwhile.
                    self.accept_backoff = min(
                        ACCEPT_BACKOFF_MAX,
                        max(ACCEPT_BACKOFF_MIN, self.accept_backoff * 2),
                    )
                    if not self.accept_warned:
                        log.warning(
                            "accept failed: %s; pausing accept (%d connections open)",
                            exc.strerror or exc,
                            len(self.conns),
                        )
                        self.accept_warned = True
                    self.pause_accepting(now, self.accept_backoff)
                    return
                continue  # ECONNABORTED, EPROTO...: that client is gone; next one
            self.accept_backoff = 0.0
            self.accept_warned = False
            if victim is not None:
                self.close(victim)
            conn = self.factory.accepted(lsock, fd, peer)
            if conn is None:
                continue
            conn.since = now
            self.conns[conn.fd] = conn
            self.set_deadline(conn, now + config.read_timeout)
            if conn.tls:
                conn.state = _TLS_HANDSHAKE
                tls_handshake(self, conn, now)
            else:
                # Clients send as soon as they are connected: the request is usually
                # here already, so read it now rather than after one more epoll turn
                # (a connection answered and closed at once is never registered).
                self.on_readable(conn, now)
            if conn.state is not _CLOSED and not conn.mask:
                self.set_mask(conn, _IN)
            return

    def take_moved(self, inbox: socket.socket, now: float) -> None:
        """Adopt one connection a retiring worker handed over (capped as accept is)."""
        victim = None
        if len(self.conns) >= self.config.max_connections:
            victim = self.victim()
            if victim is None:
                self.pause_accepting(now, FULL_RECHECK)
                return
        try:
            got = receive(inbox)
        except OSError as exc:
            log.warning("worker %d: a moved connection was lost: %s", os.getpid(), exc)
            return
        if got is None:
            return
        if victim is not None:
            self.close(victim)
        conn = self.factory.moved(*got)
        if conn is None:
            return
        conn.state = _IDLE
        conn.since = now
        self.conns[conn.fd] = conn
        self.set_deadline(conn, now + self.config.keepalive_timeout)
        self.on_readable(conn, now)  # its next request may be there already
        if conn.state is not _CLOSED and not conn.mask:
            self.set_mask(conn, _IN)

    # ----------------------------------------------------------------- timers
    def expire(self, now: float) -> None:
        """Time out every connection whose deadline passed; find the next one due."""
        self.next_sweep = _NEVER
        for conn in list(self.conns.values()):
            deadline = conn.deadline
            if deadline <= now:
                if conn.state is not _CLOSED:
                    self.timeout(conn, now)  # may set a new deadline (linger)
            elif deadline < self.next_sweep:
                self.next_sweep = deadline

    def timeout(self, conn: Connection, now: float) -> None:
        state = conn.state
        if state is _READ_BODY or (state is _READ_HEAD and conn.h1.has_partial_request):
            self.reject(conn, 408)
        elif state is _READY:
            pass  # served this very iteration
        else:  # idle, silent, stuck writer, lingering: close without a word
            self.close(conn)

    def next_timeout(self, now: float) -> float:
        if self.ready:
            return 0.0
        timeout = min(3600.0, self.next_sweep - now)
        if self.config.parent_pid is not None or self.limits is not None:
            timeout = min(timeout, PARENT_CHECK_INTERVAL)
        if self.draining:
            timeout = min(timeout, self.drain_deadline - now)
            if self.moving:  # the receivers' queue was full: look again soon
                timeout = min(timeout, MOVE_RETRY)
        elif self.retire_by:
            timeout = min(timeout, self.retire_by - now)
        if not self.draining and not self.accepting:
            timeout = min(timeout, self.resume_accept_at - now)
        return max(timeout, 0.0)

    # ------------------------------------------------------------------ drain
    def start_drain(self, now: float, hand_over: bool = False) -> None:
        """Graceful drain (docs/architecture.md): stop accepting, then drain the
        connections (finish what is in hand) and exit when none is left; with
        ``hand_over``, move them to the live workers instead (Dispatcher.start_drain)."""
        if not self.draining:
            self.unregister_listeners()
            for sock in self.listeners.values():
                sock.close()
            self.listeners = {}
        super().start_drain(now, hand_over)

    def on_stop_signal(self, signum: int, frame: object) -> None:
        """TERM/QUIT/HUP handler: only records that the response in hand must close.

        The wakeup fd still carries the signal to the loop, which starts the drain.
        """
        h1 = self.in_app
        if h1 is not None:
            h1.close_after_response()

    def on_signals(self, sigs: list[signal.Signals], now: float) -> None:
        for sig in sigs:
            if sig == signal.SIGINT:
                self.exit_now = True
            elif sig == signal.SIGUSR1:
                _reopen_logs()
            elif sig == signal.SIGUSR2:
                log.info("worker %d: SIGUSR2, retiring", os.getpid())
                self.start_drain(now, True)  # its connections move
            else:
                log.info("worker %d: %s, draining", os.getpid(), sig.name)
                self.start_drain(now)

    # ------------------------------------------------------------------- loop
    def run(self) -> int:
        waker = SignalWaker(
            (
                signal.SIGTERM,
                signal.SIGQUIT,
                signal.SIGHUP,
                signal.SIGINT,
                signal.SIGUSR1,
                signal.SIGUSR2,
            )
        )
        for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):
            signal.signal(sig, self.on_stop_signal)
        try:
            return self._loop(waker)
        finally:
            self.release()
            for sock in self.listeners.values():
                sock.close()
            waker.close()

    def _loop(self, waker: SignalWaker) -> int:
        waker_fd = waker.fileno()
        self.epoll.register(waker_fd, _IN)
        self.register_listeners()
        if self.hooks is not None:
            self.hooks.ready()
        config = self.config
        conns = self.conns
        listeners = self.listeners
        parent_pid = config.parent_pid
        limits = self.limits  # --max-worker-lifetime, --max-worker-memory
        next_parent_check = time.monotonic() + PARENT_CHECK_INTERVAL
        epoll_poll = self.epoll.poll
        monotonic = time.monotonic
        ready = self.ready
        ctl = self.ctl
        now = monotonic()
        while True:
            events = epoll_poll(0.0 if ready else self.next_timeout(now))
            now = monotonic()
            pending = self.pending_accept
            ctl.corking = True
            for fd, _mask in events:
                conn = conns.get(fd)
                if conn is not None:
                    if conn.state is _DRAIN_OUT:
                        self.on_writable(conn, now)
                    else:
                        self.on_readable(conn, now)
                elif fd == waker_fd:
                    self.on_signals(waker.drain(), now)
                else:
                    lsock = listeners.get(fd)
                    if lsock is not None:
                        pending.append(lsock)
            ctl.corking = False
            if self.corked:
                self.uncork()
            if self.exit_now:
                return 0
            if pending:
                if not ready and self.accepting:
                    for lsock in pending:
                        self.accept(lsock, now)
                pending.clear()
            if ready:
                conn = ready.popleft()
                if conn.state is _READY:
                    try:
                        self.serve(conn)
                    except Exception:  # never die from what a client sent
                        log.exception("internal error; closing the connection")
                        self.close(conn)
                now = monotonic()
            if now >= self.next_sweep:
                self.expire(now)
            if (
                not self.accepting
                and not self.draining
                and now >= self.resume_accept_at
            ):
                if len(conns) < config.max_connections or self.victim() is not None:
                    self.register_listeners()
                else:  # still full of requests in progress: look again later
                    self.resume_accept_at = now + FULL_RECHECK
            if self.retire_by and now >= self.retire_by and not self.draining:
                log.debug("worker %d: notice given: retiring now", os.getpid())
                self.start_drain(now, True)
            if now >= next_parent_check:  # once a second
                next_parent_check = now + PARENT_CHECK_INTERVAL
                if parent_pid is not None and os.getppid() != parent_pid:
                    log.warning("worker %d: master is gone, draining", os.getpid())
                    self.start_drain(now)
                if limits is not None and not (self.draining or self.retire_by):
                    why = limits.passed(now)
                    if why is not None:
                        log.info("worker %d: past --max-worker-%s", os.getpid(), why)
                        self.leave_soon(now + LIMIT_LEAD_SECONDS)
            if self.draining:
                if self.moving:
                    self.retry_moves()
                if not conns and not self.ready:
                    return 0
                if now >= self.drain_deadline:
                    if self.moving:
                        log.warning(
                            "worker %d: no worker took %d connections; closing them",
                            os.getpid(),
                            len(self.moving),
                        )
                    log.warning("worker %d: graceful timeout, closing", os.getpid())
                    return 0
            listeners = self.listeners


def _reopen_logs() -> None:
    """USR1: reopen log files for handlers that know how (else ignore)."""
    for logger in [logging.getLogger()] + [
        logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
    ]:
        for handler in getattr(logger, "handlers", ()):
            reopen = getattr(handler, "reopen", None)
            if callable(reopen):
                try:
                    reopen()
                except OSError:
                    log.exception("cannot reopen a log file")


def run_worker(
    listeners: Sequence[socket.socket],
    app: WSGIApp,
    config: WorkerConfig,
    hooks: WorkerHooks | None = None,
    handover: Handover | None = None,
) -> int:
    """Serve ``app`` on ``listeners`` until drained or interrupted; return the exit code.

    With ``handover`` (the master's socketpair), a retiring worker moves its idle
    connections to the live workers, and this one adopts theirs."""
    return Worker(listeners, app, config, hooks, handover).run()

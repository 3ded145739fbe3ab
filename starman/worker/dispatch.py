"""The request path of a worker's connections: read, parse, serve (the app is called
synchronously, one READY request at a time), write, then keep-alive, lingering close or
close. The loop around it (listeners, accept, timer sweep, drain) is starman.worker.loop.
"""

from __future__ import annotations

import logging
import select
import time
from typing import Any, Final

from starman.access import log_exchange
from starman.http.body import BodyBuffer, BodyInput, empty_input
from starman.http.events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    ProtocolError,
    Request,
)
from starman.http.h1 import ServerConnection, State
from starman.worker.admit import ConnectionFactory
from starman.worker.config import WorkerConfig
from starman.worker.connection import (  # the members as globals
    CLOSED as _CLOSED,
    DRAIN_OUT as _DRAIN_OUT,
    IDLE as _IDLE,
    LINGER as _LINGER,
    READ_BODY as _READ_BODY,
    READ_HEAD as _READ_HEAD,
    READY as _READY,
    Connection,
    ConnState,
)
from starman.worker.retire import (
    NO_CHECK,
    RETIRE_GRACE_SECONDS,
    Limits,
    first_retire_check,
    next_retire_check,
    retire_due,
)
from starman.worker.table import ConnectionTable, WorkerHooks
from starman.worker.tlsinput import on_readable_tls
from starman.wsgi.environ import RequestRejected, request_environ
from starman.wsgi.response import ClientDisconnected, WSGIApp, call_app

log = logging.getLogger("starman.worker")

# At most this many whole answers are held for one back-to-back send (bounds the latency
# corking adds to the first answer of a batch).
CORK_MAX = 16

# The members as module globals for the per-request code below: on CPython 3.11 every
# ``ConnState.READY`` goes through EnumType's ``__getattr__`` hook, much slower than a
# global, and a keep-alive request reads a dozen of them.
_H_ACTIVE: Final = State.ACTIVE  # the peer's side of h1
_H_ERROR: Final = State.ERROR
_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_EMPTY_INPUT = empty_input()  # shared and stateless: never released


class Dispatcher(ConnectionTable):
    """Drives each connection through the request path.

    ``starman.worker.loop.Worker`` extends it with the loop; ``adopt``, ``serve_input``
    and ``release`` drive a connection without that loop (rehearsal, bench/micro.py).
    """

    __slots__ = (
        "app",
        "in_app",
        "limits",
        "retire_by",
        "retire_check_at",
        "served",
        "started",
    )

    def __init__(
        self,
        factory: ConnectionFactory,
        app: WSGIApp,
        config: WorkerConfig,
        hooks: WorkerHooks | None,
    ) -> None:
        super().__init__(factory, config, hooks)
        self.app = app
        self.served = 0
        self.in_app: ServerConnection | None = None  # the request being served, if any
        # False while no per-request close condition can hold (keep-alive on, no limits,
        # not draining): serve() then skips those checks.
        self.close_checks = (
            not config.keepalive
            or bool(config.max_requests)
            or bool(config.max_keepalive_reqs)
        )
        # Near --max-requests the master is told this worker leaves soon, so that its
        # replacement is booted and accepting before this one closes its connections
        # (otherwise they all reconnect to the other workers, and the new one idles).
        self.retire_check_at = first_retire_check(config.max_requests)
        self.retire_by = 0.0  # once the notice is given: drain by then at the latest
        self.started = time.monotonic()
        lifetime, memory = config.max_worker_lifetime, config.max_worker_memory
        self.limits = (
            Limits(self.started, lifetime, memory) if lifetime or memory else None
        )

    # ------------------------------------------------------- driving in-process
    def serve_input(self, conn: Connection, now: float, cork: bool = False) -> None:
        """Do what one loop turn does for ``conn`` being readable: read and answer
        (with ``cork``, hold the answer and send it at the end, as in a batch), then serve
        the READY requests queued."""
        if cork:
            ctl = self.ctl
            ctl.corking = True
            self.on_readable(conn, now)
            ctl.corking = False
            if self.corked:
                self.uncork()
        else:
            self.on_readable(conn, now)
        ready = self.ready
        while ready:
            self.serve(ready.popleft())

    # ------------------------------------------------------------------- read
    def on_readable(self, conn: Connection, now: float) -> None:
        state = conn.state
        if state is _LINGER:
            if conn.linger_read():
                self.close(conn)
            return
        if state is _READY or state is _DRAIN_OUT:
            return
        if conn.tls:
            on_readable_tls(self, conn, now)
            return
        try:
            data = conn.read()
        except OSError:
            self.close(conn)
            return
        if data is not None:
            self.on_data(conn, data, state, now)

    def on_data(
        self, conn: Connection, data: bytes, state: ConnState, now: float
    ) -> None:
        h1 = conn.h1
        h1.receive_data(data)
        if data:
            # The common case: one whole bodiless request came in one piece. Serve it now
            # (no READ_HEAD deadline, no ready queue: the answer is written before the
            # next event is looked at).
            req = h1.take_simple_request()
            if req is not None:
                conn.state = _READY
                self.serve(conn)
                return
            if state is _IDLE:
                self.goto(conn, _READ_HEAD)
                self.set_deadline(conn, now + self.config.read_timeout)
        self.process_input(conn, now)

    def process_input(self, conn: Connection, now: float) -> None:
        """Pull h1 events until it needs data or a request is complete (READY)."""
        h1 = conn.h1
        while True:
            try:
                event = h1.next_event()
            except ProtocolError as exc:
                self.reject(conn, exc.status_hint)
                return
            if event is PAUSED:
                if conn.state is not _READY:
                    self.goto(conn, _READY)
                self.ready.append(conn)
                return
            if event is NEED_DATA:
                if h1.their_state is _H_ACTIVE:
                    if conn.state is not _READ_BODY:
                        self.goto(conn, _READ_BODY)
                        self.set_deadline(conn, now + self.config.body_timeout)
                    if h1.they_are_waiting_for_100_continue:
                        try:
                            conn.write([h1.send_continue()])
                        except ClientDisconnected:
                            self.close(conn)
                return
            if type(event) is Data:
                assert conn.body is not None
                conn.body.write(event.data)
                if conn.state is _READ_BODY:
                    self.set_deadline(conn, now + self.config.body_timeout)
            elif type(event) is Request:
                if event.chunked or event.content_length:
                    conn.body = BodyBuffer(
                        self.config.body_buffer_size, self.config.tmp_dir
                    )
                else:
                    conn.body = None
            elif type(event) is ConnectionClosed:
                self.close(conn)
                return

    def reject(self, conn: Connection, status: int) -> None:
        """Answer a protocol error, then lingering close; nothing more is parsed."""
        if conn.body is not None:
            conn.body.discard()
            conn.body = None
        try:
            conn.write([conn.h1.send_error(status)])
        except ClientDisconnected:
            self.close(conn)
            return
        if self.config.access_log:
            h1 = conn.h1
            log_exchange(conn.env, h1.request, status, h1.body_bytes_sent, None)
        self.after_response(conn, time.monotonic())

    # ------------------------------------------------------------------ serve
    def serve(self, conn: Connection) -> None:
        """Run the app for a READY connection's request and start writing the answer."""
        h1 = conn.h1
        request = h1.request
        assert request is not None
        config = self.config
        body: BodyInput
        cbody = conn.body
        if cbody is not None:
            length = cbody.size
            body = cbody.finish()
            conn.body = None
        else:
            length = 0
            body = _EMPTY_INPUT
        started = time.perf_counter() if config.access_log else 0.0
        conn.nreq += 1
        self.served = served = self.served + 1
        if self.close_checks:
            if served >= self.retire_check_at:
                self.check_retiring(served)
            if (
                (self.draining and (not self.handing_over or conn.tls))
                or not config.keepalive
                or (
                    config.max_requests
                    and served >= config.max_requests
                    and (self.outbox is None or conn.tls)  # TLS cannot move
                )
                or (
                    config.max_keepalive_reqs and conn.nreq >= config.max_keepalive_reqs
                )
            ):
                h1.close_after_response()
        environ: dict[str, Any] | None = None
        try:
            environ = request_environ(
                conn.env, request, body, length, unix=conn.unix, trusted=conn.trusted
            )
        except RequestRejected as exc:
            body.release()
            self.reject(conn, exc.status)
            return
        hooks = self.hooks
        if hooks is not None:
            hooks.request_started()
        self.in_app = h1
        try:
            call_app(self.app, environ, h1, conn)
        except Exception:  # a bug of ours must not kill the worker; drop this client
            log.exception("internal error while serving a request")
            h1.abort()
        finally:
            self.in_app = None
            if body is not _EMPTY_INPUT:
                body.release()
            if hooks is not None:
                hooks.request_finished()
        if config.access_log:
            log_exchange(
                environ, request, h1.response_status, h1.body_bytes_sent, started
            )
        handlers = environ.get("starman.cleanup.handlers")
        if handlers:
            conn.cleanups.extend((h, environ) for h in handlers)
        now = time.monotonic()
        if (config.max_requests and served >= config.max_requests) or environ.get(
            "starman.harakiri.commit"
        ):
            self.start_drain(now, True)
        if conn.corked is not None:
            corked = self.corked
            corked.append(conn)
            if len(corked) >= CORK_MAX:
                self.uncork()
            return
        self.finish(conn, now)

    def check_retiring(self, served: int) -> None:
        """Send the "leaving soon" notice once --max-requests is near, or plan the next
        look (starman.worker.retire)."""
        limit = self.config.max_requests
        now = time.monotonic()
        if retire_due(limit, served, now - self.started):
            self.leave_soon(now + RETIRE_GRACE_SECONDS)
        else:
            self.retire_check_at = next_retire_check(limit, served)

    def leave_soon(self, by: float) -> None:
        """Give the master the "leaving soon" notice (once), so that the replacement
        boots, and retire by ``by`` at the latest (the loop checks ``retire_by``)."""
        if self.retire_by:
            self.retire_by = min(self.retire_by, by)
            return
        self.retire_check_at = NO_CHECK
        self.retire_by = by
        if self.hooks is not None:
            self.hooks.retiring()

    # ------------------------------------------------------------------ write
    def uncork(self) -> None:
        """Send the held answers back to back, then finish each exchange."""
        corked = self.corked
        self.corked = []
        now = time.monotonic()
        for conn in corked:
            parts = conn.corked
            conn.corked = None
            if parts is None or conn.state is _CLOSED:
                continue
            try:
                conn.send(parts)
            except ClientDisconnected:
                pass  # conn.dead: finish() closes it
            try:
                self.finish(conn, now)
            except Exception:  # never die from what a client sent
                log.exception("internal error; closing the connection")
                self.close(conn)

    def finish(self, conn: Connection, now: float) -> None:
        """The answer is written (or queued): next request, keep-alive wait or close."""
        h1 = conn.h1
        if conn.out or conn.dead or conn.cleanups or not h1.start_next_cycle():
            self.after_response(conn, now)
            return
        # after_response() for a finished keep-alive exchange, inline (h1 is IDLE again).
        conn.state = _IDLE
        conn.since = now
        if conn.mask != _IN:
            self.set_mask(conn, _IN)
        idle = now + self.config.keepalive_timeout
        if self.draining:
            idle = min(idle, self.drain_deadline)
            if self.handing_over and not h1.pending:
                self.set_deadline(conn, idle)
                self.hand_over(conn)
                return
        conn.deadline = idle
        if idle < self.next_sweep:
            self.next_sweep = idle
        if h1.pending:
            self.process_input(conn, now)  # a pipelined request may already be complete

    def after_response(self, conn: Connection, now: float) -> None:
        """The app is done: drain output, then next request, keep-alive wait or close."""
        h1 = conn.h1
        if conn.dead or h1.our_state is _H_ERROR:
            conn.run_cleanups()
            self.close(conn)
            return
        if conn.out:
            if conn.state is not _DRAIN_OUT:
                self.goto(conn, _DRAIN_OUT)
            self.set_mask(conn, _OUT)
            self.set_deadline(conn, now + self.config.write_timeout)
            return
        if conn.cleanups:
            conn.run_cleanups()
        if not h1.keep_alive:
            if h1.client_closes and not conn.tls and conn.nothing_unread():
                self.close(conn)  # the client's own close: nothing to linger for
            else:
                self.linger(conn, now)
            return
        h1.start_next_cycle()
        self.goto(conn, _IDLE)
        conn.since = now
        if conn.mask != _IN:
            self.set_mask(conn, _IN)
        idle = now + self.config.keepalive_timeout
        if self.draining:
            idle = min(idle, self.drain_deadline)
        self.set_deadline(conn, idle)
        if h1.pending:
            self.process_input(conn, now)  # a pipelined request may already be complete
        elif self.handing_over:
            self.hand_over(conn)

    def on_writable(self, conn: Connection, now: float) -> None:
        before = conn.out_size
        done = conn.flush()
        if conn.dead:
            self.close(conn)
            return
        if done:
            self.after_response(conn, now)
        elif conn.out_size != before:
            self.set_deadline(conn, now + self.config.write_timeout)

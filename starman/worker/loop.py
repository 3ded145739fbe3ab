"""One starman worker: one process, one thread, one epoll over listeners and connections.

Waiting (accept, slow heads and bodies, idle keep-alive, slow readers) is multiplexed; the app
is called synchronously, one READY request at a time (spec §6.3). Graceful drain: spec §6.6.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import select
import signal
import socket
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from starman.access import log_exchange
from starman.config import Settings
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
from starman.worker.config import WorkerConfig, worker_config
from starman.wsgi.environ import (
    RequestRejected,
    connection_environ,
    request_environ,
    server_environ,
)
from starman.wsgi.response import ClientDisconnected, WSGIApp, call_app
from start_server.common.sigwake import SignalWaker

if TYPE_CHECKING:  # ssl is imported at run time only when TLS is configured
    import ssl

__all__ = ["ConnState", "TRANSITIONS", "WorkerConfig", "WorkerHooks", "run_worker"]

log = logging.getLogger("starman.worker")

# Output buffered per connection before a still-producing app waits for the reader (§6.3).
OUT_BUFFER_LIMIT = 256 * 1024
# At most this many whole answers are held for one back-to-back send (bounds the latency
# corking adds to the first answer of a batch).
CORK_MAX = 16
# The early "leaving soon" notice comes when, at the rate so far, the worker will reach
# --max-requests within this many seconds: enough for its replacement to boot (a few ms
# of CPU, more on a loaded machine), short enough that the two rarely coexist for long.
RETIRE_LEAD_SECONDS = 0.05
# A worker that gave the notice but has not reached the limit this long after (its
# traffic slowed or stopped) drains anyway: its replacement is already serving.
RETIRE_GRACE_SECONDS = 2.0
_NO_CHECK = 1 << 62
RECV_SIZE = 65536
LINGER_SECONDS = 2.0  # lingering close: discard input this long (gunicorn #2881 resets)
LINGER_BYTES = 64 * 1024
PARENT_CHECK_INTERVAL = 1.0
# accept() failing for lack of descriptors or memory (EMFILE, ENFILE...): stop accepting for
# a while instead of spinning on a listener that stays readable; doubles up to the max.
ACCEPT_BACKOFF_MIN = 0.05
ACCEPT_BACKOFF_MAX = 1.0
# At --max-connections-per-worker with nothing to evict: look again after this long.
FULL_RECHECK = 0.1
_ACCEPT_RESOURCE_ERRORS = frozenset(
    (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
)
# A non-blocking send that would block; with TLS configured, starman.worker.tls.WOULD_BLOCK
# (which adds the TLS want-read/want-write errors).
_WOULD_BLOCK: tuple[type[Exception], ...] = (BlockingIOError,)


class WorkerHooks(Protocol):
    """Callbacks into the master's bookkeeping (the scoreboard)."""

    def ready(self) -> None: ...
    def request_started(self) -> None: ...
    def request_finished(self) -> None: ...
    def retiring(self) -> None: ...
    def draining(self) -> None: ...


class ConnState(enum.Enum):
    """Where a connection is (spec §6.3; READY requests are served synchronously)."""

    __hash__ = object.__hash__  # members are singletons; enum's __hash__ is Python code

    TLS_HANDSHAKE = "TLS_HANDSHAKE"
    READ_HEAD = "READ_HEAD"
    READ_BODY = "READ_BODY"
    READY = "READY"
    DRAIN_OUT = "DRAIN_OUT"
    IDLE = "IDLE"
    LINGER = "LINGER"
    CLOSED = "CLOSED"


_S = ConnState
# Every legal move of a connection (h11 _state.py style: the rules are data).
TRANSITIONS: dict[ConnState, frozenset[ConnState]] = {
    _S.TLS_HANDSHAKE: frozenset((_S.READ_HEAD, _S.CLOSED)),
    _S.READ_HEAD: frozenset(
        (_S.READ_BODY, _S.READY, _S.DRAIN_OUT, _S.LINGER, _S.CLOSED)
    ),
    _S.READ_BODY: frozenset((_S.READY, _S.DRAIN_OUT, _S.LINGER, _S.CLOSED)),
    _S.READY: frozenset((_S.DRAIN_OUT, _S.IDLE, _S.READY, _S.LINGER, _S.CLOSED)),
    _S.DRAIN_OUT: frozenset((_S.IDLE, _S.READY, _S.LINGER, _S.CLOSED)),
    _S.IDLE: frozenset((_S.READ_HEAD, _S.READ_BODY, _S.READY, _S.LINGER, _S.CLOSED)),
    _S.LINGER: frozenset((_S.CLOSED,)),
    _S.CLOSED: frozenset(),
}

# The members as module globals for the per-request code below: on CPython 3.11 every
# ``ConnState.READY`` goes through EnumType's ``__getattr__`` hook (about 120 ns; a global
# costs about 5 ns), and a keep-alive request reads a dozen of them.
_TLS_HANDSHAKE: Final = ConnState.TLS_HANDSHAKE
_READ_HEAD: Final = ConnState.READ_HEAD
_READ_BODY: Final = ConnState.READ_BODY
_READY: Final = ConnState.READY
_DRAIN_OUT: Final = ConnState.DRAIN_OUT
_IDLE: Final = ConnState.IDLE
_LINGER: Final = ConnState.LINGER
_CLOSED: Final = ConnState.CLOSED
_H_ACTIVE: Final = State.ACTIVE  # the peer's side of h1
_H_ERROR: Final = State.ERROR
_NEVER = float("inf")
_AF_UNIX = int(socket.AF_UNIX)
_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
# An int: ``socket.MSG_PEEK | socket.MSG_DONTWAIT`` is an IntFlag ``__or__`` (Python code).
_PEEK_NOW = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)
_EMPTY_INPUT = empty_input()  # shared and stateless: never released


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
)  # fmt: skip


def imf_fixdate(seconds: float) -> bytes:
    """RFC 9110 §5.6.7 IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT`` (English
    names whatever the locale; email.utils.formatdate would cost the master ~0.4 MB of
    imports that every worker then shares or copies)."""
    t = time.gmtime(seconds)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _WEEKDAYS[t.tm_wday].encode(),
        t.tm_mday,
        _MONTHS[t.tm_mon - 1].encode(),
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )


class _DateCache:
    """The IMF-fixdate ``Date`` value, formatted once per second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def __call__(self) -> bytes:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._value = imf_fixdate(now)
        return self._value


class _FileRange:
    __slots__ = ("fd", "offset", "count")

    def __init__(self, fd: int, offset: int, count: int) -> None:
        self.fd = fd
        self.offset = offset
        self.count = count


class _Conn:
    """One client connection: socket, h1 state, output queue and deadline."""

    __slots__ = (
        "sock",
        "fd",
        "h1",
        "state",
        "unix",
        "trusted",
        "env",
        "out",
        "out_size",
        "deadline",
        "body",
        "nreq",
        "dead",
        "mask",
        "cleanups",
        "lingered",
        "worker",
        "tls",
        "since",
        "corked",
    )

    def __init__(
        self,
        sock: socket.socket,
        h1: ServerConnection,
        env: dict[str, Any],
        unix: bool,
        trusted: bool,
        worker: _Worker,
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.h1 = h1
        self.state = _READ_HEAD
        self.unix = unix
        self.trusted = trusted
        self.env = env
        self.out: deque[bytes | memoryview | _FileRange] = deque()
        self.out_size = 0
        self.deadline = _NEVER
        self.body: BodyBuffer | None = None
        self.nreq = 0
        self.dead = False
        self.mask = 0  # the epoll interest; 0 = not registered yet
        self.cleanups: list[tuple[Any, dict[str, Any]]] = []
        self.lingered = 0
        self.worker = worker
        self.tls = False  # set by accept() after wrapping the socket
        self.since = 0.0  # when it was accepted or last went idle (eviction order)
        # A whole response held for the batch flush (see _Worker.uncork).
        self.corked: list[bytes] | None = None

    # Transport (used by wsgi.call_app) ------------------------------------------
    def write(self, parts: list[bytes], final: bool = False) -> None:
        """Send now what the socket takes, queue the rest; wait if the queue is too big.

        A whole response (``final`` with nothing queued) written while the worker is
        corked is held instead and sent by ``_Worker.uncork`` with the other answers of
        the same epoll batch.
        """
        if self.dead:
            raise ClientDisconnected("connection is gone")
        if final and not self.out and self.worker.corking and not self.tls:
            self.corked = parts
            return
        self.send(parts)
        if not final and self.out_size > OUT_BUFFER_LIMIT:
            self._wait_writable()

    def send(self, parts: list[bytes]) -> None:
        """Send now what the socket takes and queue the rest (no waiting)."""
        if not self.out:
            if len(parts) > 64 or (self.tls and len(parts) > 1):
                parts = [b"".join(parts)]  # no sendmsg on a TLS socket
            try:
                if self.tls:
                    sent = self.sock.send(parts[0])
                else:
                    sent = self.sock.sendmsg(parts)
            except _WOULD_BLOCK:
                sent = 0
            except OSError as exc:
                self.dead = True
                raise ClientDisconnected(str(exc)) from exc
            for part in parts:
                n = len(part)
                if sent >= n:
                    sent -= n
                    continue
                view = memoryview(part)[sent:] if sent else part
                sent = 0
                self.out.append(view)
                self.out_size += len(view)
        else:
            for part in parts:
                self.out.append(part)
                self.out_size += len(part)

    def sendfile(self, fd: int, offset: int, count: int) -> None:
        """Send a file range; what would block is finished later by the loop."""
        if self.dead:
            raise ClientDisconnected("connection is gone")
        if self.tls:  # sendfile would bypass TLS: read the range and write it
            while count:
                data = os.pread(fd, min(count, RECV_SIZE), offset)
                if not data:  # the file shrank: nothing more will come
                    self.h1.abort()
                    break
                self.write([data])
                offset += len(data)
                count -= len(data)
            return
        self.out.append(_FileRange(os.dup(fd), offset, count))
        self.out_size += 1  # a file range is not memory; it only marks the queue busy
        self.flush()
        if self.dead:
            raise ClientDisconnected("connection is gone")

    # ----------------------------------------------------------------------------
    def _wait_writable(self) -> None:
        """Backpressure while the app still produces: block on this socket only."""
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT)
        timeout = self.worker.config.write_timeout
        while self.out_size > OUT_BUFFER_LIMIT:
            if not poller.poll(timeout * 1000):
                self.dead = True
                raise ClientDisconnected("write timeout")
            self.flush()
            if self.dead:
                raise ClientDisconnected("connection is gone")

    def flush(self) -> bool:
        """Write queued output until it would block; True when the queue is empty."""
        out = self.out
        sock = self.sock
        try:
            while out:
                item = out[0]
                if isinstance(item, _FileRange):
                    while item.count:
                        n = os.sendfile(self.fd, item.fd, item.offset, item.count)
                        if n == 0:  # the file shrank: nothing more will come
                            item.count = 0
                            self.h1.abort()
                            break
                        item.offset += n
                        item.count -= n
                    out.popleft()
                    os.close(item.fd)
                    self.out_size -= 1
                    continue
                n = sock.send(item)
                self.out_size -= n
                if n < len(item):
                    out[0] = memoryview(item)[n:]
                else:
                    out.popleft()
        except _WOULD_BLOCK:
            return False
        except OSError:
            self.dead = True
            self.drop_output()
            return False
        return True

    def drop_output(self) -> None:
        """Forget queued output (closing the file ranges' fds)."""
        for item in self.out:
            if isinstance(item, _FileRange):
                os.close(item.fd)
        self.out.clear()
        self.out_size = 0


class _Worker:
    """The event loop. Methods are grouped: accept, read, serve, write, timers, drain."""

    # Slots: more attributes than CPython 3.11 keeps in a shared-key instance dict (30).
    __slots__ = (
        "accept_backoff",
        "accept_warned",
        "accepting",
        "allow_all",
        "allow_ips",
        "app",
        "close_checks",
        "config",
        "conns",
        "corked",
        "corking",
        "date",
        "drain_deadline",
        "draining",
        "epoll",
        "exit_now",
        "hooks",
        "in_app",
        "kinds",
        "listeners",
        "next_sweep",
        "pending_accept",
        "ready",
        "resume_accept_at",
        "retire_by",
        "retire_check_at",
        "served",
        "server_env",
        "socknames",
        "started",
        "tls_fds",
    )

    def __init__(
        self,
        listeners: Sequence[socket.socket],
        app: WSGIApp,
        config: WorkerConfig,
        hooks: WorkerHooks | None,
    ) -> None:
        self.listeners = {sock.fileno(): sock for sock in listeners}
        # A TCP listener bound to one address gives every connection that local address
        # (SERVER_NAME/SERVER_PORT): one getsockname() here instead of one per connection.
        self.socknames: dict[socket.socket, Any] = {}
        for sock in listeners:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    name = sock.getsockname()
                except OSError:
                    continue
                if name[0] not in ("0.0.0.0", "::", "::ffff:0.0.0.0"):
                    self.socknames[sock] = name
        # (family, type, proto) of each listener as ints, for the sockets it accepts.
        self.kinds: dict[socket.socket, tuple[int, int, int]] = {
            sock: (int(sock.family), int(sock.type), sock.proto) for sock in listeners
        }
        self.app = app
        self.config = config
        self.hooks = hooks
        self.epoll = select.epoll()
        self.conns: dict[int, _Conn] = {}
        self.ready: deque[_Conn] = deque()
        # Corking: while the loop handles one epoll batch, whole responses are held and
        # sent together at its end (or every CORK_MAX answers). Back-to-back sends wake
        # the client once per batch instead of once per answer: on loopback and in VMs
        # that wake-up is the largest kernel cost of a small request.
        self.corking = False
        self.corked: list[_Conn] = []
        # Deadlines live on the connections; the loop sweeps them when the earliest is due
        # (``next_sweep`` only moves forward in a sweep). No timer heap: a closed
        # connection is not kept alive by a pending timer (close mode would hold
        # thousands until their read timeout), and setting a deadline is one compare.
        self.next_sweep = _NEVER
        self.date = _DateCache()
        self.server_env = server_environ(
            script_name=config.script_name,
            generation=config.generation,
            worker_pid=os.getpid(),
        )
        self.allow_all = "*" in config.forwarded_allow_ips
        self.allow_ips = frozenset(config.forwarded_allow_ips)
        self.accepting = False
        self.draining = False
        self.drain_deadline = 0.0
        self.served = 0
        self.exit_now = False
        self.pending_accept: list[socket.socket] = []
        # Accepting paused (EMFILE backoff, or full with nothing to evict) until then.
        self.resume_accept_at = 0.0
        self.accept_backoff = 0.0
        self.accept_warned = False
        self.tls_fds = config.tls_fds if config.ssl_context is not None else frozenset()
        if self.tls_fds:
            global _WOULD_BLOCK
            from starman.worker import tls

            _WOULD_BLOCK = tls.WOULD_BLOCK
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
        self.retire_check_at = 1 if config.max_requests else _NO_CHECK
        self.retire_by = 0.0  # once the notice is given: drain by then at the latest
        self.started = time.monotonic()

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

    def pause_accepting(self, now: float, seconds: float) -> None:
        """Stop accepting for ``seconds`` (the loop registers the listeners again)."""
        if self.accepting:
            self.unregister_listeners()
        self.resume_accept_at = now + seconds

    def victim(self) -> _Conn | None:
        """The connection to drop for a new one at the cap: the longest-waiting one that
        holds no request (an idle keep-alive, or a head not yet complete: what a
        slowloris holds). None when every connection has a request in progress."""
        best: _Conn | None = None
        for conn in self.conns.values():
            state = conn.state
            if (state is _IDLE or state is _READ_HEAD or state is _TLS_HANDSHAKE) and (
                best is None or conn.since < best.since
            ):
                best = conn
        return best

    def accept(self, lsock: socket.socket, now: float) -> None:
        """Take one connection per wake-up (skipping clients already gone).

        One, not a batch: the rest of the queue goes to the other workers, each woken by
        EPOLLEXCLUSIVE for its own connection. Keep-alive clients stay where they land, so
        a worker that grabbed a batch (say, every client of a recycled worker) would keep
        them all while its neighbours idle.
        """
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
            family, stype, proto = self.kinds[lsock]
            sock = socket.socket(family, stype, proto, fileno=fd)
            sock.setblocking(False)
            unix = family == _AF_UNIX
            try:
                if unix:
                    env = connection_environ(self.server_env, None, None, unix=True)
                    trusted = True
                else:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sockname = self.socknames.get(lsock)
                    if sockname is None:  # a wildcard listener: ask per connection
                        sockname = sock.getsockname()
                    env = connection_environ(
                        self.server_env, sockname, peer, unix=False
                    )
                    trusted = self.allow_all or str(peer[0]) in self.allow_ips
            except OSError:
                sock.close()
                continue
            if lsock.fileno() in self.tls_fds:
                assert config.ssl_context is not None
                try:
                    sock = config.ssl_context.wrap_socket(
                        sock, server_side=True, do_handshake_on_connect=False
                    )
                except OSError:
                    sock.close()
                    continue
                env["wsgi.url_scheme"] = "https"
                env["HTTPS"] = "on"
            h1 = ServerConnection(
                self.date,
                limit_request_line=config.limit_request_line,
                limit_request_fields=config.limit_request_fields,
                limit_request_field_size=config.limit_request_field_size,
                max_body=config.max_request_body,
            )
            conn = _Conn(sock, h1, env, unix, trusted, self)
            conn.tls = lsock.fileno() in self.tls_fds
            conn.since = now
            self.conns[conn.fd] = conn
            self.set_deadline(conn, now + config.read_timeout)
            if conn.tls:
                conn.state = _TLS_HANDSHAKE
                self.tls_handshake(conn, now)
            else:
                # Clients send as soon as they are connected: the request is usually
                # here already, so read it now rather than after one more epoll turn
                # (a connection answered and closed at once is never registered).
                self.on_readable(conn, now)
            if conn.state is not _CLOSED and not conn.mask:
                self.set_mask(conn, _IN)
            return

    # ------------------------------------------------------------------ state
    def goto(self, conn: _Conn, state: ConnState) -> None:
        assert state in TRANSITIONS[conn.state], (conn.state, state)
        conn.state = state

    def set_mask(self, conn: _Conn, mask: int) -> None:
        if conn.mask != mask:
            if conn.mask:
                self.epoll.modify(conn.fd, mask)
            else:
                self.epoll.register(conn.fd, mask)
            conn.mask = mask

    def set_deadline(self, conn: _Conn, deadline: float) -> None:
        conn.deadline = deadline
        if deadline < self.next_sweep:
            self.next_sweep = deadline

    # ------------------------------------------------------------------- read
    def tls_handshake(self, conn: _Conn, now: float) -> None:
        """Drive a TLS handshake one step (under --read-timeout, set at accept)."""
        from starman.worker.tls import handshake_step

        sock: ssl.SSLSocket = conn.sock  # type: ignore[assignment]  # conn.tls: wrapped
        try:
            want = handshake_step(sock)
        except OSError:  # a failed handshake: no HTTP to answer with
            self.close(conn)
            return
        if want:
            self.set_mask(conn, want)
            return
        self.goto(conn, _READ_HEAD)
        self.set_mask(conn, _IN)
        if sock.pending():
            self.on_readable(conn, now)

    def on_readable(self, conn: _Conn, now: float) -> None:
        state = conn.state
        if state is _LINGER:
            self.linger_read(conn)
            return
        if state is _READY or state is _DRAIN_OUT:
            return
        if conn.tls:
            self.on_readable_tls(conn, now)
            return
        try:
            data = conn.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self.close(conn)
            return
        self.on_data(conn, data, state, now)

    def on_readable_tls(self, conn: _Conn, now: float) -> None:
        """TLS input: the handshake, then records; plaintext already decrypted inside
        the TLS object (``pending()``) raises no epoll event, so it is read in a loop."""
        from starman.worker import tls

        sock: ssl.SSLSocket = conn.sock  # type: ignore[assignment]  # conn.tls: wrapped
        while True:
            state = conn.state
            if state is _TLS_HANDSHAKE:
                self.tls_handshake(conn, now)
                return
            if state is _LINGER:
                self.linger_read(conn)
                return
            if (
                state is not _READ_HEAD
                and state is not _READ_BODY
                and state is not _IDLE
            ):
                return
            try:
                data = tls.recv(sock, RECV_SIZE)
            except OSError:
                self.close(conn)
                return
            if data is None:
                return
            self.on_data(conn, data, state, now)
            if not data or conn.state is _CLOSED or not sock.pending():
                return

    def on_data(self, conn: _Conn, data: bytes, state: ConnState, now: float) -> None:
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

    def process_input(self, conn: _Conn, now: float) -> None:
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

    def reject(self, conn: _Conn, status: int) -> None:
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
    def serve(self, conn: _Conn) -> None:
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
                self.draining
                or not config.keepalive
                or (config.max_requests and served >= config.max_requests)
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
            self.start_drain(now)
        if conn.corked is not None:
            corked = self.corked
            corked.append(conn)
            if len(corked) >= CORK_MAX:
                self.uncork()
            return
        self.finish(conn, now)

    def check_retiring(self, served: int) -> None:
        """Send the "leaving soon" notice once --max-requests is near, or plan the next
        look (ever closer as the limit approaches: about eight looks per life)."""
        limit = self.config.max_requests
        now = time.monotonic()
        if retire_due(limit, served, now - self.started):
            self.retire_check_at = _NO_CHECK
            self.retire_by = now + RETIRE_GRACE_SECONDS
            if self.hooks is not None:
                self.hooks.retiring()
        else:
            self.retire_check_at = served + max(1, (limit - served) // 8)

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

    def finish(self, conn: _Conn, now: float) -> None:
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
        conn.deadline = idle
        if idle < self.next_sweep:
            self.next_sweep = idle
        if h1.pending:
            self.process_input(conn, now)  # a pipelined request may already be complete

    def after_response(self, conn: _Conn, now: float) -> None:
        """The app is done: drain output, then next request, keep-alive wait or close."""
        h1 = conn.h1
        if conn.dead or h1.our_state is _H_ERROR:
            self.run_cleanups(conn)
            self.close(conn)
            return
        if conn.out:
            if conn.state is not _DRAIN_OUT:
                self.goto(conn, _DRAIN_OUT)
            self.set_mask(conn, _OUT)
            self.set_deadline(conn, now + self.config.write_timeout)
            return
        if conn.cleanups:
            self.run_cleanups(conn)
        if not h1.keep_alive:
            if h1.client_closes and not conn.tls and _nothing_unread(conn.sock):
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

    def run_cleanups(self, conn: _Conn) -> None:
        cleanups, conn.cleanups = conn.cleanups, []
        for handler, environ in cleanups:
            try:
                handler(environ)
            except Exception:
                log.exception("error in a starman.cleanup handler")

    # ------------------------------------------------------------------ write
    def on_writable(self, conn: _Conn, now: float) -> None:
        before = conn.out_size
        done = conn.flush()
        if conn.dead:
            self.close(conn)
            return
        if done:
            self.after_response(conn, now)
        elif conn.out_size != before:
            self.set_deadline(conn, now + self.config.write_timeout)

    # ------------------------------------------------------------------ close
    def linger(self, conn: _Conn, now: float) -> None:
        """Lingering close: stop sending, discard input for a while, then close."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(conn)
            return
        self.goto(conn, _LINGER)
        self.set_mask(conn, _IN)
        self.set_deadline(conn, now + LINGER_SECONDS)

    def linger_read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        conn.lingered += len(data)
        if not data or conn.lingered > LINGER_BYTES:
            self.close(conn)

    def close(self, conn: _Conn) -> None:
        if conn.state is _CLOSED:
            return
        conn.state = _CLOSED
        conn.h1.release()
        conn.drop_output()
        if conn.body is not None:
            conn.body.discard()
            conn.body = None
        self.conns.pop(conn.fd, None)
        # No epoll.unregister(): closing the only descriptor of the socket removes it from
        # the epoll set (one epoll_ctl syscall fewer per connection).
        conn.sock.close()

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

    def timeout(self, conn: _Conn, now: float) -> None:
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
        if self.config.parent_pid is not None:
            timeout = min(timeout, PARENT_CHECK_INTERVAL)
        if self.draining:
            timeout = min(timeout, self.drain_deadline - now)
        elif self.retire_by:
            timeout = min(timeout, self.retire_by - now)
        if not self.draining and not self.accepting:
            timeout = min(timeout, self.resume_accept_at - now)
        return max(timeout, 0.0)

    # ------------------------------------------------------------------ drain
    def start_drain(self, now: float) -> None:
        """Graceful drain (spec §6.6): stop accepting, finish what is in hand, exit."""
        if self.draining:
            return
        self.draining = True
        self.close_checks = True
        self.drain_deadline = now + self.config.graceful_timeout
        self.unregister_listeners()
        for sock in self.listeners.values():
            sock.close()
        self.listeners = {}
        if self.hooks is not None:
            self.hooks.draining()
        for conn in list(self.conns.values()):
            if (
                conn.state is _IDLE
                or conn.state is _TLS_HANDSHAKE
                or (conn.state is _READ_HEAD and not conn.h1.has_partial_request)
            ):
                self.set_deadline(conn, min(conn.deadline, self.drain_deadline))
            elif conn.state is not _LINGER and conn.corked is None:
                # (A held answer is complete: its connection goes idle with the
                # drain deadline, and a next request is answered with close.)
                conn.h1.close_after_response()

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
            )
        )
        for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):
            signal.signal(sig, self.on_stop_signal)
        try:
            return self._loop(waker)
        finally:
            for conn in list(self.conns.values()):
                self.close(conn)
            for sock in self.listeners.values():
                sock.close()
            self.epoll.close()
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
        next_parent_check = time.monotonic() + PARENT_CHECK_INTERVAL
        epoll_poll = self.epoll.poll
        monotonic = time.monotonic
        ready = self.ready
        now = monotonic()
        while True:
            events = epoll_poll(0.0 if ready else self.next_timeout(now))
            now = monotonic()
            pending = self.pending_accept
            self.corking = True
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
            self.corking = False
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
                log.debug(
                    "worker %d: traffic slowed before --max-requests: retiring now",
                    os.getpid(),
                )
                self.start_drain(now)
            if parent_pid is not None and now >= next_parent_check:
                next_parent_check = now + PARENT_CHECK_INTERVAL
                if os.getppid() != parent_pid:
                    log.warning("worker %d: master is gone, draining", os.getpid())
                    self.start_drain(now)
            if self.draining:
                if not conns and not self.ready:
                    return 0
                if now >= self.drain_deadline:
                    log.warning("worker %d: graceful timeout, closing", os.getpid())
                    return 0
            listeners = self.listeners


def retire_due(limit: int, served: int, elapsed: float) -> bool:
    """At the rate so far (``served`` requests in ``elapsed`` seconds), will the worker
    reach ``limit`` within RETIRE_LEAD_SECONDS?"""
    left = limit - served
    return left <= 0 or left * elapsed <= RETIRE_LEAD_SECONDS * served


def _nothing_unread(sock: socket.socket) -> bool:
    """No input waits in the kernel (one MSG_PEEK recv): a plain close sends no RST.

    Not for TLS sockets (no MSG_PEEK through TLS): they take the lingering close.
    """
    try:
        return not sock.recv(1, _PEEK_NOW)
    except BlockingIOError:
        return True
    except OSError:
        return True  # the peer is gone: nothing to protect


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
) -> int:
    """Serve ``app`` on ``listeners`` until drained or interrupted; return the exit code."""
    return _Worker(listeners, app, config, hooks).run()


# ------------------------------------------------------------------ rehearsal
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
    worker: _Worker | None = None
    answers = 0
    try:
        config = worker_config(
            Settings(),
            parent_pid=None,
            generation=None,
            ssl_context=None,
            tls_fds=frozenset(),
            max_requests=0,
        )
        worker = _Worker([], _rehearsal_app, config, None)
        server_sock.setblocking(False)
        client.settimeout(1.0)
        env = connection_environ(worker.server_env, None, None, unix=True)
        h1 = ServerConnection(
            worker.date,
            limit_request_line=config.limit_request_line,
            limit_request_fields=config.limit_request_fields,
            limit_request_field_size=config.limit_request_field_size,
            max_body=config.max_request_body,
        )
        conn = _Conn(server_sock, h1, env, True, True, worker)
        worker.conns[conn.fd] = conn
        worker.set_mask(conn, _IN)
        for i in range(rounds):
            client.sendall(_REHEARSAL_REQUEST)
            now = time.monotonic()
            # Both ways out: odd rounds are held for the batch, even ones sent directly.
            worker.corking = bool(i & 1)
            worker.on_readable(conn, now)
            worker.corking = False
            if worker.corked:
                worker.uncork()
            while worker.ready:
                worker.serve(worker.ready.popleft())
            if client.recv(RECV_SIZE).startswith(b"HTTP/1.1 200 "):
                answers += 1
    except Exception:  # only ever a bug of ours; the workers would meet it too
        log.exception("request-path rehearsal failed after %d answers", answers)
    finally:
        if worker is not None:
            for conn in list(worker.conns.values()):
                worker.close(conn)
            worker.epoll.close()
        server_sock.close()
        client.close()
    return answers

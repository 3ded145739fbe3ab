"""One client connection of a worker: its socket, h1 state, output queue and lifecycle state.

It reads and writes its own socket and knows nothing of the worker's loop (epoll, other
connections, timers): what it needs from the loop comes in a shared ``WriteControl``.
"""

from __future__ import annotations

import enum
import logging
import os
import select
import socket
from collections import deque
from typing import Any, Final

from starman.http.body import BodyBuffer
from starman.http.h1 import ServerConnection
from starman.wsgi.response import ClientDisconnected

__all__ = ["ConnState", "Connection", "TRANSITIONS", "WriteControl"]

log = logging.getLogger("starman.worker")

# Output buffered per connection before a still-producing app waits for the reader
# (see "backpressure" in docs/architecture.md).
OUT_BUFFER_LIMIT = 256 * 1024
RECV_SIZE = 65536
LINGER_SECONDS = 2.0  # lingering close: discard input this long (gunicorn #2881 resets)
LINGER_BYTES = 64 * 1024
_NEVER = float("inf")
# An int: ``socket.MSG_PEEK | socket.MSG_DONTWAIT`` is an IntFlag ``__or__`` (Python code).
_PEEK_NOW = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)
# A non-blocking send that would block; with TLS configured, starman.worker.tls.WOULD_BLOCK
# (which adds the TLS want-read/want-write errors): see use_tls_errors().
_WOULD_BLOCK: tuple[type[Exception], ...] = (BlockingIOError,)


class ConnState(enum.Enum):
    """Where a connection is (READY requests are served synchronously, one at a time:
    see the worker section of docs/architecture.md)."""

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

# The members as module globals, declared once for the worker's per-request code (its
# modules import them under private names): on CPython 3.11 every ``ConnState.READY``
# goes through EnumType's ``__getattr__`` hook, much slower than reading a global.
TLS_HANDSHAKE: Final = ConnState.TLS_HANDSHAKE
READ_HEAD: Final = ConnState.READ_HEAD
READ_BODY: Final = ConnState.READ_BODY
READY: Final = ConnState.READY
DRAIN_OUT: Final = ConnState.DRAIN_OUT
IDLE: Final = ConnState.IDLE
LINGER: Final = ConnState.LINGER
CLOSED: Final = ConnState.CLOSED


def use_tls_errors(would_block: tuple[type[Exception], ...]) -> None:
    """With TLS configured: also treat the TLS want-read/want-write errors as "would
    block" on every connection (called once per worker, before serving)."""
    global _WOULD_BLOCK
    _WOULD_BLOCK = would_block


class WriteControl:
    """What every connection of one worker needs from its loop: whether whole answers are
    being held for one batch send (corking), and the write timeout of backpressure."""

    __slots__ = ("corking", "write_timeout")

    def __init__(self, write_timeout: float) -> None:
        self.corking = False
        self.write_timeout = write_timeout


class _FileRange:
    __slots__ = ("fd", "offset", "count")

    def __init__(self, fd: int, offset: int, count: int) -> None:
        self.fd = fd
        self.offset = offset
        self.count = count


class Connection:
    """One client connection: socket, h1 state, output queue and deadline.

    The loop owns ``state``, ``mask``, ``deadline`` and ``since``; the connection only
    stores them. ``write``/``sendfile`` are the transport of ``wsgi.call_app``.
    """

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
        "ctl",
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
        ctl: WriteControl,
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.h1 = h1
        self.state = READ_HEAD
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
        self.ctl = ctl
        self.tls = False  # set after wrapping the socket
        self.since = 0.0  # when it was accepted or last went idle (eviction order)
        # A whole response held for the batch flush (see Dispatcher.uncork).
        self.corked: list[bytes] | None = None

    # Transport (used by wsgi.call_app) ------------------------------------------
    def write(self, parts: list[bytes], final: bool = False) -> None:
        """Send now what the socket takes, queue the rest; wait if the queue is too big.

        A whole response (``final`` with nothing queued) written while the loop is
        corking is held instead and sent by ``Dispatcher.uncork`` with the other answers
        of the same epoll batch.
        """
        if self.dead:
            raise ClientDisconnected("connection is gone")
        if final and not self.out and self.ctl.corking and not self.tls:
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
        timeout = self.ctl.write_timeout
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

    # ------------------------------------------------------------------ input
    def read(self) -> bytes | None:
        """What the peer sent (``b""``: it closed its side), or None when nothing is
        there yet; raises OSError when the connection broke. Plain sockets only: a TLS
        connection reads through starman.worker.tlsinput."""
        try:
            return self.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return None

    # ---------------------------------------------------------------- closing
    def nothing_unread(self) -> bool:
        """No input waits in the kernel (one MSG_PEEK recv): a plain close sends no RST.

        Not for TLS sockets (no MSG_PEEK through TLS): they take the lingering close.
        """
        try:
            return not self.sock.recv(1, _PEEK_NOW)
        except BlockingIOError:
            return True
        except OSError:
            return True  # the peer is gone: nothing to protect

    def linger_read(self) -> bool:
        """Discard what a lingering-closed client still sends; True when it is time to
        close (the client closed, or sent more than LINGER_BYTES)."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        self.lingered += len(data)
        return not data or self.lingered > LINGER_BYTES

    def run_cleanups(self) -> None:
        """Call the ``starman.cleanup.handlers`` the app registered (errors are logged)."""
        cleanups, self.cleanups = self.cleanups, []
        for handler, environ in cleanups:
            try:
                handler(environ)
            except Exception:
                log.exception("error in a starman.cleanup handler")

    def close(self) -> None:
        """Release h1, queued output and the body, then close the socket (the loop has
        already marked the connection CLOSED and forgotten it)."""
        self.h1.release()
        self.drop_output()
        if self.body is not None:
            self.body.discard()
            self.body = None
        # No epoll.unregister(): closing the only descriptor of the socket removes it from
        # the epoll set (one epoll_ctl syscall fewer per connection).
        self.sock.close()

"""What a new connection of a worker starts with: its connection environ (local and peer
address, trust for forwarded headers, TLS) and a fresh h1, built from the listener that
accepted it (or for a socket handed in directly, see Worker.adopt)."""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Sequence
from typing import Any

from starman.http.h1 import ServerConnection
from starman.worker.config import WorkerConfig
from starman.worker.connection import Connection, WriteControl, use_tls_errors
from starman.worker.httpdate import DateCache
from starman.wsgi.environ import connection_environ, server_environ

_AF_UNIX = int(socket.AF_UNIX)


class ConnectionFactory:
    """Builds the ``Connection`` of each accepted socket (per-listener facts computed once)."""

    __slots__ = (
        "allow_all",
        "allow_ips",
        "config",
        "ctl",
        "date",
        "kinds",
        "new_h1",
        "server_env",
        "socknames",
        "tls_fds",
    )

    def __init__(
        self,
        listeners: Sequence[socket.socket],
        config: WorkerConfig,
        ctl: WriteControl,
        worker_pid: int,
    ) -> None:
        self.config = config
        self.ctl = ctl
        self.date = DateCache()
        self.server_env = server_environ(
            script_name=config.script_name,
            generation=config.generation,
            worker_pid=worker_pid,
        )
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
        # The HTTP state of a new connection, with the configured limits (a partial:
        # no Python frame of ours per connection).
        self.new_h1: Callable[[], ServerConnection] = functools.partial(
            ServerConnection,
            self.date,
            limit_request_line=config.limit_request_line,
            limit_request_fields=config.limit_request_fields,
            limit_request_field_size=config.limit_request_field_size,
            max_body=config.max_request_body,
        )
        self.allow_all = "*" in config.forwarded_allow_ips
        self.allow_ips = frozenset(config.forwarded_allow_ips)
        self.tls_fds = config.tls_fds if config.ssl_context is not None else frozenset()
        if self.tls_fds:
            from starman.worker import tls

            use_tls_errors(tls.WOULD_BLOCK)

    def accepted(self, lsock: socket.socket, fd: int, peer: Any) -> Connection | None:
        """The connection of descriptor ``fd`` just accepted on ``lsock`` from ``peer``;
        None (and ``fd`` closed) when the client is already gone."""
        config = self.config
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
                env = connection_environ(self.server_env, sockname, peer, unix=False)
                trusted = self.allow_all or str(peer[0]) in self.allow_ips
        except OSError:
            sock.close()
            return None
        tls = lsock.fileno() in self.tls_fds
        if tls:
            assert config.ssl_context is not None
            try:
                sock = config.ssl_context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
            except OSError:
                sock.close()
                return None
            env["wsgi.url_scheme"] = "https"
            env["HTTPS"] = "on"
        conn = Connection(sock, self.new_h1(), env, unix, trusted, self.ctl)
        conn.tls = tls
        return conn

    def adopted(self, sock: socket.socket) -> Connection:
        """The connection of a connected AF_UNIX socket handed in directly (trusted, as
        one from a Unix listener)."""
        sock.setblocking(False)
        env = connection_environ(self.server_env, None, None, unix=True)
        return Connection(sock, self.new_h1(), env, True, True, self.ctl)

    def moved(self, sock: socket.socket, nreq: int) -> Connection | None:
        """The connection of a plain (not TLS) socket handed over by a retiring worker
        (starman.worker.handover); None (and ``sock`` closed) when the client is gone."""
        sock.setblocking(False)
        unix = sock.family == _AF_UNIX
        try:
            if unix:
                env = connection_environ(self.server_env, None, None, unix=True)
                trusted = True
            else:
                peer = sock.getpeername()
                env = connection_environ(
                    self.server_env, sock.getsockname(), peer, unix=False
                )
                trusted = self.allow_all or str(peer[0]) in self.allow_ips
        except OSError:
            sock.close()
            return None
        conn = Connection(sock, self.new_h1(), env, unix, trusted, self.ctl)
        conn.nreq = nreq
        return conn

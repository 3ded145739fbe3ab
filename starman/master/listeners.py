"""Where starman's listening sockets come from: SERVER_STARTER_PORT > LISTEN_FDS > --listen.

Inherited sockets are adopted (never rebound, never unlinked); sockets bound here from a
UNIX path are unlinked by ``close_listeners``. Raises ListenerError with a one-line message.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import MutableMapping, Sequence

from starman.config import ListenSpec, Settings
from start_server.common.listen import adopt_systemd, bind_tcp, bind_unix, listen_all
from start_server.common.portspec import (
    ENV_LISTEN_FDNAMES,
    ENV_LISTEN_FDS,
    ENV_LISTEN_PID,
    ENV_PORT,
)
from start_server.common.record import Record

__all__ = ["Listener", "ListenerError", "close_listeners", "resolve_listeners"]

log = logging.getLogger("starman.listeners")


class ListenerError(Exception):
    """No usable listening socket: the message says which and why."""


class Listener(Record):
    """One listening socket and where it came from."""

    __slots__ = ("name", "sock", "source", "unlink_path", "tls")

    def __init__(
        self,
        name: str,  # as the user or the supervisor wrote it
        sock: socket.socket,
        source: str,  # "server_starter", "systemd" or "bound"
        unlink_path: str | None = None,  # a UNIX path we bound ourselves
        tls: bool = False,  # connections speak TLS (--enable-ssl on TCP, or :ssl)
    ) -> None:
        self.name = name
        self.sock = sock
        self.source = source
        self.unlink_path = unlink_path
        self.tls = tls

    def describe(self) -> str:
        tls = ":ssl" if self.tls else ""
        return f"{self.name}{tls} ({self.source}, fd {self.sock.fileno()})"


def _bind(spec: ListenSpec, settings: Settings) -> Listener:
    if spec.path is not None:
        try:
            sock = bind_unix(spec.path, settings.backlog, mode=settings.socket_mode)
        except OSError as exc:
            raise ListenerError(
                f"failed to bind to unix:{spec.path}: {exc.strerror or exc}"
            ) from None
        return Listener("unix:" + spec.path, sock, "bound", unlink_path=spec.path)
    assert spec.port is not None
    try:
        sock = bind_tcp(
            spec.host,
            spec.port,
            settings.backlog,
            v6only=True if spec.host and ":" in spec.host else None,
            reuse_port=settings.reuse_port,
            dual_stack=True,
        )
    except OSError as exc:
        raise ListenerError(
            f"failed to bind to {spec.describe()}: [Errno {exc.errno}] {exc.strerror or exc}"
        ) from None
    if settings.defer_accept > 0 and hasattr(socket, "TCP_DEFER_ACCEPT"):
        sock.setsockopt(
            socket.IPPROTO_TCP,
            socket.TCP_DEFER_ACCEPT,
            max(1, int(settings.defer_accept)),
        )
    addr = sock.getsockname()
    host = addr[0]
    name = f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    return Listener(name, sock, "bound", tls=spec.ssl or settings.ssl)


def _bind_all(settings: Settings) -> list[Listener]:
    bound: list[Listener] = []
    try:
        for spec in settings.listen_specs():
            bound.append(_bind(spec, settings))
    except BaseException:
        close_listeners(bound)
        raise
    return bound


def _explicit_listen(settings: Settings) -> bool:
    return bool(
        settings.listen
        or settings.host is not None
        or settings.port is not None
        or settings.socket is not None
    )


def resolve_listeners(
    settings: Settings, environ: MutableMapping[str, str], pid: int | None = None
) -> list[Listener]:
    """Adopt or bind the listening sockets, in the order the module docstring gives; clear
    LISTEN_* from ``environ``.

    Raises ListenerError.
    """
    listeners: list[Listener] = []
    if environ.get(ENV_PORT, "") != "":
        try:
            pairs = listen_all(environ)
        except (ValueError, OSError) as exc:
            raise ListenerError(
                f"cannot adopt sockets from {ENV_PORT}={environ[ENV_PORT]!r}: {exc}"
            ) from None
        listeners = [Listener(k, s, "server_starter") for k, s in pairs]
    if not listeners:
        try:
            pairs = adopt_systemd(environ, pid)
        except OSError as exc:
            raise ListenerError(
                f"cannot adopt sockets from {ENV_LISTEN_FDS}: {exc}"
            ) from None
        listeners = [Listener(k, s, "systemd") for k, s in pairs]
    # Workers must not believe LISTEN_FDS is meant for them (sd_listen_fds semantics).
    for key in (ENV_LISTEN_FDS, ENV_LISTEN_PID, ENV_LISTEN_FDNAMES):
        environ.pop(key, None)
    if listeners:
        if _explicit_listen(settings):
            log.warning(
                "using inherited sockets (%s); --listen/--host/--port/--socket are ignored",
                listeners[0].source,
            )
        for lst in listeners:
            if lst.sock.type != socket.SOCK_STREAM:
                close_listeners(listeners)
                raise ListenerError(
                    f"inherited socket {lst.name!r} is not a stream socket"
                )
            # --enable-ssl covers inherited TCP sockets too (as Perl Starman's).
            lst.tls = settings.ssl and lst.sock.family != socket.AF_UNIX
        return listeners
    return _bind_all(settings)


def close_listeners(listeners: Sequence[Listener]) -> None:
    """Close every socket; unlink the UNIX paths this process bound."""
    for lst in listeners:
        lst.sock.close()
        if lst.unlink_path is not None:
            try:
                os.unlink(lst.unlink_path)
            except FileNotFoundError:
                pass

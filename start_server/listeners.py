"""The listening sockets start_server hands its children: bind every --port and --path
(an ``=FD`` one moved to that number), adopt the ones systemd passed, unlink at exit.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping, Sequence

from start_server.common.listen import adopt_systemd, bind_spec
from start_server.common.portspec import ENV_LISTEN_FDNAMES, PortSpec, Transport
from start_server.common.record import Record
from start_server.logline import log
from start_server.startup import SupervisorError

__all__ = ["Bound", "adopt_all", "bind_all", "unlink_sockets"]


class Bound(Record):
    """One listening socket, at the fd the child will find it."""

    __slots__ = ("spec", "sock", "adopted")

    def __init__(
        self, spec: PortSpec, sock: socket.socket, adopted: bool = False
    ) -> None:
        self.spec = spec
        self.sock = sock
        self.adopted = adopted  # passed by systemd (LISTEN_FDS): never unlinked by us

    @property
    def entry(self) -> tuple[str, int]:
        return self.spec.key, self.sock.fileno()


def _address_key(sock: socket.socket) -> str:
    """A socket's address written as a --port/--path key (``127.0.0.1:80``, a path)."""
    addr = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        if isinstance(addr, bytes):
            addr = addr.decode(errors="replace")
        text = str(addr)
        return "@" + text[1:] if text.startswith("\0") else text
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"


def _transport(sock: socket.socket) -> Transport:
    if sock.family == socket.AF_UNIX:
        return Transport.UNIX
    return Transport.UDP if sock.type == socket.SOCK_DGRAM else Transport.TCP


def adopt_all(env: Mapping[str, str], taken: Iterable[str]) -> list[Bound]:
    """The sockets systemd passed (LISTEN_FDS, LISTEN_PID = us), kept at their fds.

    Each is exported under its LISTEN_FDNAMES name; under its address when it has no
    name, or the name is not unique or holds ``;`` or ``=`` (SERVER_STARTER_PORT's
    separators).
    """
    try:
        adopted = adopt_systemd(env)
    except OSError as exc:
        raise SupervisorError(
            f"cannot adopt the sockets systemd passed: {exc}"
        ) from None
    named = bool(env.get(ENV_LISTEN_FDNAMES))
    names = [name for name, _ in adopted]
    used = set(taken)
    bound: list[Bound] = []
    for name, sock in adopted:
        good = (
            named
            and name
            and ";" not in name
            and "=" not in name
            and names.count(name) == 1
            and name not in used
        )
        key = name if good else _address_key(sock)
        used.add(key)
        sock.set_inheritable(True)
        spec = PortSpec(key, _transport(sock), fd=sock.fileno())
        bound.append(Bound(spec, sock, adopted=True))
        log.info("adopted socket %s from systemd as %s", sock.fileno(), key)
    return bound


def _reserve_fds(fds: Iterable[int]) -> None:
    """Hold each fixed ``=FD`` number with /dev/null so nothing else is allocated there."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        for fd in fds:
            try:
                os.fstat(fd)
            except OSError:
                os.dup2(devnull, fd, inheritable=False)
    finally:
        os.close(devnull)


def _bind_error(spec: PortSpec, exc: OSError) -> SupervisorError:
    if spec.transport is Transport.UNIX:
        return SupervisorError(f"failed to listen to file {spec.key}: {exc}")
    kind = "udp " if spec.transport is Transport.UDP else ""
    return SupervisorError(f"failed to bind to {kind}{spec.key}: {exc}")


def bind_all(specs: Sequence[PortSpec], backlog: int) -> list[Bound]:
    """Bind every spec in order; move ``=FD`` ones to their number; all inheritable."""
    fixed = [s.fd for s in specs if s.fd is not None]
    seen: set[int] = set()
    for fd in fixed:
        if fd in seen:
            raise SupervisorError(
                f"file descriptor {fd} is requested by two --port values"
            )
        seen.add(fd)
    _reserve_fds(fixed)
    bound: list[Bound] = []
    try:
        for spec in specs:
            if spec.transport is Transport.UNIX and os.path.exists(spec.key):
                log.warning("removing existing socket file:%s", spec.key)
            try:
                sock = bind_spec(spec, backlog)
            except OSError as exc:
                raise _bind_error(spec, exc) from None
            if spec.fd is not None and spec.fd != sock.fileno():
                os.dup2(sock.fileno(), spec.fd, inheritable=True)
                sock.close()
                sock = socket.socket(fileno=spec.fd)
                log.info("socket is duplicated to file descriptor %d", spec.fd)
            sock.set_inheritable(True)
            bound.append(Bound(spec, sock))
    except BaseException:
        for b in bound:
            b.sock.close()
        raise
    return bound


def unlink_sockets(bound: Iterable[Bound]) -> None:
    """Remove the UNIX socket files we created (not the ones systemd passed)."""
    for b in bound:
        if b.spec.transport is Transport.UNIX and not b.adopted:
            try:
                os.unlink(b.spec.key)
            except OSError:
                pass

"""Listening sockets: bind them (start_server, standalone starman) or adopt inherited ones.

Raises OSError on failure and never prints: callers turn errors into one line.
Imports only the stdlib and ``start_server.common.portspec``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Iterator, Mapping

from start_server.common.portspec import (
    ENV_LISTEN_FDNAMES,
    ENV_LISTEN_FDS,
    ENV_LISTEN_PID,
    ENV_PORT,
    PortSpec,
    Transport,
    parse_server_starter_port,
)

__all__ = [
    "adopt_fd",
    "adopt_systemd",
    "bind_spec",
    "bind_tcp",
    "bind_unix",
    "listen_all",
    "server_ports",
]

# sd_listen_fds(3): passed descriptors start right after stdin/stdout/stderr.
SD_LISTEN_FDS_START = 3


def _has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM):
            return True
    except OSError:
        return False


def _resolve(
    host: str | None, port: int, dual_stack: bool
) -> tuple[int, tuple[str, int]]:
    """Pick the family and sockaddr the way Server::Starter does (IPv4 unless a colon)."""
    if host is None or host == "":
        if dual_stack and _has_ipv6():
            return socket.AF_INET6, ("::", port)
        return socket.AF_INET, ("0.0.0.0", port)
    if ":" in host:
        return socket.AF_INET6, (host, port)
    # Perl resolves a name with gethostbyname: IPv4 only, the first address. An ASCII
    # name goes as bytes: for str, getaddrinfo loads the idna codec (with unicodedata),
    # which start_server's long-lived supervisor would keep.
    name = host.encode("ascii") if host.isascii() else host
    infos = socket.getaddrinfo(name, port, socket.AF_INET, socket.SOCK_STREAM)
    address = infos[0][4]
    return socket.AF_INET, (str(address[0]), port)


def bind_tcp(
    host: str | None,
    port: int,
    backlog: int,
    *,
    v6only: bool | None = None,
    udp: bool = False,
    reuse_port: bool = False,
    dual_stack: bool = False,
) -> socket.socket:
    """Bind a TCP (listening) or UDP socket with SO_REUSEADDR; returned CLOEXEC.

    ``host`` None or "" means every interface: IPv4 0.0.0.0, or ``[::]`` with
    IPV6_V6ONLY=0 when ``dual_stack`` and IPv6 exists. A host with a colon is IPv6, any
    other host is resolved to IPv4 (as Perl's gethostbyname). Raises OSError.
    """
    try:
        family, sockaddr = _resolve(host, port, dual_stack)
    except socket.gaierror as exc:
        raise OSError(
            exc.errno, f"failed to resolve host {host!r}: {exc.strerror}"
        ) from None
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            if host in (None, "") and dual_stack:
                v6only = False
            if v6only is not None:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        sock.bind(sockaddr)
        if not udp:
            sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def _umask(mask: int | None) -> Iterator[None]:
    if mask is None:
        yield
        return
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def bind_unix(path: str, backlog: int, *, mode: int | None = None) -> socket.socket:
    """Listen on a UNIX stream socket at ``path``; returned CLOEXEC.

    A stale socket file at ``path`` is removed first; any other kind of file is left alone
    and OSError(EEXIST) is raised. ``mode`` sets the permissions at creation (through the
    umask, so there is no window with wider ones); None keeps the process umask.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise FileExistsError(17, "File exists and is not a socket", path)
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _umask(None if mode is None else (0o777 & ~mode)):
            sock.bind(path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_spec(spec: PortSpec, backlog: int) -> socket.socket:
    """Bind what one start_server ``--port``/``--path`` spec asks for (Perl's options).

    IPv6 literals get IPV6_V6ONLY=1 and UNIX sockets mode 0777, as Server::Starter does.
    """
    if spec.transport is Transport.UNIX:
        assert spec.path is not None
        return bind_unix(spec.path, backlog, mode=0o777)
    assert spec.port is not None
    return bind_tcp(
        spec.host,
        spec.port,
        backlog,
        v6only=True if spec.ipv6 else None,
        udp=spec.transport is Transport.UDP,
    )


def adopt_fd(fd: int) -> socket.socket:
    """Wrap an inherited descriptor; the kernel tells its family and type. Raises OSError."""
    return socket.socket(fileno=fd)


def server_ports(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """``{key: fd}`` from SERVER_STARTER_PORT (Perl's server_ports()); ``{}`` when unset."""
    environ = os.environ if env is None else env
    return dict(parse_server_starter_port(environ.get(ENV_PORT, "")))


def listen_all(env: Mapping[str, str] | None = None) -> list[tuple[str, socket.socket]]:
    """``[(key, socket)]`` for every SERVER_STARTER_PORT entry, in order; ``[]`` when unset."""
    environ = os.environ if env is None else env
    return [
        (key, adopt_fd(fd))
        for key, fd in parse_server_starter_port(environ.get(ENV_PORT, ""))
    ]


def adopt_systemd(
    env: Mapping[str, str] | None = None, pid: int | None = None
) -> list[tuple[str, socket.socket]]:
    """Sockets passed by systemd socket activation (LISTEN_FDS from fd 3), made CLOEXEC.

    Only when LISTEN_PID names this process; names from LISTEN_FDNAMES, else ``fd:N``.
    Returns ``[]`` otherwise. Does not modify the environment.
    """
    environ = os.environ if env is None else env
    want_pid = os.getpid() if pid is None else pid
    try:
        if int(environ.get(ENV_LISTEN_PID, "")) != want_pid:
            return []
        count = int(environ.get(ENV_LISTEN_FDS, ""))
    except ValueError:
        return []
    names = environ.get(ENV_LISTEN_FDNAMES, "").split(":")
    adopted: list[tuple[str, socket.socket]] = []
    for i in range(max(count, 0)):
        fd = SD_LISTEN_FDS_START + i
        name = names[i] if i < len(names) and names[i] else f"fd:{fd}"
        sock = adopt_fd(fd)
        sock.set_inheritable(False)
        adopted.append((name, sock))
    return adopted

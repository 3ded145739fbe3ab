"""Pure text formats of Server::Starter: the ``--port``/``--path`` specs and the env values.

Rule 1: no I/O, no sockets opened, no name resolution; only parsing and formatting.
Rule 2: every environment variable name the two programs share is a constant here.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable

from start_server.common.record import Record

__all__ = [
    "ENV_GENERATION",
    "ENV_LISTEN_FDNAMES",
    "ENV_LISTEN_FDS",
    "ENV_LISTEN_PID",
    "ENV_NOTIFY_SOCKET",
    "ENV_PORT",
    "MAX_UNIX_PATH",
    "PortSpec",
    "PortSpecError",
    "Transport",
    "format_server_starter_port",
    "parse_path_spec",
    "parse_port_spec",
    "parse_server_starter_port",
]

ENV_PORT = "SERVER_STARTER_PORT"
ENV_GENERATION = "SERVER_STARTER_GENERATION"
ENV_LISTEN_FDS = "LISTEN_FDS"
ENV_LISTEN_PID = "LISTEN_PID"
ENV_LISTEN_FDNAMES = "LISTEN_FDNAMES"
ENV_NOTIFY_SOCKET = "NOTIFY_SOCKET"

# sockaddr_un.sun_path is 108 bytes on Linux, one of which is the terminating NUL.
MAX_UNIX_PATH = 107

# The two regexes of Server::Starter 0.35 start_server(), same groups, same leniency.
_BARE_PORT = re.compile(r"\s*(u?)(\d+)(?:\s*=(\d+))?\s*")
_HOST_PORT = re.compile(
    r"\s*(?:\[\s*|)([^\]]*?)\s*(?:\]\s*|):\s*(u?)(\d+)(?:\s*=(\d+))?\s*"
)

PORT_EXPECTED = "expected PORT, HOST:PORT or [IPV6]:PORT, optionally prefixed by u (UDP) and followed by =FD"


class PortSpecError(ValueError):
    """A bad ``--port``/``--path`` value; ``reason`` is the text without the quoted input."""

    def __init__(self, option: str, text: str, reason: str) -> None:
        self.option = option
        self.text = text
        self.reason = reason
        super().__init__(f"invalid {option} value {text!r}: {reason}")


class Transport(enum.Enum):
    """What kind of socket a spec asks for."""

    TCP = "tcp"
    UDP = "udp"
    UNIX = "unix"


class PortSpec(Record):
    """One ``--port`` or ``--path`` argument, parsed.

    ``key`` is the name the child sees in SERVER_STARTER_PORT, exactly as Perl builds it
    (``80``, ``localhost:80``, ``[::1]:80``, or the socket path). ``host`` is None for a
    bare port (Perl binds 0.0.0.0 then); for IPv6 it is the address without brackets.
    ``fd`` is the fixed descriptor number of the ``=FD`` form.
    """

    __slots__ = ("key", "transport", "host", "port", "path", "fd")

    def __init__(
        self,
        key: str,
        transport: Transport,
        host: str | None = None,
        port: int | None = None,
        path: str | None = None,
        fd: int | None = None,
    ) -> None:
        self.key = key
        self.transport = transport
        self.host = host
        self.port = port
        self.path = path
        self.fd = fd

    @property
    def ipv6(self) -> bool:
        """True when the host is an IPv6 literal (Perl's test: it contains a colon)."""
        return self.host is not None and ":" in self.host

    def format(self) -> str:
        """The command-line text that parses back to this spec (``--port``/``--path`` value)."""
        if self.transport is Transport.UNIX:
            return self.key
        head, sep, port_text = self.key.rpartition(":")
        udp = "u" if self.transport is Transport.UDP else ""
        fd = "" if self.fd is None else f"={self.fd}"
        return f"{head}{sep}{udp}{port_text}{fd}"

    def describe(self) -> str:
        """Human text for errors: ``127.0.0.1:80``, ``udp 5353``, ``unix /tmp/s``."""
        if self.transport is Transport.UNIX:
            return f"unix socket {self.key}"
        if self.transport is Transport.UDP:
            return f"udp {self.key}"
        return self.key


def _port_number(text: str, raw: str) -> int:
    port = int(text)
    if port > 65535:
        raise PortSpecError("--port", raw, f"port {port} is out of range 0-65535")
    return port


def parse_port_spec(text: str) -> PortSpec:
    """Parse a ``--port`` value with Perl's rules; raise PortSpecError quoting the input."""
    m = _BARE_PORT.fullmatch(text)
    if m:
        udp, port_text, fd_text = m.groups()
        return PortSpec(
            key=port_text,
            transport=Transport.UDP if udp else Transport.TCP,
            host=None,
            port=_port_number(port_text, text),
            fd=None if fd_text is None else int(fd_text),
        )
    m = _HOST_PORT.fullmatch(text)
    if not m:
        raise PortSpecError("--port", text, PORT_EXPECTED)
    host, udp, port_text, fd_text = m.groups()
    if host == "":
        # Perl: gethostbyname("") fails with "failed to resolve host:".
        raise PortSpecError("--port", text, f"empty host ({PORT_EXPECTED})")
    key = f"[{host}]:{port_text}" if ":" in host else f"{host}:{port_text}"
    return PortSpec(
        key=key,
        transport=Transport.UDP if udp else Transport.TCP,
        host=host,
        port=_port_number(port_text, text),
        fd=None if fd_text is None else int(fd_text),
    )


def parse_path_spec(text: str) -> PortSpec:
    """Parse a ``--path`` value (a UNIX socket path); raise PortSpecError quoting the input."""
    if text == "":
        raise PortSpecError("--path", text, "expected a file system path")
    if ";" in text or "=" in text:
        # The child splits SERVER_STARTER_PORT on ';' and '=': such a key cannot round trip.
        raise PortSpecError("--path", text, "a path may not contain ';' or '='")
    if len(text.encode()) > MAX_UNIX_PATH:
        raise PortSpecError("--path", text, f"longer than {MAX_UNIX_PATH} bytes")
    return PortSpec(key=text, transport=Transport.UNIX, path=text)


def parse_server_starter_port(value: str) -> list[tuple[str, int]]:
    """Parse SERVER_STARTER_PORT into ordered ``(key, fd)`` pairs, as Perl's server_ports().

    Split on ``;`` then on the first ``=``. Empty entries are skipped (Perl's split drops
    them too). Raise ValueError on an entry without ``=`` or with a non-numeric fd.
    """
    pairs: list[tuple[str, int]] = []
    for entry in value.split(";"):
        if entry == "":
            continue
        key, sep, fd_text = entry.partition("=")
        if not sep:
            raise ValueError(f"malformed {ENV_PORT} entry {entry!r}: expected KEY=FD")
        if not re.fullmatch(r"[0-9]+", fd_text):
            raise ValueError(
                f"malformed {ENV_PORT} entry {entry!r}: fd {fd_text!r} is not a number"
            )
        pairs.append((key, int(fd_text)))
    return pairs


def format_server_starter_port(entries: Iterable[tuple[str, int]]) -> str:
    """Format ``(key, fd)`` pairs as SERVER_STARTER_PORT (``KEY=FD`` joined by ``;``)."""
    parts = []
    for key, fd in entries:
        if key == "" or ";" in key or "=" in key:
            raise ValueError(f"cannot put key {key!r} in {ENV_PORT}")
        if fd < 0:
            raise ValueError(f"cannot put fd {fd} in {ENV_PORT}")
        parts.append(f"{key}={fd}")
    return ";".join(parts)

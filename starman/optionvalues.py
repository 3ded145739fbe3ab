"""The value types and converters of starman's options: text in, value out or ValueError.

``ListenSpec`` and ``parse_listen`` for --listen; ports, --server, --loader, --path, IP lists.
Pure: imports only ``start_server.common``.
"""

from __future__ import annotations

import re

from start_server.common.options import to_float
from start_server.common.record import Record

__all__ = [
    "DEFAULT_PORT",
    "ListenSpec",
    "parse_listen",
    "to_ip_list",
    "to_loader",
    "to_mount_path",
    "to_port",
    "to_server",
]


class ListenSpec(Record):
    """One ``--listen`` entry: a TCP ``host``/``port`` or a UNIX ``path``.

    ``host`` None means all interfaces (dual-stack where IPv6 exists).
    """

    __slots__ = ("host", "port", "path", "ssl")

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        path: str | None = None,
        ssl: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.path = path
        self.ssl = ssl

    def describe(self) -> str:
        """As a user would write it: ``127.0.0.1:5000``, ``[::1]:80``, ``unix:/x.sock``."""
        if self.path is not None:
            return "unix:" + self.path
        host = self.host or ""
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}" + (":ssl" if self.ssl else "")


# The port of a --listen default and of --host without --port (Perl Starman's).
DEFAULT_PORT = 5000

_LISTEN_EXPECTED = (
    "expected HOST:PORT, :PORT, [IPV6]:PORT (optionally :ssl), unix:PATH or a PATH"
)


# An address without a port: an IPv4 address, localhost, or a bracketed IPv6 address.
_BARE_HOST = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}|localhost|\[[0-9A-Fa-f:.%]+\]")


def _refuse_bare_port_or_host(raw: str) -> None:
    """A colon-less value that a user meant as a port or an address: say which spelling."""
    if re.fullmatch(r"[0-9]+", raw):
        raise ValueError(
            f"did you mean :{raw}? (a port needs its colon; unix:{raw} names a socket file)"
        )
    if _BARE_HOST.fullmatch(raw):
        file_hint = "" if raw.startswith("[") else f"; unix:{raw} names a socket file"
        raise ValueError(
            f"did you mean {raw}:{DEFAULT_PORT}? (an address needs its port{file_hint})"
        )


def _is_ipv6(text: str) -> bool:
    import ipaddress  # only for this error

    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _port(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", text) or int(text) > 65535:
        raise ValueError(_LISTEN_EXPECTED)
    return int(text)


def parse_listen(text: str) -> ListenSpec:
    """Parse a ``--listen`` value; raise ValueError saying what was expected."""
    raw = text.strip()
    if not raw:
        raise ValueError(_LISTEN_EXPECTED)
    if raw.startswith("unix:"):
        if len(raw) == len("unix:"):
            raise ValueError(_LISTEN_EXPECTED)
        return ListenSpec(path=raw[len("unix:") :])
    # Perl's rule: no colon means a UNIX socket path; but not a port or an address whose
    # colon was forgotten (docs/migrating.md).
    _refuse_bare_port_or_host(raw)
    if ":" not in raw:
        return ListenSpec(path=raw)
    ssl = False
    if raw.endswith(":ssl"):
        ssl = True
        raw = raw[: -len(":ssl")]
    m = re.fullmatch(r"\[([0-9A-Fa-f:.%a-zA-Z]+)\]:(\w+)", raw)
    if m:
        return ListenSpec(host=m.group(1), port=_port(m.group(2)), ssl=ssl)
    host, sep, port = raw.rpartition(":")
    if not sep or ":" in host:
        if _is_ipv6(text.strip()):
            raise ValueError(
                "an IPv6 address goes in brackets, then its port:"
                f" [IPV6]:PORT, e.g. [::1]:{DEFAULT_PORT}"
            )
        raise ValueError(_LISTEN_EXPECTED)
    return ListenSpec(host=host or None, port=_port(port), ssl=ssl)


def to_port(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", text.strip()) or int(text) > 65535:
        raise ValueError("expected a port number 0-65535")
    return int(text)


def to_server(text: str) -> str:
    if text.strip().lower() != "starman":
        raise ValueError("only 'Starman' is supported")
    return "Starman"


_LOADERS = {"delayed": "Delayed", "plack::loader": "Plack::Loader"}


def to_loader(text: str) -> str:
    name = _LOADERS.get(text.strip().lower())
    if name is None:
        raise ValueError(
            "expected Delayed or Plack::Loader (= --preload-app); Shotgun and Restarter are not supported, use kill -HUP"
        )
    return name


def to_mount_path(text: str) -> str:
    if not text.startswith("/"):
        raise ValueError("expected a path starting with '/'")
    return text.rstrip("/")


def to_ip_list(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def to_positive_float(text: str) -> float:
    """A decimal number > 0 (a megabyte or second count that must mean something)."""
    value = to_float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("expected a number > 0")
    return value

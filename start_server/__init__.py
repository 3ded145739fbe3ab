"""Server::Starter for Python: the superdaemon and the child-side API.

Children of ``start_server`` call :func:`server_ports` (Perl's ``server_ports()``) or
:func:`listen_all` (ready socket objects) to adopt the listening sockets.
"""

from __future__ import annotations

import socket

__version__ = "0.1.0"

__all__ = ["__version__", "listen_all", "server_ports"]


def server_ports() -> dict[str, int]:
    """Return ``{key: fd}`` from ``SERVER_STARTER_PORT``, as Perl's server_ports()."""
    from start_server.common.listen import server_ports as _server_ports

    return _server_ports()


def listen_all() -> list[tuple[str, socket.socket]]:
    """Return ``[(key, socket)]`` for every inherited fd, family and type detected."""
    from start_server.common.listen import listen_all as _listen_all

    return _listen_all()

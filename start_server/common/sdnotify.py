"""The sd_notify protocol, client side: tell a supervisor ``READY=1`` and friends.

A supervisor (systemd, or start_server for its children) names a datagram socket in
``NOTIFY_SOCKET``; a child sends newline-separated ``KEY=VALUE`` assignments to it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

# Declared with the other shared variable names; importable from here as well.
from start_server.common.portspec import ENV_NOTIFY_SOCKET

__all__ = ["ENV_NOTIFY_SOCKET", "notify", "notify_address"]


def notify_address(env: Mapping[str, str] | None = None) -> str | None:
    """The socket address from ``NOTIFY_SOCKET`` (``@name`` is abstract), or None."""
    raw = (os.environ if env is None else env).get(ENV_NOTIFY_SOCKET, "")
    if not raw or not (raw.startswith("/") or raw.startswith("@")):
        return None
    return "\0" + raw[1:] if raw.startswith("@") else raw


def notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` (e.g. ``"READY=1\\nMAINPID=42"``); False when there is no supervisor.

    Never raises for a missing or vanished supervisor: readiness reporting must not be
    able to take the server down.
    """
    address = notify_address(env)
    if address is None:
        return False
    try:
        with socket.socket(
            socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
        ) as s:
            s.sendto(message.encode("utf-8"), address)
    except OSError:
        return False
    return True

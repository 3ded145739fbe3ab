"""Moving an idle keep-alive connection from a retiring worker to a live one.

The master makes one AF_UNIX datagram socketpair before its first fork (``handover_pair``);
every worker inherits both ends. A live worker polls the receiving end like a listener
(one worker takes each message); a retiring worker closes its copy of that end, then sends
each idle connection's descriptor (SCM_RIGHTS) with what the receiver must know about it.
See "Seamless recycling" in docs/architecture.md.

Only connections with nothing read and not yet answered move (a request in progress
finishes where it is, then moves), so a message carries no request bytes: only the
connection's request count (for --max-keepalive-reqs).
"""

from __future__ import annotations

import socket
import struct

__all__ = ["Handover", "handover_pair", "receive", "send"]

# Version byte + the connection's request count so far.
_MESSAGE = struct.Struct("!BI")
_VERSION = 1


class Handover:
    """A worker's two ends of the master's socketpair: ``inbox`` (connections to adopt)
    and ``outbox`` (where a retiring worker sends its own)."""

    __slots__ = ("inbox", "outbox")

    def __init__(self, inbox: socket.socket, outbox: socket.socket) -> None:
        self.inbox = inbox
        self.outbox = outbox


def handover_pair() -> Handover:
    """The master's pair, made once before the first fork; both ends non-blocking."""
    outbox, inbox = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    inbox.setblocking(False)
    outbox.setblocking(False)
    return Handover(inbox, outbox)


def send(outbox: socket.socket, sock: socket.socket, nreq: int) -> None:
    """Send ``sock``'s descriptor (the caller then closes its own copy).

    Raises BlockingIOError while the receivers' queue is full, OSError otherwise.
    """
    socket.send_fds(outbox, [_MESSAGE.pack(_VERSION, nreq)], [sock.fileno()])


def receive(inbox: socket.socket) -> tuple[socket.socket, int] | None:
    """One connection taken from ``inbox`` and its request count; None when none was
    waiting. Raises OSError when a message came but its descriptor could not (the
    receiver's descriptor limit: the kernel then drops that connection)."""
    try:
        data, fds, flags, _addr = socket.recv_fds(inbox, _MESSAGE.size, 1)
    except BlockingIOError:
        return None
    if flags & socket.MSG_CTRUNC or len(fds) != 1 or len(data) != _MESSAGE.size:
        for fd in fds:
            _close_fd(fd)
        raise OSError("a moved connection arrived without its descriptor")
    version, nreq = _MESSAGE.unpack(data)
    if version != _VERSION:
        _close_fd(fds[0])
        raise OSError(f"a moved connection arrived in an unknown format {version}")
    sock = socket.socket(fileno=fds[0])
    return sock, nreq


def _close_fd(fd: int) -> None:
    try:
        socket.close(fd)
    except OSError:
        pass

"""TLS for starman's TCP listeners (``--enable-ssl``, ``--ssl-cert``, ``--ssl-key``, ``:ssl``).

Imported only when TLS is configured (``import ssl`` is large: docs/benchmarks.md).
The master builds one server context before forking (so the key file is read once, before
privileges are dropped, and a bad certificate fails at start-up); each worker wraps the
sockets it accepts with ``do_handshake_on_connect=False`` and drives the handshake from its
event loop under ``--read-timeout`` (docs/architecture.md §2), so a slow or silent TLS client costs an
fd, never a worker.
"""

from __future__ import annotations

import select
import ssl

__all__ = ["WOULD_BLOCK", "TLSError", "handshake_step", "recv", "server_context"]

# A non-blocking send or recv that would block, on a plain or a TLS socket.
WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class TLSError(Exception):
    """The certificate or key cannot be used: a one-line message for the user."""


def server_context(cert: str, key: str | None) -> ssl.SSLContext:
    """A server-side context: TLS 1.2+, no compression, HTTP/1.1 ALPN, ``cert``/``key`` loaded.

    Raises:
        TLSError: unreadable or mismatched certificate/key files.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_alpn_protocols(["http/1.1"])
    try:
        ctx.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise TLSError(f"cannot read {exc.filename!r}: {exc.strerror}") from None
    except PermissionError as exc:
        raise TLSError(f"cannot read {exc.filename!r}: {exc.strerror}") from None
    except ssl.SSLError as exc:
        which = f"--ssl-cert {cert!r}" + (f" / --ssl-key {key!r}" if key else "")
        raise TLSError(
            f"cannot load the TLS certificate/key ({which}): {exc.reason or exc}"
        ) from None
    return ctx


def handshake_step(sock: ssl.SSLSocket) -> int:
    """Advance a non-blocking server handshake.

    Returns 0 when it is complete, else the epoll event to wait for (``EPOLLIN`` or
    ``EPOLLOUT``). Raises ``OSError`` (``ssl.SSLError`` included) when it failed: the
    caller closes the connection without a word (there is no HTTP yet to answer with).
    """
    try:
        sock.do_handshake()
    except ssl.SSLWantReadError:
        return select.EPOLLIN
    except ssl.SSLWantWriteError:
        return select.EPOLLOUT
    return 0


def recv(sock: ssl.SSLSocket, size: int) -> bytes | None:
    """Up to ``size`` bytes of plaintext; ``None`` if it would block, ``b""`` at EOF
    (a close_notify counts as EOF). Raises ``OSError`` when the connection failed."""
    try:
        return sock.recv(size)
    except WOULD_BLOCK:
        return None
    except ssl.SSLZeroReturnError:
        return b""

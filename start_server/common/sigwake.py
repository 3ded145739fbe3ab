"""Signals delivered to a main loop through a wakeup fd: handlers only record, the loop acts.

``signal.set_wakeup_fd`` makes CPython write each caught signal's number to a non-blocking
socket; the loop reads the numbers back, so no Python-side queue and no work in handlers.
"""

from __future__ import annotations

import selectors
import signal
import socket
from collections.abc import Iterable
from types import FrameType

__all__ = ["SignalWaker"]


def _record_only(signum: int, frame: FrameType | None) -> None:
    """Do nothing: the wakeup fd already carries the signal number to the loop."""


class SignalWaker:
    """Turn a set of signals into readable bytes on a socket the main loop can wait on.

    Methods for the caller: ``fileno()`` (register it in a selector), ``drain()`` (the signals
    received since the last call, in arrival order), ``wait(timeout)`` (block until a signal or
    the timeout), ``close()`` (restore the previous handlers and wakeup fd) and
    ``reset_in_child()`` (after fork: default handlers, no wakeup fd, sockets closed).
    """

    def __init__(self, signals: Iterable[signal.Signals]) -> None:
        self._signals = tuple(signals)
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(
            self._wsock.fileno(), warn_on_full_buffer=False
        )
        self._old_handlers: dict[signal.Signals, object] = {}
        for sig in self._signals:
            self._old_handlers[sig] = signal.signal(sig, _record_only)
            # Let a blocking syscall (e.g. the app's sleep) finish instead of raising EINTR
            # paths into it: PEP 475 retries anyway, this just avoids needless wakeups.
            signal.siginterrupt(sig, False)
        self._selector: selectors.BaseSelector | None = None

    def fileno(self) -> int:
        """The fd that becomes readable when a signal arrives."""
        return self._rsock.fileno()

    def drain(self) -> list[signal.Signals]:
        """Return the signals received since the last call (may be empty); never blocks."""
        got: list[signal.Signals] = []
        while True:
            try:
                data = self._rsock.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            for num in data:
                try:
                    got.append(signal.Signals(num))
                except ValueError:
                    continue
        return got

    def wait(self, timeout: float | None) -> list[signal.Signals]:
        """Block until a signal arrives or ``timeout`` seconds pass (None: forever)."""
        if self._selector is None:
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._rsock, selectors.EVENT_READ)
        if timeout is not None and timeout < 0:
            timeout = 0
        self._selector.select(timeout)
        return self.drain()

    def close(self) -> None:
        """Restore the handlers and wakeup fd that were in place before, then close."""
        signal.set_wakeup_fd(self._old_fd)
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]  # saved from signal.signal
        self._close_sockets()

    def reset_in_child(self) -> None:
        """After fork: default dispositions, no wakeup fd, this waker's sockets closed."""
        signal.set_wakeup_fd(-1)
        for sig in self._signals:
            signal.signal(sig, signal.SIG_DFL)
        self._close_sockets()

    def _close_sockets(self) -> None:
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        self._rsock.close()
        self._wsock.close()

    def __enter__(self) -> SignalWaker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

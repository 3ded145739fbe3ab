"""start_server's own messages: one line each on stderr, filtered by ``--log-level``.

The Perl original prints bare lines (``start_server (pid:1) starting now...``); so do
we, without the logging package, which the long-lived supervisor would keep loaded for
its whole life (its memory budget: docs/benchmarks.md). The calls keep logging's shape: ``log.info("spawned %d", pid)``.
"""

from __future__ import annotations

import sys

__all__ = ["LEVELS", "Logger", "log"]

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Logger:
    """Writes ``message % args`` and a newline to the current sys.stderr at once."""

    def __init__(self, level: str = "info") -> None:
        self.threshold = LEVELS[level]

    def set_level(self, level: str) -> None:
        """``debug``, ``info``, ``warning`` or ``error`` (case-insensitive)."""
        self.threshold = LEVELS[level.lower()]

    def _emit(self, level: int, message: str, args: tuple[object, ...]) -> None:
        if level < self.threshold:
            return
        try:
            sys.stderr.write((message % args if args else message) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # stderr closed or gone (EPIPE to a dead log pipe): keep supervising

    def debug(self, message: str, *args: object) -> None:
        self._emit(10, message, args)

    def info(self, message: str, *args: object) -> None:
        self._emit(20, message, args)

    def warning(self, message: str, *args: object) -> None:
        self._emit(30, message, args)

    def error(self, message: str, *args: object) -> None:
        self._emit(40, message, args)


# The one logger of start_server's supervisor (supervisor.py and readiness.py).
log = Logger()

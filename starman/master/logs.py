"""The master's log handlers: files that USR1 reopens after a rename, and fd 2 redirection
(--error-log), keeping the original standard error for the fatal line.

Imports nothing of ours: cli.py installs these handlers, the master's loop reopens them.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = [
    "ReopeningFileHandler",
    "StderrHandler",
    "console_write",
    "forget_console",
    "open_error_log",
    "redirect_stderr",
    "reopen_log_handlers",
]


class ReopeningFileHandler(logging.FileHandler):
    """A FileHandler whose ``reopen()`` (USR1) starts a new file after a rename."""

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in typeshed
    """Logs to fd 2; ``reopen()`` re-points fd 2 at --error-log after a rename (USR1)."""

    def __init__(self, error_log: str | None = None) -> None:
        super().__init__(sys.stderr)
        self.error_log = error_log

    def reopen(self) -> None:
        if self.error_log is not None:
            redirect_stderr(self.error_log)


def redirect_stderr(path: str) -> None:
    """Point fd 2 (and so every child's stderr) at ``path``, appending. Raises OSError
    (fd 2 unchanged)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        sys.stderr.flush()
        os.dup2(fd, 2)
    finally:
        os.close(fd)


# While fd 2 points at --error-log: the standard error the program started with, where
# cli.py also writes its one fatal line, so that a failed start shows where it was typed.
_console: list[int] = []


def open_error_log(path: str) -> None:
    """Send everything after option parsing to --error-log (fd 2), keeping the original
    standard error for ``console_write``. Raises OSError (fd 2 unchanged)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        log_stat, err_stat = os.fstat(fd), os.fstat(2)
        same = (log_stat.st_dev, log_stat.st_ino) == (err_stat.st_dev, err_stat.st_ino)
        if not _console and not same:
            _console.append(os.dup(2))
        sys.stderr.flush()
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def console_write(text: str) -> None:
    """Write ``text`` to the original standard error, if --error-log replaced it."""
    for fd in _console:
        try:
            os.write(fd, text.encode(errors="replace"))
        except OSError:
            pass


def forget_console() -> None:
    """A daemon has no console: close the original standard error."""
    while _console:
        os.close(_console.pop())


def reopen_log_handlers() -> None:
    """Call ``reopen()`` on every logging handler that has one."""
    for name in ("", "starman.access"):
        for handler in logging.getLogger(name).handlers:
            reopen = getattr(handler, "reopen", None)
            if callable(reopen):
                reopen()

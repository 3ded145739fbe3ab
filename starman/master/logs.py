"""The master's log handlers: files that USR1 reopens after a rename, and fd 2 redirection.

Imports nothing of ours: cli.py installs these handlers, the master's loop reopens them.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = [
    "ReopeningFileHandler",
    "StderrHandler",
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
    """Point fd 2 (and so every child's stderr) at ``path``, appending."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        sys.stderr.flush()
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def reopen_log_handlers() -> None:
    """Call ``reopen()`` on every logging handler that has one."""
    for name in ("", "starman.access"):
        for handler in logging.getLogger(name).handlers:
            reopen = getattr(handler, "reopen", None)
            if callable(reopen):
                reopen()

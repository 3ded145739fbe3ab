"""Why the workers could not load the app, said once: each worker that fails writes its
report to a file shared by the whole pool, and the master reads one report when the pool
policy says a failure is news (``pool.AppLoadFailed``).

Without ``--preload-app`` every worker imports the app itself, so a broken app fails in
all of them at once: the master shows one report, naming the worker that wrote it, and
not one per worker. The file is anonymous (memfd, or an unlinked temporary file), made
by the master before the first fork. Every worker inherits the same open file, so the
lock is a POSIX record lock (``lockf``: held per process), not ``flock`` (held per open
file, so shared by all the forked writers).
"""

from __future__ import annotations

import fcntl
import json
import os

from start_server.common.record import Record

__all__ = ["LoadReport", "LoadReports"]


class LoadReport(Record):
    """One worker's failure: its pid, the one-line message, and the user's traceback
    (empty when starman itself found the problem: no file, no attribute, not callable)."""

    __slots__ = ("pid", "message", "details")

    def __init__(self, pid: int, message: str, details: str = "") -> None:
        self.pid = pid
        self.message = message
        self.details = details


def _anonymous_file() -> int | None:
    create = getattr(os, "memfd_create", None)
    if create is not None:
        try:
            fd: int = create("starman-app-errors", os.MFD_CLOEXEC)
            return fd
        except OSError:
            pass
    # Imported only here: tempfile is large, and every worker would share it.
    import tempfile

    try:
        with tempfile.TemporaryFile() as f:
            return os.dup(f.fileno())
    except OSError:
        return None


class LoadReports:
    """The shared file: ``write`` in a worker, ``take`` in the master."""

    def __init__(self) -> None:
        self.fd = _anonymous_file()

    def write(self, report: LoadReport) -> bool:
        """Append ``report``; False if there is no file (the worker logs it itself)."""
        if self.fd is None:
            return False
        data = (
            json.dumps([report.pid, report.message, report.details]) + "\n"
        ).encode()
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)
            try:
                end = os.fstat(self.fd).st_size
                while data:
                    n = os.pwrite(self.fd, data, end)
                    data = data[n:]
                    end += n
            finally:
                fcntl.lockf(self.fd, fcntl.LOCK_UN)
        except OSError:
            return False
        return True

    def take(self, pid: int) -> LoadReport | None:
        """The report of worker ``pid``, else the first one written; the file is emptied
        (the others told the same story)."""
        if self.fd is None:
            return None
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)
            try:
                data = os.pread(self.fd, os.fstat(self.fd).st_size, 0)
                os.ftruncate(self.fd, 0)
            finally:
                fcntl.lockf(self.fd, fcntl.LOCK_UN)
        except OSError:
            return None
        reports = []
        for line in data.decode(errors="replace").splitlines():
            try:
                who, message, details = json.loads(line)
                reports.append(LoadReport(int(who), str(message), str(details)))
            except (ValueError, TypeError):
                continue
        for report in reports:
            if report.pid == pid:
                return report
        return reports[0] if reports else None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

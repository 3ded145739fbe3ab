"""Client modes: ``--restart`` (HUP, then wait for the new generation alone) and ``--stop``.

The only module of start_server that imports psutil, to tell a live server from a stale
pid file (dead pid, or a pid reused by another process). Raises ControlError.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time

import psutil

from start_server.common.proc import PidFileError, read_pid_file
from start_server.config import Settings
from start_server.readiness import read_failure

__all__ = ["ControlError", "read_generations", "restart", "stop"]

POLL = 0.05  # seconds between two looks at the status file or the pid file lock


class ControlError(Exception):
    """--restart/--stop failed; the message says why."""


def read_generations(path: str) -> dict[int, int]:
    """``{generation: pid}`` from a status file (``GEN:PID`` lines). Raises ControlError."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        raise ControlError(
            f"status file {path!r} does not exist (is the server running with --status-file?)"
        ) from None
    except OSError as exc:
        raise ControlError(
            f"cannot read status file {path!r}: {exc.strerror or exc}"
        ) from None
    gens: dict[int, int] = {}
    for line in text.splitlines():
        head, _, tail = line.partition(":")
        if head.isdigit():
            gens[int(head)] = int(tail) if tail.strip().isdigit() else 0
    return gens


def _lock_is_held(path: str) -> bool:
    """True when some process holds the pid file's flock (a running start_server does)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def live_server_pid(pid_file: str) -> int:
    """The pid of the running start_server named by ``pid_file``; ControlError if stale."""
    try:
        pid = read_pid_file(pid_file)
    except PidFileError as exc:
        raise ControlError(str(exc)) from None
    try:
        proc = psutil.Process(pid)
        created = proc.create_time()
        alive = proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        raise ControlError(
            f"pid file {pid_file!r} is stale: process {pid} is not running"
        ) from None
    except psutil.Error as exc:
        raise ControlError(f"cannot inspect process {pid}: {exc}") from None
    if not alive:
        raise ControlError(f"pid file {pid_file!r} is stale: process {pid} has exited")
    try:
        written = os.stat(pid_file).st_mtime
    except OSError as exc:
        raise ControlError(
            f"cannot stat pid file {pid_file!r}: {exc.strerror}"
        ) from None
    # A pid reused by a newer process: it was born after the file was written.
    if created > written + 1.0:
        raise ControlError(
            f"pid file {pid_file!r} is stale: pid {pid} is now another process "
            f"({proc.name()!r}, started after the file was written)"
        )
    # A running start_server (ours or Perl's) holds an exclusive flock on its pid file.
    if not _lock_is_held(pid_file):
        raise ControlError(
            f"pid file {pid_file!r} is stale: no running server holds its lock "
            f"(pid {pid} is {proc.name()!r})"
        )
    return pid


def _send(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except OSError as exc:
        raise ControlError(
            f"failed to send {sig.name} to the server process {pid}: {exc.strerror}"
        ) from None


def _describe(gens: dict[int, int]) -> str:
    return ",".join(f"{g}:{p}" for g, p in sorted(gens.items())) or "empty"


def restart(settings: Settings) -> int:
    """Send HUP and wait until a generation newer than every one before is alone."""
    assert settings.pid_file and settings.status_file
    pid = live_server_pid(settings.pid_file)
    before = read_generations(settings.status_file)
    if not before:
        raise ControlError(
            f"no active process found in the status file {settings.status_file!r}"
        )
    # A rolled-back generation (one held to READY=1) used up a number without reaching the
    # status file: a failure recorded from now on with a newer number is this restart's.
    failed_before = read_failure(settings.status_file)
    last_failed = failed_before[0] if failed_before else 0
    target = max(max(before), last_failed) + 1
    _send(pid, signal.SIGHUP)
    timeout = settings.wait_timeout
    deadline = None if timeout == 0 else time.monotonic() + timeout
    gens = before
    while True:
        gens = read_generations(settings.status_file)
        # Perl waits for exactly max+1; a failed start uses up generation numbers, so we
        # accept any newer generation once it is the only one.
        if len(gens) == 1 and max(gens) >= target:
            return 0
        failure = read_failure(settings.status_file)
        if failure is not None and failure[0] >= target:
            gen, gen_pid, reason = failure
            raise ControlError(
                f"restart failed: new generation {gen} (pid {gen_pid}) did not start: "
                f"{reason}"
            )
        if not psutil.pid_exists(pid):
            raise ControlError(
                f"start_server (pid {pid}) exited during the restart (status: {_describe(gens)})"
            )
        if deadline is not None and time.monotonic() >= deadline:
            raise ControlError(
                f"restart did not complete within {timeout:g}s: waiting for generation "
                f">= {target} alone, status file shows {_describe(gens)}"
            )
        time.sleep(POLL)


def stop(settings: Settings) -> int:
    """Send TERM and wait until start_server released its pid file (it has exited)."""
    assert settings.pid_file
    pid = live_server_pid(settings.pid_file)
    try:
        fd = os.open(settings.pid_file, os.O_RDONLY)
    except OSError as exc:
        raise ControlError(
            f"cannot open pid file {settings.pid_file!r}: {exc.strerror}"
        ) from None
    try:
        sys.stderr.write(
            f"stop_server (pid:{os.getpid()}) stopping now (pid:{pid})...\n"
        )
        sys.stderr.flush()
        _send(pid, signal.SIGTERM)
        timeout = settings.wait_timeout
        deadline = None if timeout == 0 else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise ControlError(
                    f"start_server (pid {pid}) did not exit within {timeout:g}s"
                )
            time.sleep(POLL)
        # The lock is free once start_server exited; wait for the pid to vanish too.
        while psutil.pid_exists(pid):
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(POLL)
    finally:
        os.close(fd)
    return 0

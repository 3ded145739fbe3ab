"""What start_server sets up around its loop: the variables it exports, the status file's
directory check, ``--log-file`` and ``--daemonize``; every failure is a SupervisorError.
"""

from __future__ import annotations

import os
import sys

from start_server.common.proc import status_file_error
from start_server.config import (
    ENV_AUTO_RESTART_INTERVAL,
    ENV_ENABLE_AUTO_RESTART,
    ENV_ENVDIR,
    ENV_KILL_OLD_DELAY,
    Settings,
)

# Only for mypy: the supervisor keeps what it imports for its whole life, and
# subprocess brings threading; LogTarget imports it for a piped log only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess

__all__ = [
    "LogTarget",
    "SupervisorError",
    "check_status_file",
    "daemonize",
    "option_exports",
]


class SupervisorError(Exception):
    """start_server cannot start: a socket, the log, the envdir, the pid or status file."""


def _number_text(value: float) -> str:
    return f"{value:g}"


def option_exports(settings: Settings) -> dict[str, str]:
    """The compatibility variables Perl exports when the matching option is given."""
    exports: dict[str, str] = {}
    if settings.envdir is not None:
        exports[ENV_ENVDIR] = settings.envdir
    if settings.enable_auto_restart:
        exports[ENV_ENABLE_AUTO_RESTART] = "1"
    if settings.kill_old_delay is not None:
        exports[ENV_KILL_OLD_DELAY] = _number_text(settings.kill_old_delay)
    if settings.auto_restart_interval is not None:
        exports[ENV_AUTO_RESTART_INTERVAL] = _number_text(
            settings.auto_restart_interval
        )
    return exports


def check_status_file(path: str) -> None:
    """Fail at start, not at the first write, when the status file cannot be written."""
    problem = status_file_error(path)
    if problem is not None:
        raise SupervisorError(problem)


class LogTarget:
    """``--log-file``: a file opened for append, or ``| CMD`` run by the shell."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | None = None
        stripped = spec.lstrip()
        try:
            if stripped.startswith("|"):
                # Imported only for a piped log: subprocess brings threading and
                # more, kept for the supervisor's lifetime.
                import subprocess

                cmd = stripped[1:].strip()
                self.proc = subprocess.Popen(cmd, shell=True, stdin=subprocess.PIPE)
                assert self.proc.stdin is not None
                self.fd = os.dup(self.proc.stdin.fileno())
                self.proc.stdin.close()
            else:
                self.fd = os.open(
                    spec, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
                )
        except OSError as exc:
            raise SupervisorError(f"failed to open log file {spec!r}: {exc}") from None

    def redirect(self) -> None:
        """Point stdout and stderr at the log (after the sockets are bound, as Perl)."""
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.fd, 1)
        os.dup2(self.fd, 2)
        os.close(self.fd)


def daemonize(keep_stdin: bool) -> bool:
    """fork, setsid, fork. Returns False in the two parents (they must exit at once)."""
    if os.fork() != 0:
        return False
    os.setsid()
    if os.fork() != 0:
        return False
    if not keep_stdin:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    return True

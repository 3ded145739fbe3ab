"""Process plumbing shared by start_server and the starman master.

Decode wait statuses, reap, spawn a command with its exec failure reported back, write
files atomically, check where a status file will go, hold a flocked pid file, name the
process. Raises or returns the error's text; never prints.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
from collections.abc import Callable, Mapping, Sequence

from start_server.common.record import Record

__all__ = [
    "ExecError",
    "ExitStatus",
    "PidFile",
    "PidFileError",
    "atomic_write",
    "read_pid_file",
    "reap",
    "set_process_name",
    "spawn",
    "status_file_error",
]

# Perl's start_server child exits with 255 when exec fails; we keep the number.
EXEC_FAILED = 255

# The kernel keeps a thread's name in 16 bytes, the last one a NUL.
PROCESS_NAME_MAX = 15
_PR_SET_NAME = 15


class ExitStatus(Record):
    """How one child ended: the raw wait status and its decoded parts."""

    __slots__ = ("pid", "status", "code", "signal", "core_dumped")

    def __init__(
        self,
        pid: int,
        status: int,
        code: int | None,
        signal: signal.Signals | int | None,
        core_dumped: bool = False,
    ) -> None:
        self.pid = pid
        self.status = status
        self.code = code
        self.signal = signal
        self.core_dumped = core_dumped

    @classmethod
    def from_wait(cls, pid: int, status: int) -> ExitStatus:
        """Decode a raw ``waitpid`` status (WIFEXITED/WEXITSTATUS/WIFSIGNALED/WTERMSIG)."""
        if os.WIFEXITED(status):
            return cls(pid, status, os.WEXITSTATUS(status), None)
        if os.WIFSIGNALED(status):
            num = os.WTERMSIG(status)
            sig: signal.Signals | int
            try:
                sig = signal.Signals(num)
            except ValueError:
                sig = num
            return cls(pid, status, None, sig, os.WCOREDUMP(status))
        return cls(pid, status, None, None)

    def describe(self) -> str:
        """``exit code 1``, ``killed by SIGTERM`` or ``killed by SIGSEGV (core dumped)``."""
        if self.code is not None:
            return f"exit code {self.code}"
        if self.signal is not None:
            name = (
                self.signal.name
                if isinstance(self.signal, signal.Signals)
                else f"signal {self.signal}"
            )
            return f"killed by {name}" + (" (core dumped)" if self.core_dumped else "")
        return f"wait status {self.status}"


def reap() -> list[ExitStatus]:
    """Collect every child that has ended, without blocking (SIGCHLD may coalesce)."""
    ended: list[ExitStatus] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        ended.append(ExitStatus.from_wait(pid, status))
    return ended


class ExecError(Exception):
    """The child could not chdir or exec; it has already been reaped.

    ``stage`` is ``"chdir"`` or ``"exec"``; ``status`` is the child's ExitStatus.
    """

    def __init__(
        self,
        argv0: str,
        stage: str,
        errno: int,
        strerror: str,
        status: ExitStatus,
        cwd: str | None,
    ) -> None:
        self.argv0 = argv0
        self.stage = stage
        self.errno = errno
        self.strerror = strerror
        self.status = status
        self.cwd = cwd
        if stage == "chdir":
            text = f"failed to chdir to {cwd!r}: [Errno {errno}] {strerror}"
        else:
            text = f"failed to exec {argv0!r}: [Errno {errno}] {strerror}"
        super().__init__(text)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    in_child: Callable[[], None] | None = None,
) -> int:
    """Fork and exec ``argv`` (PATH search, like Perl's ``exec { $args[0] } @args``).

    ``in_child`` runs after fork, before chdir/exec (e.g. ``SignalWaker.reset_in_child``).
    A close-on-exec pipe carries a chdir/exec failure back, so the parent learns it
    synchronously: the child is then reaped here and ExecError raised. Returns the pid.
    """
    args = list(argv)
    rfd, wfd = os.pipe()  # both close-on-exec (PEP 446): EOF here means exec succeeded
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, measured by the e2e tests
        stage = "init"
        try:
            os.close(rfd)
            if in_child is not None:
                in_child()
            stage = "chdir"
            if cwd is not None:
                os.chdir(cwd)
            stage = "exec"
            os.execvpe(args[0], args, dict(env))
        except BaseException as exc:  # noqa: B036 - must never return into the parent's code
            err = exc.errno if isinstance(exc, OSError) and exc.errno else 0
            text = (
                exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            )
            try:
                os.write(wfd, f"{stage}\0{err}\0{text}".encode(errors="replace"))
            finally:
                os._exit(EXEC_FAILED)
        os._exit(EXEC_FAILED)
    os.close(wfd)
    chunks = []
    try:
        while True:
            data = os.read(rfd, 4096)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(rfd)
    if not chunks:
        return pid
    _, status = os.waitpid(pid, 0)
    stage, errno_text, text = (
        b"".join(chunks).decode(errors="replace").split("\0") + ["", ""]
    )[:3]
    raise ExecError(
        args[0],
        stage,
        int(errno_text) if errno_text.isdigit() else 0,
        text,
        ExitStatus.from_wait(pid, status),
        cwd,
    )


def atomic_write(path: str, data: str | bytes, mode: int = 0o644) -> None:
    """Replace ``path`` whole: write ``path.<pid>``, fsync, rename; the temp goes on error."""
    payload = data.encode() if isinstance(data, str) else data
    tmp = f"{path}.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.fchmod(fd, mode)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def set_process_name(name: str) -> bool:
    """Name the calling thread (the process, when single-threaded) as ``prctl(PR_SET_NAME)``
    does: what ``ps -o comm``, ``top`` and ``pgrep -x`` match. Linux only; the name is cut
    to 15 bytes. Returns False where it cannot be done.

    It writes /proc/thread-self/comm, the same kernel call as prctl without loading
    ctypes into start_server's long-lived supervisor; ctypes is the fallback when /proc
    is not mounted. An exec gives the next program its own name back.
    """
    data = name.encode(errors="replace")[:PROCESS_NAME_MAX]
    try:
        fd = os.open("/proc/thread-self/comm", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return _prctl_set_name(data)
    try:
        os.write(fd, data)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _prctl_set_name(data: bytes) -> bool:
    import sys

    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # only without /proc: the supervisor keeps what it imports

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_NAME, ctypes.c_char_p(data), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def status_file_error(path: str) -> str | None:
    """Why ``--status-file PATH`` cannot be written, as one line; None if it can.

    Both programs refuse to start on it, with these words: the file is replaced by
    ``atomic_write`` (a rename), so what matters is its directory.
    """
    directory = os.path.dirname(os.path.abspath(path))
    prefix = f"cannot write --status-file {path!r}:"
    if os.path.isdir(path):
        return f"{prefix} it is a directory"
    if not os.path.exists(directory):
        return f"{prefix} directory {directory!r} does not exist"
    if not os.path.isdir(directory):
        return f"{prefix} {directory!r} is not a directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"{prefix} directory {directory!r} is not writable"
    return None


class PidFileError(Exception):
    """A pid file that cannot be used: missing, unreadable, malformed or held by a server."""


def read_pid_file(path: str) -> int:
    """The pid stored in ``path`` (first line, decimal). Raises PidFileError."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            line = f.readline().strip()
    except FileNotFoundError:
        raise PidFileError(
            f"pid file {path!r} does not exist (is the server running?)"
        ) from None
    except OSError as exc:
        raise PidFileError(
            f"cannot read pid file {path!r}: {exc.strerror or exc}"
        ) from None
    if not line.isdigit() or int(line) <= 0:
        raise PidFileError(f"pid file {path!r} holds no pid: {line!r}")
    return int(line)


class PidFile:
    """A pid file exclusively flocked for as long as the server runs (as Perl's).

    Methods: ``acquire()`` (create, lock without blocking, write our pid) and
    ``release()`` (unlink, then unlock by closing). The descriptor is close-on-exec, so
    children never hold the lock.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Lock and write the pid; raise PidFileError if another live process holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise PidFileError(
                f"cannot open pid file {self.path!r}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            os.close(fd)
            raise PidFileError(
                f"pid file {self.path!r} is locked by a running server (pid {holder or '?'})"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise PidFileError(
                f"cannot lock pid file {self.path!r}: {exc.strerror}"
            ) from None
        try:
            os.ftruncate(fd, 0)
            data = f"{os.getpid()}\n".encode()
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            # A full disk must not leave an empty or half-written pid file behind.
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(fd)
            raise PidFileError(
                f"cannot write pid file {self.path!r}: {exc.strerror or exc}"
            ) from None
        self._fd = fd

    def release(self) -> None:
        """Unlink the file, then drop the lock (so --stop's flock returns after the unlink)."""
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        """True between acquire() and release()."""
        return self._fd is not None

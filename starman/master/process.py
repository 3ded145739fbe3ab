"""Process plumbing of the master and its workers: libc calls (parent-death signal,
malloc_trim), process titles and names, user and group switching, daemonizing,
/dev/null stdio.

No policy: the master decides when; these only do it. Raises MasterError.
"""

from __future__ import annotations

import ctypes
import functools
import os
import pwd
import selectors
import signal
import sys
from collections.abc import Callable
from typing import Any

from start_server.common.proc import set_process_name

__all__ = [
    "MASTER_NAME",
    "WORKER_NAME",
    "MasterError",
    "daemonize",
    "dev_null_stdio",
    "drop_privileges",
    "libc",
    "proctitle_setter",
    "resolve_ids",
    "set_parent_death_signal",
    "set_title",
    "trim_heap",
]

# The process names (``pgrep -x starman``), set unless --disable-proctitle.
MASTER_NAME = "starman"
WORKER_NAME = "starman-worker"
_PR_SET_PDEATHSIG = 1


class MasterError(Exception):
    """A runtime failure of the master (exit 1): user, pid file, daemonize."""


@functools.cache
def libc() -> Any:
    """The C library, loaded once in the master so forked workers inherit it.

    ``CDLL(None)`` resolves symbols in the running process, which already links libc:
    ``ctypes.util.find_library`` would run ``ldconfig -p`` in every new worker, which
    costs measurable CPU time and private memory per worker.
    """
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def set_parent_death_signal(sig: signal.Signals) -> None:
    """Linux: have the kernel send ``sig`` when the master dies (best effort elsewhere)."""
    lib = libc()
    if lib is not None and sys.platform.startswith("linux"):
        lib.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def trim_heap() -> None:
    """Give the C heap's free pages back to the kernel (glibc ``malloc_trim``), once,
    before the first fork.

    Imports leave freed memory behind in the heap (mostly the compiler's, for the code
    that dataclasses generate): while resident it is shared with every worker and counted
    in the tree's PSS, and a worker that allocates there copies the page. Without glibc
    (musl has no ``malloc_trim``) nothing happens.
    """
    lib = libc()
    trim = getattr(lib, "malloc_trim", None) if lib is not None else None
    if trim is not None:
        trim(0)


@functools.cache
def proctitle_setter() -> Callable[[str], None] | None:
    """``setproctitle.setproctitle`` if installed; looked up once, in the master.

    A failed import walks every ``sys.path`` entry: each new worker would pay for that
    in page faults and start-up time.
    """
    try:
        import setproctitle
    except ImportError:
        return None
    setter: Callable[[str], None] = setproctitle.setproctitle
    return setter


def set_title(title: str, name: str) -> None:
    """The command line shown by ``ps`` becomes ``title`` (with setproctitle, if
    installed) and the process name becomes ``name`` (always, after setproctitle, which
    may have set it to a cut of the title)."""
    setter = proctitle_setter()
    if setter is not None:
        setter(title)
    set_process_name(name)


def resolve_ids(
    user: str | None, group: str | None
) -> tuple[int | None, int | None, str | None]:
    """(uid, gid, user name) for --user/--group; raise MasterError for unknown names."""
    import grp

    uid: int | None = None
    gid: int | None = None
    name: str | None = None
    if user is not None:
        try:
            pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise MasterError(f"unknown user {user!r} (--user)") from None
        uid, gid, name = pw.pw_uid, pw.pw_gid, pw.pw_name
    if group is not None:
        try:
            gr = grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)
        except KeyError:
            raise MasterError(f"unknown group {group!r} (--group)") from None
        gid = gr.gr_gid
    return uid, gid, name


def drop_privileges(uid: int | None, gid: int | None, name: str | None) -> None:
    """setgid, initgroups, setuid (in that order); nothing to do if already that user."""
    try:
        if gid is not None and gid != os.getegid():
            os.setgid(gid)
            if name is not None:
                os.initgroups(name, gid)
            else:
                os.setgroups([gid])
        if uid is not None and uid != os.geteuid():
            if name is not None and gid is None:
                os.initgroups(name, pwd.getpwuid(uid).pw_gid)
            os.setuid(uid)
    except PermissionError as exc:
        who = name if name is not None else str(uid if uid is not None else gid)
        raise MasterError(
            f"cannot switch to user/group {who!r}: [Errno {exc.errno}] {exc.strerror}"
        ) from None


def dev_null_stdio(keep_stderr: bool) -> None:
    """Point fds 0 and 1 (and 2 unless ``keep_stderr``) at /dev/null."""
    fd = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1) if keep_stderr else (0, 1, 2):
        os.dup2(fd, target)
    os.close(fd)


def daemonize(start_timeout: float) -> int | None:
    """Double fork + setsid, stdio to /dev/null.

    In the daemon: returns the pipe fd on which to write ``b"1"`` once started. In the
    launcher: waits up to ``start_timeout`` for that byte, then returns None (raises
    MasterError if the daemon did not report).
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        os.waitpid(pid, 0)
        sel = selectors.DefaultSelector()
        sel.register(r, selectors.EVENT_READ)
        ok = bool(sel.select(start_timeout)) and os.read(r, 1) == b"1"
        sel.close()
        os.close(r)
        if not ok:
            raise MasterError(
                "the daemon failed to start (see --error-log for details)"
            )
        return None
    os.close(r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    dev_null_stdio(keep_stderr=False)
    return w

"""Where the repository's programs and fixtures are, bounded waits, and process groups."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")

PY = sys.executable
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
PERL_START_SERVER = "/usr/bin/start_server"
PERL_STARMAN = "/usr/bin/starman"


def wait_for(pred: Callable[[], T], timeout: float = 5.0, interval: float = 0.02) -> T:
    """Poll ``pred`` until it returns a truthy value; raise TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = pred()
            if value:
                return value
        except (OSError, ValueError) as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"condition not met within {timeout}s (last error: {last_exc!r})"
            )
        time.sleep(interval)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    pass_fds: Sequence[int] = (),
    stdout: int | None = subprocess.PIPE,
    stderr: int | None = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """Start a program in its own session (so the whole tree can be killed by group)."""
    full_env = dict(os.environ)
    full_env.pop("SERVER_STARTER_PORT", None)
    full_env.pop("LISTEN_FDS", None)
    full_env.pop("LISTEN_PID", None)
    full_env.pop("NOTIFY_SOCKET", None)
    if env:
        full_env.update(env)
    return subprocess.Popen(
        list(argv),
        env=full_env,
        cwd=cwd,
        pass_fds=tuple(pass_fds),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """TERM the process group, wait with a bound, then KILL it; reap the leader."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def read_stream_until(stream: object, needle: bytes, timeout: float = 10.0) -> bytes:
    """Read a pipe (non-blocking, through a selector) until ``needle`` appears or time is up."""
    fd = stream.fileno()  # type: ignore[attr-defined]  # any object with fileno()
    os.set_blocking(fd, False)
    buf = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while needle not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"{needle!r} not seen within {timeout}s; got {buf[-2000:]!r}"
                )
            if not sel.select(left):
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                raise EOFError(f"stream closed before {needle!r}; got {buf[-2000:]!r}")
            buf += chunk
    return buf

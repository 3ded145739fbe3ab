"""Run the starman program (``python -m starman``) on a socket the test binds, for the e2e tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import psutil
import pytest

from tests.harness.process import FIXTURES, PY, kill_group, spawn, wait_for
from tests.harness.rawhttp import http_get, response_body

APP = os.path.join(FIXTURES, "apps", "master_app.py")
BROKEN_APP = os.path.join(FIXTURES, "apps", "master_broken.py")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    address: str | tuple[str, int]
    log_path: str
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_log(self, needle: str, timeout: float = 10.0) -> str:
        return wait_for(lambda: needle in self.log() and self.log(), timeout=timeout)

    def get(self, path: str = "/", timeout: float = 5.0) -> bytes:
        return http_get(self.address, path, timeout=timeout)

    def body(self, path: str = "/") -> str:
        raw = self.get(path)
        assert raw.startswith(b"HTTP/1.1 200"), raw
        return response_body(raw).decode()

    def workers_hold(self, path: str) -> bool:
        """Every live worker (at least one) has ``path`` open: it reopened its logs."""
        pids = self.workers()
        try:
            return bool(pids) and all(
                any(f.path == path for f in psutil.Process(pid).open_files())
                for pid in pids
            )
        except psutil.NoSuchProcess:
            return False

    def workers(self, master: int | None = None) -> set[int]:
        """Live (non-zombie) children of the master."""
        out = set()
        try:
            children = psutil.Process(master or self.pid).children()
        except psutil.NoSuchProcess:
            return set()
        for child in children:
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    out.add(child.pid)
            except psutil.NoSuchProcess:
                pass
        return out

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.pid, sig)


class Launcher:
    """Starts servers for one test and kills their process groups at teardown."""

    def __init__(self, tmpdir: str) -> None:
        self.tmpdir = tmpdir
        self.servers: list[Server] = []
        self.count = 0

    def _log(self) -> tuple[str, int]:
        self.count += 1
        path = os.path.join(self.tmpdir, f"log{self.count}.txt")
        return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def inherited(
        self,
        *args: str,
        workers: int = 2,
        env: dict[str, str] | None = None,
        wait_ready: bool = True,
    ) -> Server:
        """starman with a UNIX socket bound here and passed through SERVER_STARTER_PORT."""
        path = os.path.join(self.tmpdir, f"s{self.count}.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen(128)
        full_env = {"SERVER_STARTER_PORT": f"{path}={sock.fileno()}"}
        full_env.update(env or {})
        try:
            server = self.run(
                ["--workers", str(workers), *args],
                env=full_env,
                pass_fds=[sock.fileno()],
                address=path,
            )
        finally:
            sock.close()
        if wait_ready:
            server.wait_log(f"all {workers} workers ready")
        return server

    def run(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        pass_fds: Sequence[int] = (),
        address: str | tuple[str, int] = "",
        argv0: Sequence[str] = (PY, "-m", "starman"),
    ) -> Server:
        log_path, log_fd = self._log()
        try:
            proc = spawn(
                [*argv0, *args],
                env=env,
                pass_fds=pass_fds,
                stdout=log_fd,
                stderr=log_fd,
                cwd=self.tmpdir,
            )
        finally:
            os.close(log_fd)
        server = Server(proc, address, log_path)
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in self.servers:
            kill_group(server.proc)


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    import shutil
    import tempfile

    # AF_UNIX paths are limited to 107 bytes: keep the directory short.
    tmpdir = tempfile.mkdtemp(prefix="sm", dir="/tmp")
    launch = Launcher(tmpdir)
    try:
        yield launch
    finally:
        launch.close()
        shutil.rmtree(tmpdir, ignore_errors=True)


def listening_address(server: Server, pattern: str) -> tuple[str, int]:
    """Find ``listening on HOST:PORT`` in the log for a host matching ``pattern``."""

    def find() -> tuple[str, int] | None:
        m = re.search(r"listening on \[?(" + pattern + r")\]?:(\d+) ", server.log())
        return (m.group(1), int(m.group(2))) if m else None

    return wait_for(find, timeout=10.0)


def run_to_exit(
    launcher: Launcher, args: list[str], timeout: float = 15.0
) -> tuple[int, str]:
    """Run starman with ``args`` until it exits; its exit code and its output."""
    server = launcher.run(args)
    code = server.proc.wait(timeout=timeout)
    return code, server.log()


def error_lines(log: str) -> list[str]:
    """The ``starman: error:`` lines of an output (what a user sees of a failure)."""
    return [line for line in log.splitlines() if line.startswith("starman: error:")]

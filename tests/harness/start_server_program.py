"""Run the start_server program for the e2e tests: start it, read its files, talk to echod."""

from __future__ import annotations

import errno
import json
import os
import random
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.harness.process import FIXTURES, PY, kill_group, spawn, wait_for

ECHOD = [PY, os.path.join(FIXTURES, "echod.py")]
START_SERVER = [PY, "-m", "start_server"]


class Run:
    """One start_server process, its stderr captured in a file (never a full pipe)."""

    def __init__(
        self,
        argv: Sequence[str],
        workdir: Path,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.log_path = workdir / f"stderr.{time.monotonic_ns()}"
        self._log = open(self.log_path, "wb")
        self.proc = spawn(
            list(argv),
            env=env,
            cwd=cwd,
            stdout=self._log.fileno(),
            stderr=self._log.fileno(),
        )
        self._log.close()

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_text(self, needle: str, timeout: float = 10.0, count: int = 1) -> str:
        """Wait until ``needle`` occurs ``count`` times in stderr; return the text."""
        try:
            return wait_for(
                lambda: self.text() if self.text().count(needle) >= count else "",
                timeout,
            )
        except TimeoutError:
            raise AssertionError(
                f"{needle!r} x{count} not seen in {timeout}s; stderr:\n{self.text()}"
            ) from None

    def wait_exit(self, timeout: float = 10.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"did not exit in {timeout}s; stderr:\n{self.text()}"
            ) from None

    def kill(self) -> None:
        kill_group(self.proc)


def read_status(path: Path) -> list[tuple[int, int]]:
    """``[(gen, pid)]`` from a status file (empty when missing)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [
        (int(g), int(p)) for g, p in (line.split(":") for line in text.splitlines())
    ]


def wait_status(
    path: Path, pred: Callable[[list[tuple[int, int]]], bool], timeout: float = 10.0
) -> list[tuple[int, int]]:
    """Wait until the status file's (non-empty) entries satisfy ``pred``; return them."""
    seen: list[list[tuple[int, int]]] = []

    def check() -> list[tuple[int, int]]:
        st = read_status(path)
        if not seen or seen[-1] != st:
            seen.append(st)
        return st if pred(st) else []

    try:
        return wait_for(check, timeout)
    except TimeoutError:
        raise AssertionError(f"status file never matched; saw {seen}") from None


def only_generation(gen: int) -> Callable[[list[tuple[int, int]]], bool]:
    return lambda st: [g for g, _ in st] == [gen]


def ask(address: str | tuple[str, int], timeout: float = 5.0) -> str:
    """Connect to an echod stream socket and return its ``pid:generation`` answer."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    if isinstance(address, tuple) and ":" in address[0]:
        family = socket.AF_INET6
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(address)
        data = b""
        while True:
            chunk = s.recv(100)
            if not chunk:
                break
            data += chunk
    return data.decode()


def ask_udp(address: tuple[str, int], timeout: float = 5.0) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(b"?", address)
        return s.recvfrom(100)[0].decode()


def read_dump(path: Path, generation: int, timeout: float = 10.0) -> dict[str, object]:
    """The JSON echod wrote for ``generation`` ($ECHOD_DUMP.<gen>)."""
    target = Path(f"{path}.{generation}")
    wait_for(target.exists, timeout)
    data = json.loads(target.read_text())
    assert isinstance(data, dict)
    return data


def free_port_candidates(n: int = 20) -> list[int]:
    """Random high ports to try; callers retry on EADDRINUSE instead of reserving."""
    return random.sample(range(20000, 60000), n)


def _ready_or_exited(run: Run, ready: Callable[[Run], bool]) -> Callable[[], bool]:
    return lambda: ready(run) or run.proc.poll() is not None


def start_on_free_ports(
    build: Callable[[list[int]], Sequence[str]],
    workdir: Path,
    ready: Callable[[Run], bool],
    nports: int = 1,
    env: dict[str, str] | None = None,
    attempts: int = 8,
) -> tuple[Run, list[int]]:
    """Start ``build(ports)``; if a port is taken ("in use" on stderr), retry with others."""
    for _ in range(attempts):
        ports = free_port_candidates(nports)
        run = Run(build(ports), workdir, env=env)
        in_use = os.strerror(errno.EADDRINUSE)
        try:
            wait_for(_ready_or_exited(run, ready), 15.0)
        except TimeoutError:
            pass
        if ready(run):
            return run, ports
        text = run.text()
        run.kill()
        if in_use not in text:
            raise AssertionError(f"start_server did not become ready; stderr:\n{text}")
    raise AssertionError("no free port found")

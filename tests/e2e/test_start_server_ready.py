"""start_server --wait-ready: READY=1 decides, failed generations roll back, systemd notify."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness.process import FIXTURES, PY, spawn, wait_for
from tests.harness.rawhttp import http_get, response_body
from tests.harness.start_server_program import (
    START_SERVER,
    Run,
    ask,
    only_generation,
    read_status,
    wait_status,
)

NOTIFYD = [PY, os.path.join(FIXTURES, "notifyd.py")]
SLOW_APP = os.path.join(FIXTURES, "apps", "slow_boot.py")

RunFactory = Callable[..., Run]


@pytest.fixture
def wd() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sr", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.kill()


@pytest.fixture
def start(wd: Path, runs: list[Run]) -> RunFactory:
    """start(*options, cmd=NOTIFYD): start_server --wait-ready with notifyd by default."""

    def _start(
        *options: str, cmd: list[str] | None = None, env: dict[str, str] | None = None
    ) -> Run:
        run = Run(
            [*START_SERVER, "--wait-ready", *options, "--", *(cmd or NOTIFYD)],
            wd,
            env={"NOTIFYD_MODE": str(wd / "mode"), **(env or {})},
        )
        runs.append(run)
        return run

    return _start


class StatusWatch:
    """Samples the status file in a thread: every distinct content it ever showed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[list[tuple[int, int]]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                st = read_status(self.path)
            except ValueError:  # never expected: a torn file would show here
                st = [(-1, -1)]
            if not self.seen or self.seen[-1] != st:
                self.seen.append(st)
            self.stop.wait(0.005)

    def generations(self) -> set[int]:
        self.stop.set()
        self.thread.join(5)
        return {g for st in self.seen for g, _ in st}


def restart(wd: Path, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*START_SERVER, "--restart", "--pid-file", str(wd / "pid"), "--status-file",
         str(wd / "status")],
        capture_output=True, timeout=timeout,
    )  # fmt: skip


def files(wd: Path) -> list[str]:
    return [
        "--path", str(wd / "s"), "--status-file", str(wd / "status"),
        "--pid-file", str(wd / "pid"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "options", "reason"),
    [
        ("exit 3", [], "exited before READY=1, status:768 (exit code 3)"),
        ("silent", ["--ready-timeout", "1"], "no READY=1 within 1s"),
    ],
)
def test_failed_generation_rolls_back_and_restart_reports_it(
    start: RunFactory, wd: Path, mode: str, options: list[str], reason: str
) -> None:
    run = start(*files(wd), *options)
    (gen1,) = wait_status(wd / "status", only_generation(1))
    watch = StatusWatch(wd / "status")
    (wd / "mode").write_text(mode)
    res = restart(wd)
    seen = watch.generations()
    err = res.stderr.decode()
    assert res.returncode == 1, err
    assert err == (
        f"start_server: error: restart failed: new generation 2 (pid "
        f"{err.split('(pid ')[1].split(')')[0]}) did not start: {reason}; rolled back, "
        f"generation 1 (pid {gen1[1]}) keeps serving\n"
    )
    failed_pid = int(err.split("(pid ")[1].split(")")[0])
    if mode == "silent":  # it was serving (unready): it got TERM and is gone
        run.wait_text(f"notifyd {failed_pid} got SIGTERM")
        run.wait_text(f"failed worker {failed_pid} is gone, status:0")
    # The old generation still serves; the failed one never was in the status file.
    assert ask(str(wd / "s")) == f"{gen1[1]}:1"
    assert read_status(wd / "status") == [gen1]
    assert seen == {1}
    assert "rolled back: old worker" in run.text()
    # A good deploy afterwards: numbered past the failure, and --restart succeeds.
    (wd / "mode").write_text("ready")
    res = restart(wd)
    assert res.returncode == 0, res.stderr
    (gen3,) = read_status(wd / "status")
    assert gen3[0] == 3 and ask(str(wd / "s")) == f"{gen3[1]}:3"
    run.wait_text(f"notifyd {gen1[1]} got SIGTERM")


def test_ready_sent_by_a_descendant_is_accepted(start: RunFactory, wd: Path) -> None:
    (wd / "mode").write_text("grandchild")
    run = start(*files(wd), "--ready-timeout", "20")
    (gen1,) = wait_status(wd / "status", only_generation(1))
    assert re.search(rf"new worker {gen1[1]} is ready \(READY=1 after", run.text())


def test_ready_from_a_stranger_is_ignored(start: RunFactory, wd: Path) -> None:
    (wd / "mode").write_text("silent")
    run = start(*files(wd), "--ready-timeout", "30")
    run.wait_text("generation 1 serving")
    directory = wait_for(lambda: _notify_dir(run.proc.pid), 5)
    assert directory is not None
    (path,) = Path(directory).glob("gen1.sock")
    # We are not the generation nor its descendant: the kernel-attested pid says so.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"READY=1", str(path))
    run.wait_text("ignoring a notify message for generation 1 from pid")
    assert read_status(wd / "status") == []


def _notify_dir(pid: int) -> str | None:
    """The private directory of start_server ``pid``'s notify sockets (from its children)."""
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        for item in env:
            if item.startswith(b"NOTIFY_SOCKET="):
                return os.path.dirname(item.split(b"=", 1)[1].decode())
    return None


def test_slow_booting_starman_generation_loses_no_request(
    start: RunFactory, wd: Path
) -> None:
    envdir = wd / "env"
    envdir.mkdir()
    sock = str(wd / "s")
    cmd = [PY, "-m", "starman", "--workers", "2", SLOW_APP]
    run = start(*files(wd), "--envdir", str(envdir), "--ready-timeout", "30", cmd=cmd)
    (gen1,) = wait_status(wd / "status", only_generation(1), timeout=30)
    wait_for(lambda: http_get(sock).startswith(b"HTTP/1.1 200"), 10)
    (envdir / "SLOW_BOOT").write_text("3\n")
    stop = threading.Event()
    served: Counter[str] = Counter()
    failures: list[str] = []

    def client() -> None:
        while not stop.is_set():
            try:
                raw = http_get(sock, timeout=10)
                if not raw.startswith(b"HTTP/1.1 200"):
                    failures.append(raw[:60].decode(errors="replace"))
                    continue
                served[response_body(raw).decode().split(":")[1]] += 1
            except OSError as exc:
                failures.append(repr(exc))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        os.kill(run.proc.pid, signal.SIGHUP)
        text = run.wait_text("new worker is now running", timeout=30)
        wait_status(wd / "status", only_generation(2), timeout=30)
        wait_for(lambda: served["2"] > 20, 10)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert failures == []
    waited = float(re.findall(r"is ready \(READY=1 after ([0-9.]+)s\)", text)[-1])
    # Promoted on READY=1 (after the 3 s import), not after --interval's 1 s...
    assert waited >= 3.0
    # ...so generation 1 kept answering all along.
    assert served["1"] > 20 and served["2"] > 20


# --------------------------------------------------------------------------- systemd


class FakeSystemd:
    """The test plays systemd: a NOTIFY_SOCKET of its own and a socket passed as fd 3."""

    def __init__(self, wd: Path) -> None:
        self.notify_path = str(wd / "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.settimeout(0.2)
        self.listen_path = str(wd / "web.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.listen_path)
        self.listener.listen(64)
        self.messages: list[str] = []

    def launch(self, argv: list[str], wd: Path, runs: list[Run]) -> Run:
        """Exec start_server with the socket at fd 3, LISTEN_PID naming it (as systemd)."""
        fd = self.listener.fileno()
        shim = (
            "import os, sys; "
            f"os.dup2({fd}, 3); os.close({fd}); "
            "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', "
            "LISTEN_FDNAMES='web'); "
            "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
        )
        log = wd / f"stderr.{time.monotonic_ns()}"
        run = Run.__new__(Run)
        run.workdir, run.log_path = wd, log
        with open(log, "wb") as f:
            run.proc = spawn(
                [PY, "-c", shim, *argv],
                env={"NOTIFY_SOCKET": self.notify_path},
                pass_fds=(fd,),
                stdout=f.fileno(),
                stderr=f.fileno(),
            )
        runs.append(run)
        return run

    def wait_message(self, needle: str, timeout: float = 15.0) -> str:
        """The next message containing ``needle`` (earlier ones are kept in .messages)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.notify.recv(4096).decode()
            except socket.timeout:
                continue
            self.messages.append(msg)
            if needle in msg:
                return msg
        raise AssertionError(f"{needle!r} not received; got {self.messages}")

    def close(self) -> None:
        self.notify.close()
        self.listener.close()


@pytest.fixture
def systemd(wd: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(wd)
    yield fake
    fake.close()


def test_under_systemd_ready_and_reloading_around_a_hup(
    systemd: FakeSystemd, wd: Path, runs: list[Run]
) -> None:
    argv = [
        "-m", "start_server", "--wait-ready", "--status-file", str(wd / "status"),
        "--", *NOTIFYD,
    ]  # fmt: skip
    run = systemd.launch(argv, wd, runs)
    ready = systemd.wait_message("READY=1")
    assert f"MAINPID={run.proc.pid}" in ready.split("\n")
    assert "STATUS=generation 1 serving" in ready.split("\n")
    (gen1,) = read_status(wd / "status")
    # The child serves on the socket systemd passed; start_server bound nothing itself.
    assert ask(systemd.listen_path) == f"{gen1[1]}:1"
    run.wait_text("adopted socket 3 from systemd as web")
    os.kill(run.proc.pid, signal.SIGHUP)
    reloading = systemd.wait_message("RELOADING=1")
    assert re.search(r"^MONOTONIC_USEC=\d+$", reloading, re.M)
    ready = systemd.wait_message("READY=1")
    assert "STATUS=generation 2 serving" in ready.split("\n")
    (gen2,) = wait_status(wd / "status", only_generation(2))
    assert ask(systemd.listen_path) == f"{gen2[1]}:2"
    # Nothing but these reached systemd: the children spoke to start_server only.
    assert [m.split("\n")[0] for m in systemd.messages] == [
        "READY=1",
        "RELOADING=1",
        "READY=1",
    ]
    os.kill(run.proc.pid, signal.SIGTERM)
    assert systemd.wait_message("STOPPING=1") == "STOPPING=1"
    assert run.wait_exit() == 0
    assert os.path.exists(systemd.listen_path)  # systemd's socket file is not ours


def test_under_systemd_children_see_named_sockets_and_no_systemd_variables(
    systemd: FakeSystemd, wd: Path, runs: list[Run]
) -> None:
    dump = wd / "dump"
    argv = [
        "-m", "start_server", "--interval", "0.2", "--path", str(wd / "own"), "--",
        PY, os.path.join(FIXTURES, "echod.py"),
    ]  # fmt: skip
    with_dump = {"ECHOD_DUMP": str(dump)}
    os.environ.update(with_dump)
    try:
        run = systemd.launch(argv, wd, runs)
    finally:
        os.environ.pop("ECHOD_DUMP")
    systemd.wait_message("READY=1")
    data = Path(f"{dump}.1")
    wait_for(data.exists, 10)
    env = json.loads(data.read_text())["env"]
    assert env["SERVER_STARTER_PORT"] == f"{wd / 'own'}=4;web=3"
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        assert name not in env
    # The child's NOTIFY_SOCKET is start_server's socket for its generation (every
    # generation has one now), never systemd's.
    assert env["NOTIFY_SOCKET"] != systemd.notify_path
    assert re.search(r"/start_server-notify-[^/]+/gen1\.sock$", env["NOTIFY_SOCKET"])
    assert ask(systemd.listen_path).endswith(":1")
    run.kill()

"""Faults: killed workers under load, a killed master under start_server, a crash loop,
a full disk for the pid and status files, and clients that vanish mid-response.

Each test checks that the server recovers, that no answered request is lost or truncated,
and that no zombie is left behind. (A worker stuck in the app is
tests/e2e/test_starman_ops.py::test_timeout_kills_a_stuck_worker_and_a_new_one_serves.)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.harness.process import FIXTURES, PY, wait_for
from tests.harness.rawhttp import http_get, response_body
from tests.harness.starman_program import Launcher, Server
from tests.harness.start_server_program import START_SERVER, Run, wait_status

APP = os.path.join(FIXTURES, "apps", "fault_app.py")


@pytest.fixture
def wd() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ft", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def launcher(wd: Path) -> Iterator[Launcher]:
    launch = Launcher(str(wd))
    try:
        yield launch
    finally:
        launch.close()


def one_request(address: str, path: str) -> str:
    """``ok`` (a complete 200), ``failed`` (no response head) or ``truncated``."""
    try:
        raw = http_get(address, path, timeout=10)
    except OSError:
        return "failed"
    if not raw:
        return "failed"
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 200 "):
        return "failed" if not sep else "bad status"
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length" and int(value) != len(body):
            return "truncated"
    return "ok"


def no_zombies(pid: int) -> bool:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return True
    for child in children:
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


def test_sigkill_of_workers_under_load(launcher: Launcher) -> None:
    server = launcher.inherited(APP, workers=2)
    address = server.address
    assert isinstance(address, str)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            result = one_request(address, "/sleep?s=0.02")
            with lock:
                outcomes[result] += 1

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    kills = 0
    try:
        for _ in range(3):
            ok_before = outcomes["ok"]
            wait_for(lambda: outcomes["ok"] >= ok_before + 10, 15)  # noqa: B023
            victim = min(server.workers())
            os.kill(victim, signal.SIGKILL)
            kills += 1
            wait_for(lambda: victim not in server.workers(), 10)  # noqa: B023
            wait_for(lambda: len(server.workers()) == 2, 15)
        ok_after = outcomes["ok"]
        wait_for(lambda: outcomes["ok"] >= ok_after + 10, 15)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
    # Nothing answered was cut short; only requests in flight on a killed worker failed.
    assert outcomes["truncated"] == 0 and outcomes["bad status"] == 0, outcomes
    assert outcomes["failed"] <= kills * 8, outcomes
    assert server.proc.poll() is None
    assert server.log().count("died") + server.log().count("killed") >= kills
    wait_for(lambda: no_zombies(server.pid), 5)


def test_master_sigkill_under_start_server_restarts_the_generation(wd: Path) -> None:
    sock, status = str(wd / "s"), wd / "status"
    run = Run(
        [
            *START_SERVER,
            "--path",
            sock,
            "--interval",
            "0",
            "--status-file",
            str(status),
            "--",
            PY,
            "-m",
            "starman",
            "--workers",
            "2",
            APP,
        ],
        wd,
    )
    try:
        (gen1,) = wait_status(status, lambda st: [g for g, _ in st] == [1], 20)
        master = gen1[1]
        wait_for(lambda: len(psutil.Process(master).children()) == 2, 20)
        workers = [c.pid for c in psutil.Process(master).children()]
        wait_for(lambda: one_request(sock, "/") == "ok", 10)
        os.kill(master, signal.SIGKILL)

        def workers_gone() -> bool:
            for pid in workers:
                try:
                    if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                        return False
                except psutil.NoSuchProcess:
                    pass
            return True

        wait_for(workers_gone, 10)
        (gen2,) = wait_status(status, lambda st: [g for g, _ in st] == [2], 20)
        run.wait_text(f"worker {master} died unexpectedly")
        new_workers = wait_for(
            lambda: {c.pid for c in psutil.Process(gen2[1]).children()}, 20
        )
        answered_by = response_body(http_get(sock, "/")).decode().split(":")[0]
        assert int(answered_by) in new_workers
        assert run.proc.poll() is None
        wait_for(lambda: no_zombies(run.proc.pid), 5)
        assert gen2[1] != master
    finally:
        run.kill()


def test_crash_loop_backs_off_and_never_forks_in_a_busy_loop(wd: Path) -> None:
    spawns = wd / "spawns"
    run = Run(
        [
            *START_SERVER,
            "--path",
            str(wd / "s"),
            "--interval",
            "0",
            "--",
            "sh",
            "-c",
            f"echo $$ >> {spawns}; exit 1",
        ],
        wd,
    )

    def count() -> int:
        try:
            return len(spawns.read_text().splitlines())
        except FileNotFoundError:
            return 0

    try:
        wait_for(lambda: count() >= 2, 10)
        start, first = time.monotonic(), count()
        alive_children = []
        # Watch for two seconds: the floor between spawns is 0.1 s (Perl: a busy loop).
        while time.monotonic() - start < 2.0:
            alive_children.append(len(psutil.Process(run.proc.pid).children()))
            time.sleep(0.05)
        rate = (count() - first) / (time.monotonic() - start)
        assert 1 <= rate <= 15, rate
        assert max(alive_children) <= 1
        assert run.proc.poll() is None
        assert "died unexpectedly" in run.text()
    finally:
        run.kill()


# ------------------------------------------------------------------ full disk


@pytest.fixture
def full_disk(wd: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, filled up (needs root and mount(2); skipped otherwise)."""
    mnt = wd / "full"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
        capture_output=True,
        timeout=10,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for _ in range(1000):  # 64 KiB fills in 16 rounds; bounded anyway
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=10)


def test_pid_file_on_a_full_disk_is_a_clear_error_and_leaves_no_file(
    wd: Path, full_disk: Path, launcher: Launcher
) -> None:
    pid = full_disk / "ss.pid"
    run = Run(
        [*START_SERVER, "--path", str(wd / "s"), "--pid-file", str(pid), "--", "true"],
        wd,
    )
    assert run.wait_exit(10) != 0
    assert f"cannot write pid file '{pid}': No space left on device" in run.text()
    assert "Traceback" not in run.text()
    assert sorted(os.listdir(full_disk)) == ["filler"]

    server = launcher.inherited(
        "--pid", str(full_disk / "sm.pid"), APP, wait_ready=False
    )
    assert server.proc.wait(timeout=20) != 0
    assert "No space left on device" in server.log()
    assert "Traceback" not in server.log()
    assert sorted(os.listdir(full_disk)) == ["filler"]


def test_status_file_on_a_full_disk_is_logged_and_the_server_keeps_serving(
    wd: Path, full_disk: Path
) -> None:
    status = full_disk / "status"
    sock = str(wd / "s")
    run = Run(
        [
            *START_SERVER,
            "--path",
            sock,
            "--interval",
            "0",
            "--status-file",
            str(status),
            "--",
            PY,
            "-m",
            "starman",
            "--workers",
            "1",
            APP,
        ],
        wd,
    )
    try:
        run.wait_text(f"failed to write status file {status}: [Errno 28]", 20)
        wait_for(lambda: one_request(sock, "/") == "ok", 20)
        # Nothing half-written: neither the status file nor its temporary.
        assert sorted(os.listdir(full_disk)) == ["filler"]
        # Space comes back: the next write (a HUP's new generation) is whole.
        os.unlink(full_disk / "filler")
        os.kill(run.proc.pid, signal.SIGHUP)
        lines = wait_status(status, lambda st: [g for g, _ in st] == [2], 20)
        assert status.read_text() == f"2:{lines[0][1]}\n"
        assert sorted(os.listdir(full_disk)) == ["status"]
    finally:
        run.kill()


# ------------------------------------------------------------- vanishing clients


def test_clients_vanishing_mid_response_do_not_hurt_the_worker(
    launcher: Launcher,
) -> None:
    server: Server = launcher.inherited(APP, workers=1)
    address = server.address
    assert isinstance(address, str)
    (worker,) = server.workers()
    for i in range(20):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(address)
            s.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
            if i % 2:  # an abortive close (RST) half of the time, else a plain one
                s.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
    assert one_request(address, "/") == "ok"
    assert server.workers() == {worker}
    assert "Traceback" not in server.log()
    assert "Broken pipe" not in server.log()

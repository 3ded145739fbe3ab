"""Operations: pid file, daemonize, error/access logs with USR1, --timeout, sd_notify."""

from __future__ import annotations

import os
import signal
import socket

import psutil

from tests.harness.process import wait_for
from tests.harness.rawhttp import http_get
from tests.harness.starman_program import APP, Launcher, launcher

__all__ = ["launcher"]


def read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def test_pid_file_lives_as_long_as_the_master(launcher: Launcher) -> None:
    pid_path = os.path.join(launcher.tmpdir, "m.pid")
    server = launcher.inherited("--pid", pid_path, APP, workers=1)
    assert read(pid_path).strip() == str(server.pid)
    server.signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 0
    assert not os.path.exists(pid_path)


def test_daemonize_detaches_and_writes_the_pid_file(launcher: Launcher) -> None:
    pid_path = os.path.join(launcher.tmpdir, "d.pid")
    sock = os.path.join(launcher.tmpdir, "d.sock")
    launch = launcher.run(
        ["-D", "--workers", "1", "--pid", pid_path, "--listen", sock, APP]
    )
    assert launch.proc.wait(timeout=10) == 0
    daemon = int(read(pid_path))
    try:
        assert daemon != launch.pid
        # Its own session (double fork: not a session leader, so no controlling tty).
        assert os.getsid(daemon) not in (launch.pid, os.getsid(0), daemon)
        assert wait_for(lambda: http_get(sock).startswith(b"HTTP/1.1 200"))
    finally:
        os.kill(daemon, signal.SIGTERM)
    wait_for(lambda: not psutil.pid_exists(daemon), timeout=10)
    assert not os.path.exists(sock)


def test_error_and_access_logs_are_reopened_on_usr1(launcher: Launcher) -> None:
    error_log = os.path.join(launcher.tmpdir, "error.log")
    access_log = os.path.join(launcher.tmpdir, "access.log")
    server = launcher.inherited(
        "--error-log",
        error_log,
        "--access-log",
        access_log,
        APP,
        workers=1,
        wait_ready=False,
    )
    wait_for(lambda: "all 1 workers ready" in read(error_log))
    assert server.body()
    wait_for(lambda: '"GET / HTTP/1.1" 200' in read(access_log))
    os.rename(error_log, error_log + ".1")
    os.rename(access_log, access_log + ".1")
    server.signal(signal.SIGUSR1)
    wait_for(lambda: os.path.exists(error_log) and "reopened logs" in read(error_log))
    # The worker reopens its own handlers when the master forwards USR1.
    wait_for(lambda: server.workers_hold(access_log))
    assert server.body()
    wait_for(lambda: '"GET / HTTP/1.1" 200' in read(access_log))
    assert server.proc.poll() is None


def test_timeout_kills_a_stuck_worker_and_a_new_one_serves(launcher: Launcher) -> None:
    server = launcher.inherited("--timeout", "1", APP, workers=1)
    old = server.workers()
    raw = http_get(server.address, "/sleep?s=10", timeout=8)
    assert not raw.startswith(b"HTTP/1.1 200")
    server.wait_log("longer than --timeout: sending SIGABRT")
    wait_for(lambda: server.workers() and not server.workers() & old)
    assert server.body().endswith(":1:v1")


def test_sd_notify_ready_and_stopping(launcher: Launcher) -> None:
    path = os.path.join(launcher.tmpdir, "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sink:
        sink.bind(path)
        sink.settimeout(10)
        server = launcher.inherited(APP, workers=2, env={"NOTIFY_SOCKET": path})
        # STATUS=starting comes first, before the app loads (docs/hot-deploy.md §1).
        assert sink.recv(4096) == b"STATUS=starting"
        assert sink.recv(4096).decode() == f"READY=1\nMAINPID={server.pid}"
        names = server.body("/env").split()
        assert "NOTIFY_SOCKET" not in names
        server.signal(signal.SIGHUP)
        assert sink.recv(4096) == b"RELOADING=1"
        assert sink.recv(4096) == b"READY=1"
        server.signal(signal.SIGTERM)
        assert sink.recv(4096) == b"STOPPING=1"
        assert server.proc.wait(timeout=10) == 0

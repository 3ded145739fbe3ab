"""--error-log: a path that cannot be opened is one line and exit 2; once it opens,
everything after option parsing goes there (the start-up lines too, with or without
-D), and a fatal start-up error is also shown where starman was started."""

from __future__ import annotations

import os
import signal

import psutil

from tests.harness.process import wait_for
from tests.harness.starman_program import APP, Launcher, error_lines, launcher

__all__ = ["launcher"]


def read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def test_error_log_in_a_missing_directory(launcher: Launcher) -> None:
    path = os.path.join(launcher.tmpdir, "no-such-dir", "error.log")
    server = launcher.run(["--listen", "unix:x.sock", "--error-log", path, APP])
    assert server.proc.wait(timeout=15) == 2
    log = server.log()
    assert log.splitlines() == [
        f"starman: error: cannot open --error-log {path!r}: No such file or directory"
    ], log


def test_error_log_that_is_a_directory(launcher: Launcher) -> None:
    server = launcher.run(
        ["--listen", "unix:x.sock", "--error-log", launcher.tmpdir, APP]
    )
    assert server.proc.wait(timeout=15) == 2
    assert server.log().splitlines() == [
        f"starman: error: cannot open --error-log {launcher.tmpdir!r}: Is a directory"
    ]


def test_start_up_lines_go_to_the_error_log(launcher: Launcher) -> None:
    path = os.path.join(launcher.tmpdir, "error.log")
    server = launcher.inherited(
        "--error-log", path, "--preload-app", APP, workers=1, wait_ready=False
    )
    wait_for(lambda: "all 1 workers ready" in read(path), timeout=10)
    text = read(path)
    assert "listening on " in text and "app preloaded in the master" in text, text
    server.signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 0
    assert server.log() == ""  # nothing left on the original stderr


def test_start_up_lines_go_to_the_error_log_with_daemonize(launcher: Launcher) -> None:
    path = os.path.join(launcher.tmpdir, "error.log")
    pid_path = os.path.join(launcher.tmpdir, "d.pid")
    sock = os.path.join(launcher.tmpdir, "d.sock")
    launch = launcher.run(
        ["-D", "--workers", "1", "--pid", pid_path, "--listen", sock]
        + ["--preload-app", "--error-log", path, APP]
    )
    assert launch.proc.wait(timeout=10) == 0
    daemon = int(read(pid_path))
    try:
        wait_for(lambda: "all 1 workers ready" in read(path), timeout=10)
        text = read(path)
        assert "listening on " in text and "app preloaded in the master" in text
        assert launch.log() == ""
    finally:
        os.kill(daemon, signal.SIGTERM)
    wait_for(lambda: not psutil.pid_exists(daemon), timeout=10)


def test_a_fatal_error_is_in_the_error_log_and_on_the_console(
    launcher: Launcher,
) -> None:
    path = os.path.join(launcher.tmpdir, "error.log")
    server = launcher.run(
        ["--user", "no-such-user-x9", "--listen", "unix:x.sock"]
        + ["--error-log", path, APP]
    )
    assert server.proc.wait(timeout=15) == 1
    line = "starman: error: unknown user 'no-such-user-x9' (--user)"
    assert error_lines(read(path)) == [line]
    assert server.log().splitlines() == [line]


def test_access_log_in_a_missing_directory_exits_2_as_well(launcher: Launcher) -> None:
    path = os.path.join(launcher.tmpdir, "no-such-dir", "access.log")
    server = launcher.run(["--listen", "unix:x.sock", "--access-log", path, APP])
    assert server.proc.wait(timeout=15) == 2
    assert server.log().splitlines() == [
        f"starman: error: cannot open --access-log {path!r}: No such file or directory"
    ]

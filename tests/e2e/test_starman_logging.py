"""Logs: Apache combined or --access-log-format lines, timestamped error log, USR1
reopen after a logrotate-style rename, --log-level for both programs."""

from __future__ import annotations

import os
import re
import signal
import socket

from tests.harness.process import PY, kill_group, read_stream_until, spawn, wait_for
from tests.harness.rawhttp import http_request
from tests.harness.starman_program import APP, Launcher, launcher

__all__ = ["launcher"]

TIMESTAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"


def read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _request(address: str, target: str) -> bytes:
    return http_request(
        address,
        f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        "Referer: http://ref.example/\r\nUser-Agent: probe/1.0\r\n\r\n".encode(),
    )


def test_default_access_line_is_apache_combined(launcher: Launcher) -> None:
    access = os.path.join(launcher.tmpdir, "access.log")
    server = launcher.inherited("--access-log", access, APP, workers=1)
    assert isinstance(server.address, str)
    assert _request(server.address, "/a?b=c").startswith(b"HTTP/1.1 200")
    line = wait_for(lambda: read(access))
    assert re.fullmatch(
        r'- - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /a\?b=c HTTP/1\.1" '
        r'200 \d+ "http://ref\.example/" "probe/1\.0"\n',
        line,
    ), line


def test_access_log_format_survives_logrotate_and_error_log_has_timestamps(
    launcher: Launcher,
) -> None:
    access = os.path.join(launcher.tmpdir, "access.log")
    errors = os.path.join(launcher.tmpdir, "error.log")
    server = launcher.inherited(
        "--access-log",
        access,
        "--error-log",
        errors,
        "--access-log-format",
        "%m %U %q %H %>s %B [%{user-agent}i] %%  %{Host}i %{X-Missing}i %D %T",
        APP,
        workers=1,
        wait_ready=False,
    )
    wait_for(lambda: "all 1 workers ready" in read(errors))
    assert isinstance(server.address, str)
    _request(server.address, "/p?q=1")
    line = wait_for(lambda: read(access))
    assert re.fullmatch(
        r"GET /p \?q=1 HTTP/1\.1 200 \d+ \[probe/1\.0\] %  t - \d+ 0\n", line
    ), line
    # Every error-log line starts with a timestamp, the pid and the level.
    for line in read(errors).splitlines():
        assert re.match(TIMESTAMP + r" \[\d+\] (INFO|WARNING|ERROR|DEBUG) ", line), line

    # logrotate: rename, then USR1; both files are reopened, the format is kept.
    os.rename(access, access + ".1")
    os.rename(errors, errors + ".1")
    server.signal(signal.SIGUSR1)
    wait_for(lambda: os.path.exists(errors) and "reopened logs" in read(errors))
    # The master forwards USR1 to the worker, which reopens its own handlers: wait
    # until the worker holds the new access file, not only until the file exists.
    wait_for(lambda: server.workers_hold(access))
    _request(server.address, "/second")
    line = wait_for(lambda: read(access))
    assert line.startswith("GET /second  HTTP/1.1 200 "), line
    assert read(access + ".1").count("\n") == 1
    assert re.match(TIMESTAMP, read(errors)), read(errors)


def test_starman_log_level_error_hides_lifecycle_lines(launcher: Launcher) -> None:
    server = launcher.inherited(
        "--log-level", "error", APP, workers=1, wait_ready=False
    )
    address = server.address
    assert isinstance(address, str)
    wait_for(lambda: _request(address, "/").startswith(b"HTTP/1.1 200"))
    server.signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 0
    assert server.log() == ""


def test_starman_debug_env_and_cli_log_level(launcher: Launcher) -> None:
    # STARMAN_DEBUG=1 means debug; --log-level on the command line wins over it.
    server = launcher.inherited(
        "--log-level",
        "warning",
        APP,
        workers=1,
        wait_ready=False,
        env={"STARMAN_DEBUG": "1"},
    )
    address = server.address
    assert isinstance(address, str)
    wait_for(lambda: _request(address, "/").startswith(b"HTTP/1.1 200"))
    server.signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 0
    assert " INFO " not in server.log()


def test_start_server_log_level_warning_hides_info_lines(tmp_path: object) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = spawn(
        [
            PY,
            "-m",
            "start_server",
            "--log-level",
            "warning",
            "--port",
            f"127.0.0.1:{port}",
            "--",
            PY,
            "-c",
            "import sys; sys.stderr.write('child up\\n'); sys.stderr.flush(); "
            "import time; time.sleep(60)",
        ]
    )
    try:
        err = read_stream_until(proc.stderr, b"child up\n", timeout=15)
        assert b"starting now" not in err and b"starting new worker" not in err, err
    finally:
        kill_group(proc)

"""What a new user types in the first hour, run through ``python -m starman``: the bad
input, and the one line it now gets (or the thing it now does)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile

import pytest

from starman.access import ACCESS_LOG_DIRECTIVES
from tests.harness.process import PY, kill_group, spawn, wait_for
from tests.harness.rawhttp import http_get
from tests.harness.starman_program import APP, Launcher, launcher

__all__ = ["launcher"]


def run_to_exit(
    launcher: Launcher, args: list[str], timeout: float = 15.0
) -> tuple[int, str]:
    server = launcher.run(args)
    code = server.proc.wait(timeout=timeout)
    return code, server.log()


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("starman: error:")]


def test_help_lists_every_access_log_directive(launcher: Launcher) -> None:
    code, out = run_to_exit(launcher, ["--help"])
    assert code == 0
    flat = " ".join(out.split())
    for directive in ACCESS_LOG_DIRECTIVES:
        assert "%" + directive in flat, directive
    assert "%D %T" in flat


@pytest.mark.parametrize(
    ("value", "line"),
    [
        (
            "8091",
            "starman: error: invalid --listen value '8091': did you mean :8091?"
            " (a port needs its colon; unix:8091 names a socket file)",
        ),
        (
            "127.0.0.1",
            "starman: error: invalid --listen value '127.0.0.1': did you mean"
            " 127.0.0.1:5000? (an address needs its port; unix:127.0.0.1 names a"
            " socket file)",
        ),
    ],
)
def test_a_bare_listen_value_is_refused_and_creates_no_file(
    launcher: Launcher, value: str, line: str
) -> None:
    code, log = run_to_exit(launcher, ["--listen", value, APP])
    assert code == 2
    assert error_lines(log) == [line]
    assert not os.path.exists(os.path.join(launcher.tmpdir, value))


def test_unix_prefix_still_binds_a_socket_file_named_like_a_port(
    launcher: Launcher,
) -> None:
    server = launcher.run(["--workers", "1", "--listen", "unix:8091", APP])
    server.address = os.path.join(launcher.tmpdir, "8091")
    server.wait_log("all 1 workers ready")
    assert stat.S_ISSOCK(os.stat(server.address).st_mode)
    assert server.body("/") != ""


def test_access_log_dash_is_standard_output(tmp_path: object) -> None:
    workdir = str(tmp_path)
    sock = os.path.join(tempfile.mkdtemp(prefix="sm", dir="/tmp"), "a.sock")
    out_path = os.path.join(workdir, "stdout.txt")
    err_path = os.path.join(workdir, "stderr.txt")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = spawn(
            [PY, "-m", "starman", "--workers", "1", "--listen", f"unix:{sock}"]
            + ["--access-log", "-", APP],
            cwd=workdir,
            stdout=out.fileno(),
            stderr=err.fileno(),
        )
    try:
        wait_for(lambda: "all 1 workers ready" in _read(err_path), timeout=10.0)
        assert http_get(sock, "/logged").startswith(b"HTTP/1.1 200")
        line = wait_for(lambda: _read(out_path), timeout=5.0)
    finally:
        kill_group(proc)
        shutil.rmtree(os.path.dirname(sock), ignore_errors=True)
    assert '"GET /logged HTTP/1.1" 200' in line
    assert "GET /logged" not in _read(err_path)
    assert not os.path.exists(os.path.join(workdir, "-"))


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()

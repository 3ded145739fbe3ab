"""start_server bad input: one clear line, a non-zero exit, never a traceback."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from start_server import __version__
from tests.harness.start_server_program import ECHOD, START_SERVER

USAGE, FAILURE = 2, 1


@pytest.fixture
def wd() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sse", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(*args: str, prefix: tuple[str, ...] = ()) -> tuple[int, str, str]:
    res = subprocess.run(
        [*prefix, *START_SERVER, *args],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return res.returncode, res.stdout.decode(), res.stderr.decode()


def error_line(err: str) -> str:
    """The single error line; also checks there is no traceback."""
    assert "Traceback" not in err
    lines = [
        line for line in err.splitlines() if line.startswith("start_server: error:")
    ]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--port", "80x", "--", "true"],
            USAGE,
            "start_server: error: invalid --port value '80x': expected PORT, HOST:PORT or "
            "[IPV6]:PORT",
        ),
        (
            ["--port", "127.0.0.1:70000", "--", "true"],
            USAGE,
            "invalid --port value '127.0.0.1:70000': port 70000 is out of range 0-65535",
        ),
        (["--port", ":80", "true"], USAGE, "invalid --port value ':80': empty host"),
        (["--interval", "soon", "true"], USAGE, "invalid --interval value 'soon'"),
        (["--signal-on-hup", "NOPE", "true"], USAGE, "invalid --signal-on-hup value"),
        (
            ["--prot", "80", "true"],
            USAGE,
            "unknown option '--prot' (did you mean --port?)",
        ),
        ([], USAGE, "server program not specified"),
        (["--port", "0"], USAGE, "server program not specified"),
        (["--daemonize", "--", "true"], USAGE, "--daemonize requires --log-file"),
        (
            ["--restart"],
            USAGE,
            "--restart option requires --pid-file and --status-file",
        ),
        (["--stop"], USAGE, "--stop option requires --pid-file"),
        (
            ["--path", "/nonexistent-dir/x.sock", "--", "true"],
            FAILURE,
            "failed to listen to file /nonexistent-dir/x.sock: [Errno 2] No such file",
        ),
        (
            ["--envdir", "/nonexistent-envdir", "--", "true"],
            FAILURE,
            "cannot read envdir '/nonexistent-envdir': No such file or directory",
        ),
        (
            ["--", "/nonexistent/command"],
            FAILURE,
            "failed to exec '/nonexistent/command': [Errno 2] No such file or directory",
        ),
        (
            ["--dir", "/nonexistent-dir", "--", "true"],
            FAILURE,
            "failed to chdir to '/nonexistent-dir': [Errno 2] No such file or directory",
        ),
        (
            ["--status-file", "/nonexistent-dir/st", "--", "true"],
            FAILURE,
            "cannot write --status-file '/nonexistent-dir/st': directory "
            "'/nonexistent-dir' does not exist",
        ),
        (
            ["--config", "/nonexistent.toml", "--", "true"],
            USAGE,
            "cannot read config file '/nonexistent.toml'",
        ),
    ],
)
def test_bad_input_is_one_line_and_non_zero(
    args: list[str], code: int, message: str
) -> None:
    rc, _, err = run(*args)
    assert rc == code, err
    assert message in error_line(err)


def test_port_in_use(wd: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        rc, _, err = run("--port", f"127.0.0.1:{port}", "--", *ECHOD)
    assert rc == FAILURE
    assert error_line(err) == (
        f"start_server: error: failed to bind to 127.0.0.1:{port}: "
        "[Errno 98] Address already in use"
    )


def test_permission_denied_on_privileged_port() -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv(1) not installed")
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        if int(f.read()) <= 80:
            pytest.skip("port 80 is not privileged here")
    rc, _, err = run(
        "--port", "127.0.0.1:80", "--", "true",
        prefix=(setpriv, "--bounding-set=-net_bind_service"),
    )  # fmt: skip
    assert rc == FAILURE
    assert error_line(err) == (
        "start_server: error: failed to bind to 127.0.0.1:80: [Errno 13] Permission denied"
    )


def test_unexecutable_command(wd: Path) -> None:
    script = wd / "script"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    rc, _, err = run("--", str(script))
    assert rc == FAILURE
    assert f"failed to exec '{script}': [Errno 13] Permission denied" in error_line(err)


def test_path_on_a_regular_file_leaves_it_alone(wd: Path) -> None:
    target = wd / "data"
    target.write_text("precious")
    rc, _, err = run("--path", str(target), "--", "true")
    assert rc == FAILURE
    assert "File exists and is not a socket" in error_line(err)
    assert target.read_text() == "precious"


def test_restart_and_stop_without_pid_file(wd: Path) -> None:
    pid, status = str(wd / "pid"), str(wd / "status")
    rc, _, err = run("--restart", "--pid-file", pid, "--status-file", status)
    assert rc == FAILURE
    assert f"pid file '{pid}' does not exist" in error_line(err)
    rc, _, err = run("--stop", "--pid-file", pid)
    assert rc == FAILURE
    assert f"pid file '{pid}' does not exist" in error_line(err)


def test_stop_with_pid_of_dead_process(wd: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait(timeout=10)
    pid = wd / "pid"
    pid.write_text(f"{dead.pid}\n")
    rc, _, err = run("--stop", "--pid-file", str(pid))
    assert rc == FAILURE
    assert f"is stale: process {dead.pid} is not running" in error_line(err)


def test_stop_with_pid_reused_by_another_process(wd: Path) -> None:
    # A live pid that holds no lock on the file: not a start_server.
    with subprocess.Popen(["sleep", "30"]) as other:
        try:
            pid = wd / "pid"
            pid.write_text(f"{other.pid}\n")
            rc, _, err = run("--stop", "--pid-file", str(pid))
            assert rc == FAILURE
            assert "is stale: no running server holds its lock" in error_line(err)
            assert other.poll() is None  # it was not signalled
        finally:
            other.kill()


def test_garbage_pid_file(wd: Path) -> None:
    pid = wd / "pid"
    pid.write_text("hello\n")
    rc, _, err = run("--stop", "--pid-file", str(pid))
    assert rc == FAILURE
    assert "holds no pid: 'hello'" in error_line(err)


def test_restart_with_unreadable_status_file(wd: Path) -> None:
    with subprocess.Popen(["sleep", "30"]) as other:
        try:
            pid = wd / "pid"
            pid.write_text(f"{other.pid}\n")
            with open(pid) as held:
                fcntl.flock(held, fcntl.LOCK_EX)  # pretend a server holds it
                status = wd / "status"
                status.mkdir()
                rc, _, err = run(
                    "--restart", "--pid-file", str(pid), "--status-file", str(status)
                )
            assert rc == FAILURE
            assert f"cannot read status file '{status}': Is a directory" in error_line(
                err
            )
        finally:
            other.kill()


def test_help_and_version() -> None:
    rc, out, _ = run("--help")
    assert rc == 0
    assert "usage: start_server [options] -- server-prog" in out
    for flag in ("--port", "--path", "--kill-old-delay", "--enable-auto-restart"):
        assert flag in out
    rc, out, _ = run("--version")
    assert (rc, out) == (0, f"{__version__}\n")


def test_bad_env_value_is_one_line() -> None:
    res = subprocess.run(
        [*START_SERVER, "--", "true"],
        capture_output=True,
        timeout=30,
        env={**os.environ, "KILL_OLD_DELAY": "soon"},
    )
    assert res.returncode == USAGE  # a configuration error, as in starman
    assert "invalid environment variable KILL_OLD_DELAY='soon'" in error_line(
        res.stderr.decode()
    )

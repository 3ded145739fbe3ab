"""Bad input to starman: one clear ``starman: error:`` line and a non-zero exit each."""

from __future__ import annotations

import os
import socket

import pytest

from tests.harness.starman_program import (
    APP,
    Launcher,
    error_lines,
    launcher,
    run_to_exit,
)

__all__ = ["launcher"]

NOT_CALLABLE = "master_notcallable:app"
APPS_DIR = os.path.join(os.path.dirname(APP))


def test_unknown_option_suggests_the_right_one(launcher: Launcher) -> None:
    code, log = run_to_exit(launcher, ["--worker", "10", APP])
    assert code == 2
    assert error_lines(log) == [
        "starman: error: unknown option '--worker' (did you mean --workers?)"
    ]


def test_bad_listen_value(launcher: Launcher) -> None:
    code, log = run_to_exit(launcher, ["--listen", "127.0.0.1:http", APP])
    assert code == 2
    assert error_lines(log) == [
        "starman: error: invalid --listen value '127.0.0.1:http': expected HOST:PORT, "
        ":PORT, [IPV6]:PORT (optionally :ssl), unix:PATH or a PATH"
    ]


def test_missing_app_file(launcher: Launcher) -> None:
    code, log = run_to_exit(launcher, ["--listen", "unix:x.sock", "nope.py"])
    assert code == 4
    assert error_lines(log) == [
        f"starman: error: cannot import app 'nope.py': file not found (cwd={launcher.tmpdir})"
    ]


def test_attribute_that_is_not_callable(launcher: Launcher) -> None:
    code, log = run_to_exit(
        launcher,
        ["--workers", "1", "-I", APPS_DIR, "--listen", "unix:x.sock", NOT_CALLABLE],
    )
    assert code == 4
    assert "cannot import app 'master_notcallable:app': not callable (got int)" in log
    assert len(error_lines(log)) == 1


def test_unknown_user(launcher: Launcher) -> None:
    code, log = run_to_exit(
        launcher, ["--user", "no-such-user-x9", "--listen", "unix:x.sock", APP]
    )
    assert code == 1
    assert error_lines(log) == [
        "starman: error: unknown user 'no-such-user-x9' (--user)"
    ]


def test_port_in_use(launcher: Launcher) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, log = run_to_exit(launcher, ["--listen", f"127.0.0.1:{port}", APP])
    assert code == 1
    assert error_lines(log) == [
        f"starman: error: failed to bind to 127.0.0.1:{port}: [Errno 98] Address already in use"
    ]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--min-servers", "2"], "use --workers / TTIN / TTOU"),
        (["-r"], "kill -HUP"),
        (["--enable-ssl"], "needs --ssl-cert"),
    ],
)
def test_perl_options_without_meaning_here(
    launcher: Launcher, args: list[str], needle: str
) -> None:
    code, log = run_to_exit(launcher, [*args, APP])
    assert code == 2
    lines = error_lines(log)
    assert len(lines) == 1 and needle in lines[0]


def test_version_and_help(launcher: Launcher) -> None:
    code, log = run_to_exit(launcher, ["--version"])
    assert code == 0 and log.startswith("starman 0.")
    code, log = run_to_exit(launcher, ["--help"])
    assert code == 0 and "--max-requests" in log and "--graceful-timeout" in log

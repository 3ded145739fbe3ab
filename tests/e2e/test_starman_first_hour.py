"""What a new user types in the first hour, run through ``python -m starman``: the bad
input, and the one line it now gets (or the thing it now does)."""

from __future__ import annotations

import os
import stat

import pytest

from starman.access import ACCESS_LOG_DIRECTIVES
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

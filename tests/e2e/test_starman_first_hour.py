"""What a new user types in the first hour, run through ``python -m starman``: the bad
input, and the one line it now gets (or the thing it now does)."""

from __future__ import annotations

from starman.access import ACCESS_LOG_DIRECTIVES
from tests.harness.starman_program import Launcher, launcher

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

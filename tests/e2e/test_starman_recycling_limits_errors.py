"""--max-worker-memory and --max-worker-lifetime: a value that is not a positive number
gets one clear line and exit 2, from the command line and from a TOML file."""

from __future__ import annotations

import os

import pytest

from tests.harness.starman_program import (
    APP,
    Launcher,
    error_lines,
    launcher,
    run_to_exit,
)

__all__ = ["launcher"]


@pytest.mark.parametrize("option", ["--max-worker-memory", "--max-worker-lifetime"])
@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("0", "expected a number > 0"),
        ("-5", "expected a number > 0"),
        ("lots", "expected a number"),
    ],
)
def test_a_limit_that_is_not_a_positive_number_exits_2(
    launcher: Launcher, option: str, value: str, why: str
) -> None:
    code, log = run_to_exit(launcher, [option, value, APP])
    assert code == 2
    assert error_lines(log) == [
        f"starman: error: invalid {option} value '{value}': {why}"
    ]


def test_a_bad_limit_in_the_toml_file_exits_2(launcher: Launcher) -> None:
    path = os.path.join(launcher.tmpdir, "starman.toml")
    with open(path, "w") as f:
        f.write("[starman]\nmax_worker_lifetime = 0\n")
    code, log = run_to_exit(launcher, ["--config", path, APP])
    assert code == 2
    lines = error_lines(log)
    assert len(lines) == 1 and "max_worker_lifetime" in lines[0], log
    assert "expected a number > 0" in lines[0]


def test_good_limits_start_the_server(launcher: Launcher) -> None:
    server = launcher.inherited(
        APP, "--max-worker-memory", "512", "--max-worker-lifetime", "3600", workers=1
    )
    assert server.body().endswith(":v1")

"""start_server's configuration errors exit 2, as starman's, and usage is printed once."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.harness.start_server_program import START_SERVER

USAGE_LINE = "usage: start_server [options] -- server-prog server-arg1 server-arg2 ..."


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    res = subprocess.run(
        [*START_SERVER, *args],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    return res.returncode, res.stderr.decode()


def test_invalid_toml_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "app.toml"
    bad.write_text("[start_server]\nport = [\n")
    rc, err = run("--config", str(bad), "--", "true")
    assert rc == 2, err
    # One line; the parser's own words after the colon depend on the Python version.
    (line,) = err.splitlines()
    assert line.startswith(f"start_server: error: invalid TOML in '{bad}': ")


def test_unknown_toml_key_exits_2(tmp_path: Path) -> None:
    conf = tmp_path / "app.toml"
    conf.write_text('[start_server]\nprot = ["8080"]\n')
    rc, err = run("--config", str(conf), "--", "true")
    assert rc == 2, err
    assert err.splitlines() == [
        f"start_server: error: {conf}: unknown key 'prot' in [start_server] "
        "(did you mean 'port'?)"
    ]


def test_bad_compatibility_variable_exits_2() -> None:
    env = {**os.environ, "KILL_OLD_DELAY": "soon"}
    rc, err = run("--port", "127.0.0.1:0", "--", "true", env=env)
    assert rc == 2, err
    assert err.splitlines() == [
        "start_server: error: invalid environment variable KILL_OLD_DELAY='soon': "
        "expected a number"
    ]


def test_no_program_prints_the_usage_once() -> None:
    rc, err = run()
    assert rc == 2
    assert err.splitlines() == [
        "start_server: error: server program not specified",
        USAGE_LINE,
    ]


def test_a_good_config_still_starts_nothing_without_a_program(tmp_path: Path) -> None:
    conf = tmp_path / "app.toml"
    conf.write_text('[start_server]\nport = ["127.0.0.1:0"]\n')
    rc, err = run("--config", str(conf))
    assert rc == 2
    assert err.count("usage:") == 1
    assert err.splitlines()[0] == "start_server: error: server program not specified"

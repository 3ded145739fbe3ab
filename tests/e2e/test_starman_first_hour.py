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
from tests.harness.starman_program import (
    APP,
    Launcher,
    error_lines,
    launcher,
    run_to_exit,
)

__all__ = ["launcher"]


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


GUNICORN_MODULE = """
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"module application"]


def create_app(name="factory"):
    def made(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [name.encode()]

    return made
"""


def _write_module(launcher: Launcher, name: str = "gapp") -> None:
    with open(os.path.join(launcher.tmpdir, f"{name}.py"), "w") as f:
        f.write(GUNICORN_MODULE)


def test_a_second_app_argument_is_named_as_such(launcher: Launcher) -> None:
    code, log = run_to_exit(launcher, [APP, "myapp.py"])
    assert code == 2
    assert error_lines(log) == [
        f"starman: error: one APP only, got 2: {APP!r}, 'myapp.py'"
    ]


@pytest.mark.parametrize(
    ("word", "line"),
    [
        ("--preload-ap", "unknown option '--preload-ap' (did you mean --preload-app?)"),
        ("--bnd", "unknown option '--bnd' (did you mean --bind?)"),
        (
            "--threads",
            "unknown option '--threads' (gunicorn's): not supported: every worker"
            " runs one event loop",
        ),
    ],
)
def test_did_you_mean_names_only_options_that_work(
    launcher: Launcher, word: str, line: str
) -> None:
    code, log = run_to_exit(launcher, [word, "2", APP])
    assert code == 2
    assert error_lines(log) == ["starman: error: " + line]


def test_an_error_in_e_is_blamed_on_e_not_the_app_file(launcher: Launcher) -> None:
    code, log = run_to_exit(
        launcher, ["--preload-app", "-e", "1/0", "--listen", "unix:x.sock", APP]
    )
    assert code == 4
    assert error_lines(log) == [
        "starman: error: cannot import app -e '1/0': it raised ZeroDivisionError:"
        " division by zero"
    ]
    assert "Traceback" not in log


def test_factory_on_a_plain_app_is_one_line(launcher: Launcher) -> None:
    code, log = run_to_exit(
        launcher, ["--preload-app", "--factory", "--listen", "unix:x.sock", APP]
    )
    assert code == 4
    assert error_lines(log) == [
        f"starman: error: cannot import app {APP!r}: --factory calls it with no"
        " arguments, but it takes (environ, start_response): it looks like the app"
        " itself (drop --factory)"
    ]
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("spec", "answer"),
    [
        ("gapp", "module application"),
        ("gapp:create_app()", "factory"),
        ("gapp:create_app('named')", "named"),
    ],
)
def test_gunicorn_app_spellings_serve(
    launcher: Launcher, spec: str, answer: str
) -> None:
    _write_module(launcher)
    sock = os.path.join(launcher.tmpdir, "g.sock")
    server = launcher.run(["-w", "1", "-b", f"unix:{sock}", spec], address=sock)
    server.wait_log("all 1 workers ready")
    assert server.body("/") == answer


def test_a_factory_named_without_parentheses_names_factory(
    launcher: Launcher,
) -> None:
    _write_module(launcher)
    code, log = run_to_exit(
        launcher, ["--preload", "--bind", "unix:x.sock", "gapp:create_app"]
    )
    assert code == 4
    assert error_lines(log) == [
        "starman: error: cannot import app 'gapp:create_app': it takes no arguments,"
        " not (environ, start_response): if it is a factory, write"
        " 'gapp:create_app()' or add --factory"
    ]

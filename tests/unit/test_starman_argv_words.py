"""The words of starman's command line: one APP only, did-you-mean hints that name only
options that work, and gunicorn's spellings (aliases where they mean the same, hints
where they do not)."""

from __future__ import annotations

import pathlib

import pytest

from starman.configload import load_settings
from starman.optionvalues import ListenSpec
from start_server.common.options import ConfigError, UsageError


def usage_error(argv: list[str]) -> str:
    with pytest.raises(UsageError) as info:
        load_settings(argv, {})
    return str(info.value)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["myapp.py", "other.py"], "one APP only, got 2: 'myapp.py', 'other.py'"),
        (
            ["myapp.py", "--workers", "2", "other.py"],
            "one APP only, got 2: 'myapp.py', 'other.py'",
        ),
        (["--", "a.py", "b.py", "c.py"], "one APP only, got 3: 'a.py', 'b.py', 'c.py'"),
    ],
)
def test_a_second_app_is_named_as_such(argv: list[str], message: str) -> None:
    assert usage_error(argv) == message


@pytest.mark.parametrize(
    "argv",
    [
        ["myapp.py"],
        ["--workers", "2", "myapp.py"],
        ["-e", "lambda e, s: []", "--listen", ":0"],
        ["--timeout", "3", "-Ilib", "myapp.py"],
        ["--listen=:0", "myapp.py"],
        ["--", "myapp.py"],
    ],
)
def test_one_app_with_option_values_around_it_is_fine(argv: list[str]) -> None:
    load_settings(argv, {})


@pytest.mark.parametrize(
    ("word", "hint"),
    [
        ("--worker", "--workers"),
        ("--preload-ap", "--preload-app"),
        ("--bnd", "--bind"),
        ("--graceful-timout", "--graceful-timeout"),
    ],
)
def test_did_you_mean_suggests_a_working_option(word: str, hint: str) -> None:
    assert usage_error([word]) == f"unknown option {word!r} (did you mean {hint}?)"


def test_did_you_mean_never_suggests_an_unsupported_option() -> None:
    for word in ("--reloadx", "--Reloadx", "--relaod"):
        hint = usage_error([word]).partition(f"{word!r}")[2]
        assert hint in ("", " (did you mean --preload?)"), hint


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["--bind", "127.0.0.1:8000"], "listen", (ListenSpec("127.0.0.1", 8000),)),
        (
            ["-b", ":8000", "-b", "unix:a.sock"],
            "listen",
            (
                ListenSpec(None, 8000),
                ListenSpec(path="a.sock"),
            ),
        ),
        (["-w", "3"], "workers", 3),
        (["--preload"], "preload_app", True),
    ],
)
def test_gunicorn_aliases(argv: list[str], field: str, value: object) -> None:
    assert getattr(load_settings(argv, {}), field) == value


@pytest.mark.parametrize(
    ("word", "hint"),
    [
        ("--access-logfile", "use --access-log (- for standard output)"),
        ("--error-logfile", "use --error-log"),
        ("--daemon", "use --daemonize"),
        ("--keep-alive", "use --keepalive-timeout"),
        ("--threads", "not supported: every worker runs one event loop"),
        ("-k", "not supported: every worker runs one event loop"),
        ("-c", "use --config FILE.toml (a [starman] table, not Python)"),
        ("-t", "use --timeout"),
    ],
)
def test_gunicorn_spellings_that_are_not_ours_get_what_to_write(
    word: str, hint: str
) -> None:
    assert usage_error([word, "x"]) == f"unknown option {word!r} (gunicorn's): {hint}"


def test_gunicorn_env_assignments_are_not_perl_options() -> None:
    assert usage_error(["-e", "DEBUG=1"]).startswith(
        "-e 'DEBUG=1': -e is Perl's, a Python expression giving the app"
    )
    assert usage_error(["--env", "DEBUG=1"]).startswith(
        "--env 'DEBUG=1': --env names the environment (sets STARMAN_ENV, Perl's -E)"
    )
    assert load_settings(["-e", "x == 1"], {}).eval == "x == 1"
    assert load_settings(["--env", "development"], {}).env == "development"


def test_a_python_config_file_is_refused() -> None:
    assert usage_error(["--config", "gunicorn.conf.py"]) == (
        "--config 'gunicorn.conf.py': expected a TOML file with a [starman] table"
        " (gunicorn's Python config files are not read)"
    )


def test_perl_only_spellings_keep_their_hints() -> None:
    assert usage_error(["--net-server-log-file", "x"]) == (
        "--net-server-log-file is not supported (no Net::Server here): use --error-log"
    )
    assert usage_error(["--max-servers", "9"]).startswith(
        "--max-servers is not supported (the pool is fixed)"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "preload = true",
            "unknown key 'preload' in [starman] (did you mean 'preload-app'?)",
        ),
        ("bind = ':8000'", "unknown key 'bind' in [starman] (did you mean 'listen'?)"),
        ("worker = 3", "unknown key 'worker' in [starman] (did you mean 'workers'?)"),
        (
            "relod = true",
            "unknown key 'relod' in [starman] (did you mean 'preload-app'?)",
        ),
        ("zzz = 1", "unknown key 'zzz' in [starman]"),
    ],
)
def test_toml_key_hints_name_only_working_keys(
    tmp_path: pathlib.Path, line: str, message: str
) -> None:
    path = tmp_path / "app.toml"
    path.write_text(f"[start_server]\nport = 1\n[starman]\nworkers = 2\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(["--config", str(path)], {})
    assert str(info.value) == f"{path}: {message}"


def test_toml_unsupported_keys_keep_their_own_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "app.toml"
    path.write_text("[starman]\nreload = true\n")
    assert usage_error(["--config", str(path)]).startswith(
        "-r/--reload and -R/--Reload are not supported"
    )
    path.write_text("[starman]\nworkers = 3\n")
    assert load_settings(["--config", str(path)], {}).workers == 3

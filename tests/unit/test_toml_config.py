"""``--config FILE.toml`` for both programs: precedence CLI > env > TOML > default, bad keys."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from starman.access import parse_access_log_format
from starman.configload import load_settings
from start_server import config as ss_config
from start_server.common.options import ConfigError, UsageError
from start_server.common.portspec import parse_port_spec

BOTH = """\
[start_server]
port = ["127.0.0.1:8080", "8081"]
kill-old-delay = 3
status_file = "/run/app/status"
signal-on-hup = "QUIT"
log-level = "warning"

[starman]
workers = 7
env = "staging"
log-level = "warning"
listen = "unix:/run/app.sock"
max-request-body = "10M"
keepalive = false
access-log-format = "common"
"""


def _write(tmp_path: Path, text: str, name: str = "app.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------------------- one file, two tables


def test_one_file_configures_both_programs(tmp_path: Path) -> None:
    path = _write(tmp_path, BOTH)
    ss, command = ss_config.load(["--config", path, "--", "prog"], {})
    assert ss.port == (parse_port_spec("127.0.0.1:8080"), parse_port_spec("8081"))
    assert ss.kill_old_delay == 3.0
    assert ss.status_file == "/run/app/status"
    assert ss.signal_on_hup is signal.SIGQUIT
    assert ss.log_level == "warning"
    assert command == ("prog",)
    sm = load_settings(["--config", path], {})
    assert (sm.workers, sm.env, sm.log_level) == (7, "staging", "warning")
    assert [spec.path for spec in sm.listen] == ["/run/app.sock"]
    assert sm.max_request_body == 10 << 20
    assert sm.keepalive is False
    assert sm.access_log_format == '%h %l %u %t "%r" %>s %b'


# --------------------------------------------------------------------------- precedence


def test_start_server_precedence_cli_env_toml_default(tmp_path: Path) -> None:
    path = _write(tmp_path, "[start_server]\nkill-old-delay = 3\n")
    cmd = ["--", "prog"]
    assert ss_config.load(cmd, {})[0].kill_old_delay is None  # default
    assert ss_config.load(["--config", path, *cmd], {})[0].kill_old_delay == 3.0
    env = {"KILL_OLD_DELAY": "4"}
    assert ss_config.load(["--config", path, *cmd], env)[0].kill_old_delay == 4.0
    argv = ["--config", path, "--kill-old-delay", "5", *cmd]
    assert ss_config.load(argv, env)[0].kill_old_delay == 5.0


def test_start_server_flag_precedence(tmp_path: Path) -> None:
    on = _write(tmp_path, "[start_server]\nenable-auto-restart = true\n", "on.toml")
    cmd = ["--", "prog"]
    assert ss_config.load(cmd, {})[0].enable_auto_restart is False
    assert ss_config.load(["--config", on, *cmd], {})[0].enable_auto_restart is True
    env = {"ENABLE_AUTO_RESTART": "0"}
    assert ss_config.load(["--config", on, *cmd], env)[0].enable_auto_restart is False
    argv = ["--config", on, "--enable-auto-restart", *cmd]
    assert ss_config.load(argv, env)[0].enable_auto_restart is True


def test_starman_precedence_cli_env_toml_default(tmp_path: Path) -> None:
    path = _write(tmp_path, '[starman]\nenv = "toml"\nlog-level = "error"\n')
    assert load_settings([], {}).env == "deployment"
    assert load_settings(["--config", path], {}).env == "toml"
    env = {"STARMAN_ENV": "fromenv"}
    assert load_settings(["--config", path], env).env == "fromenv"
    assert load_settings(["--config", path, "-E", "cli"], env).env == "cli"
    # --log-level: STARMAN_DEBUG=1 is its environment spelling.
    assert load_settings([], {}).log_level == "info"
    assert load_settings(["--config", path], {}).log_level == "error"
    debug = {"STARMAN_DEBUG": "1"}
    assert load_settings(["--config", path], debug).log_level == "debug"
    argv = ["--config", path, "--log-level", "WARN"]
    assert load_settings(argv, debug).log_level == "warning"


def test_starman_cli_overrides_the_file_option_by_option(tmp_path: Path) -> None:
    path = _write(tmp_path, "[starman]\nworkers = 7\nmax-requests = 10\n")
    s = load_settings(["--config", path, "--workers", "2"], {})
    assert (s.workers, s.max_requests) == (2, 10)
    s = load_settings(["--config", path, "--disable-keepalive"], {})
    assert (s.workers, s.keepalive) == (7, False)


def test_repeatable_cli_option_replaces_the_file_list(tmp_path: Path) -> None:
    path = _write(tmp_path, '[starman]\nlisten = [":8080", "unix:/a.sock"]\n')
    s = load_settings(["--config", path, "--listen", ":9090"], {})
    assert [(x.host, x.port) for x in s.listen] == [(None, 9090)]


def test_app_from_the_file_and_positional_app_wins(tmp_path: Path) -> None:
    path = _write(tmp_path, '[starman]\napp = "pkg.mod:app"\n')
    assert load_settings(["--config", path], {}).app == "pkg.mod:app"
    assert load_settings(["--config", path, "other.py"], {}).app == "other.py"


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("table", "body", "message"),
    [
        (
            "starman",
            "workerz = 3",
            "unknown key 'workerz' in [starman] (did you mean 'workers'?)",
        ),
        (
            "starman",
            'workers = "many"',
            "invalid value 'many' for key 'workers' in [starman]: expected an integer",
        ),
        (
            "starman",
            "workers = 0",
            "invalid value 0 for key 'workers' in [starman]: expected an integer >= 1",
        ),
        (
            "starman",
            'keepalive = "yes"',
            "invalid value 'yes' for key 'keepalive' in [starman]: expected true or false",
        ),
        (
            "starman",
            'access-log-format = "%h %Z"',
            "invalid value '%h %Z' for key 'access-log-format' in [starman]: "
            "unknown directive %Z: expected",
        ),
        (
            "starman",
            'log-level = "loud"',
            "for key 'log-level' in [starman]: expected debug, info, warning or error",
        ),
        (
            "starman",
            'config = "other.toml"',
            "unknown key 'config' in [starman]",
        ),
        (
            "start_server",
            "intervall = 2",
            "unknown key 'intervall' in [start_server] (did you mean 'interval'?)",
        ),
        (
            "start_server",
            'port = ["80x"]',
            "invalid value ['80x'] for key 'port' in [start_server]: expected",
        ),
        (
            "start_server",
            "restart = true",
            "unknown key 'restart' in [start_server]",
        ),
        (
            "start_server",
            "kill-old-delay = [1]",
            "invalid value [1] for key 'kill-old-delay' in [start_server]: "
            "expected a string or number, not list",
        ),
    ],
)
def test_bad_key_or_value_is_one_line_naming_file_key_and_expectation(
    tmp_path: Path, table: str, body: str, message: str
) -> None:
    path = _write(tmp_path, f"[{table}]\n{body}\n")
    with pytest.raises(ConfigError) as info:
        if table == "starman":
            load_settings(["--config", path], {})
        else:
            ss_config.load(["--config", path, "--", "prog"], {})
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: ")
    assert message in text


def test_invalid_toml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    broken = _write(tmp_path, "[starman]\nworkers = \n")
    with pytest.raises(ConfigError, match=r"invalid TOML in '.*app\.toml'"):
        load_settings(["--config", broken], {})
    missing = os.path.join(str(tmp_path), "nope.toml")
    with pytest.raises(ConfigError, match=r"cannot read config file '.*nope\.toml'"):
        ss_config.load(["--config", missing, "--", "prog"], {})


def test_the_other_programs_table_is_ignored(tmp_path: Path) -> None:
    path = _write(tmp_path, "[start_server]\ninterval = 2\n[other]\nx = 1\n")
    assert load_settings(["--config", path], {}).workers == 5
    path = _write(tmp_path, "[starman]\nworkers = 2\n", "b.toml")
    assert ss_config.load(["--config", path, "--", "p"], {})[0].interval == 1.0


def test_a_table_that_is_not_a_table_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, 'starman = "workers=3"\n')
    with pytest.raises(ConfigError, match=r"\[starman\] must be a table"):
        load_settings(["--config", path], {})


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(
        ConfigError, match="invalid environment variable KILL_OLD_DELAY='soon'"
    ):
        ss_config.load(["--", "prog"], {"KILL_OLD_DELAY": "soon"})


def test_bad_cli_value_is_a_usage_error_even_with_a_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[starman]\nworkers = 3\n")
    with pytest.raises(UsageError, match="invalid --workers value 'x'"):
        load_settings(["--config", path, "--workers", "x"], {})


# --------------------------------------------------------------------------- access log format


def test_named_access_log_formats_and_directives() -> None:
    assert parse_access_log_format("combined") == (
        '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'
    )
    assert parse_access_log_format("%h %{user-agent}i %% %P") == (
        "%h %{user-agent}i %% %P"
    )
    for good in ("%{X-Forwarded-For}i %{x_real_ip}i", "%D %T"):
        assert parse_access_log_format(good) == good
    for bad in ("%", "%Z", "%{}i", "%{Host}o"):
        with pytest.raises(ValueError, match="unknown directive"):
            parse_access_log_format(bad)


def test_access_log_formatter_fills_headers_and_durations() -> None:
    import logging

    from starman.access import AccessLogFormatter, AccessRecord

    fmt = AccessLogFormatter('%h "%r" %>s %b %{X-Request-Id}i %{Content-Type}i %D %T')

    def log_record(environ: dict[str, str], micros: int | None) -> logging.LogRecord:
        entry = AccessRecord(
            "10.0.0.1", 0.0, "POST", "/x", "1.1", 201, 5, micros, environ
        )
        return logging.LogRecord(
            "starman.access", logging.INFO, __file__, 1, "%s", (entry,), None
        )

    record = log_record(
        {"HTTP_X_REQUEST_ID": "abc", "CONTENT_TYPE": "text/plain"}, 2_500_000
    )
    assert fmt.format(record) == (
        '10.0.0.1 "POST /x HTTP/1.1" 201 5 abc text/plain 2500000 2'
    )
    # Without the environ and timing (a rejected request): dashes.
    record = log_record({}, None)
    assert fmt.format(record) == '10.0.0.1 "POST /x HTTP/1.1" 201 5 - - - -'

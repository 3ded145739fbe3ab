"""start_server's option table: Settings mirrors it; both spellings; env; TOML; rules."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from start_server.common.options import ConfigError, UsageError
from start_server.common.portspec import PortSpec, Transport
from start_server.config import OPTIONS, Settings, check, load


def test_settings_fields_equal_the_option_table() -> None:
    assert list(Settings.__annotations__) == [o.name for o in OPTIONS]


def test_defaults_are_perls() -> None:
    settings, command = load(["--", "prog"], {})
    assert command == ("prog",)
    assert settings.interval == 1.0
    assert settings.kill_old_delay is None
    assert settings.signal_on_hup is signal.SIGTERM
    assert settings.signal_on_term is signal.SIGTERM
    assert settings.port == () and settings.path == ()
    assert not settings.enable_auto_restart and not settings.daemonize
    assert settings.backlog == __import__("socket").SOMAXCONN


@pytest.mark.parametrize(
    "argv",
    [
        ["--port=80", "--interval=3", "--", "prog"],
        ["--port", "80", "--interval", "3", "--", "prog"],
        ["--port", "80", "--interval", "3", "prog"],
    ],
)
def test_both_spellings_and_optional_separator(argv: list[str]) -> None:
    settings, command = load(argv, {})
    assert settings.port == (PortSpec("80", Transport.TCP, None, 80),)
    assert settings.interval == 3.0
    assert command == ("prog",)


def test_repeated_ports_and_paths_keep_order() -> None:
    settings, _ = load(
        ["--port", "127.0.0.1:8080", "--path", "/tmp/a.sock", "--port", "9000", "x"], {}
    )
    assert [s.key for s in settings.specs] == ["127.0.0.1:8080", "9000", "/tmp/a.sock"]


def test_command_words_after_separator_are_not_parsed() -> None:
    _, command = load(["--", "prog", "--port", "1", "--", "x"], {})
    assert command == ("prog", "--port", "1", "--", "x")


def test_command_without_separator_takes_the_rest() -> None:
    _, command = load(["--port", "1", "prog", "-x", "--", "y"], {})
    assert command == ("prog", "-x", "--", "y")


def test_signal_names_are_normalised() -> None:
    settings, _ = load(["--signal-on-hup", "sigusr1", "--signal-on-term=QUIT", "x"], {})
    assert settings.signal_on_hup == signal.SIGUSR1
    assert settings.signal_on_term == signal.SIGQUIT


def test_invalid_port_names_option_and_input() -> None:
    with pytest.raises(UsageError, match=r"invalid --port value '80x': expected PORT"):
        load(["--port", "80x", "x"], {})


def test_unknown_option_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown option '--prot'"):
        load(["--prot", "80", "x"], {})


def test_env_vars_perl_honours() -> None:
    env = {
        "KILL_OLD_DELAY": "4",
        "ENABLE_AUTO_RESTART": "1",
        "AUTO_RESTART_INTERVAL": "20",
        "ENVDIR": "/etc/x",
    }
    settings, _ = load(["x"], env)
    assert settings.kill_old_delay == 4.0
    assert settings.enable_auto_restart
    assert settings.auto_restart_interval == 20.0
    assert settings.envdir == "/etc/x"


def test_cli_beats_env_beats_toml(tmp_path: Path) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text(
        '[start_server]\nkill-old-delay = 7\ninterval = 2\nport = ["81", 82]\n'
        "[starman]\nworkers = 3\n"
    )
    settings, _ = load(
        ["--config", str(conf), "--interval", "5", "x"], {"KILL_OLD_DELAY": "6"}
    )
    assert settings.interval == 5.0
    assert settings.kill_old_delay == 6.0
    assert [s.key for s in settings.port] == ["81", "82"]
    settings, _ = load(["--config", str(conf), "x"], {})
    assert settings.kill_old_delay == 7.0


def test_toml_unknown_key_is_an_error(tmp_path: Path) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text("[start_server]\nintervall = 2\n")
    with pytest.raises(ConfigError, match="unknown key 'intervall'.*did you mean"):
        load(["--config", str(conf), "x"], {})


def test_check_requires_a_command() -> None:
    settings, command = load([], {})
    with pytest.raises(UsageError, match="server program not specified"):
        check(settings, command)


def test_check_daemonize_needs_log_file() -> None:
    settings, command = load(["--daemonize", "x"], {})
    with pytest.raises(UsageError, match="--daemonize requires --log-file"):
        check(settings, command)


def test_check_restart_and_stop_need_files() -> None:
    settings, command = load(["--restart", "--pid-file", "p"], {})
    with pytest.raises(UsageError, match="--status-file"):
        check(settings, command)
    settings, command = load(["--stop"], {})
    with pytest.raises(UsageError, match="--pid-file"):
        check(settings, command)
    settings, command = load(["--stop", "--pid-file", "p"], {})
    check(settings, command)

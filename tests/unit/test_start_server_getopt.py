"""start_server takes the spellings Perl's Getopt::Long does: -h, -version, --vers, --PORT."""

from __future__ import annotations

import pytest

from start_server.common.options import UsageError
from start_server.config import load


@pytest.mark.parametrize(
    "word", ["-h", "--h", "-H", "-help", "--help", "--hel", "--HELP"]
)
def test_help_spellings(word: str) -> None:
    settings, _ = load([word], {})
    assert settings.help


@pytest.mark.parametrize(
    "word", ["-version", "--version", "--vers", "-v", "--ver", "-VERSION", "--Vers"]
)
def test_version_spellings(word: str) -> None:
    settings, _ = load([word], {})
    assert settings.version


@pytest.mark.parametrize(
    "argv",
    [
        ["-port", "8080", "--", "prog"],
        ["-port=8080", "prog"],
        ["--po", "8080", "prog"],
        ["--PORT", "8080", "prog"],
        ["--port", "8080", "-interv", "3", "prog"],
    ],
)
def test_single_dash_abbreviated_and_any_case_long_options(argv: list[str]) -> None:
    settings, command = load(argv, {})
    assert [p.key for p in settings.port] == ["8080"]
    assert command == ("prog",)


def test_prefix_unique_in_perl_keeps_its_meaning() -> None:
    # Perl's --re is --restart and --log is --log-file, though we added --ready-timeout
    # and --log-level.
    settings, _ = load(["--re", "--log", "/tmp/log", "--pid", "p", "--stat", "s"], {})
    assert settings.restart and settings.log_file == "/tmp/log"
    assert settings.pid_file == "p" and settings.status_file == "s"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--p", "80", "prog"],
            "option '--p' is ambiguous (--path, --pid-file, --port)",
        ),
        (
            ["-s", "prog"],
            "option '-s' is ambiguous (--signal-on-hup, --signal-on-term, "
            "--status-file, --stop)",
        ),
        (
            ["--wait", "prog"],
            "option '--wait' is ambiguous (--wait-ready, --wait-timeout)",
        ),
        (["--vers=1"], "option --version takes no value: '--vers=1'"),
        (["---version"], "unknown option '---version' (did you mean --version?)"),
        (["--prot", "80", "prog"], "unknown option '--prot' (did you mean --port?)"),
    ],
)
def test_ambiguous_or_wrong_spelling_is_one_clear_error(
    argv: list[str], message: str
) -> None:
    with pytest.raises(UsageError) as err:
        load(argv, {})
    assert str(err.value) == message


def test_words_after_the_command_are_the_commands() -> None:
    settings, command = load(["--port", "80", "prog", "-v", "--po", "1"], {})
    assert not settings.version
    assert command == ("prog", "-v", "--po", "1")


def test_option_values_are_not_rewritten() -> None:
    settings, command = load(["--dir", "-version", "--log-file=--vers", "prog"], {})
    assert settings.dir == "-version" and settings.log_file == "--vers"
    assert not settings.version and command == ("prog",)

"""--listen values without their colon: a bare port or address is refused with the spelling
meant, never turned into a UNIX socket file named ``8091`` (docs/migrating.md)."""

from __future__ import annotations

import os

import pytest

from starman.configload import load_settings
from starman.optionvalues import ListenSpec, parse_listen
from start_server.common.options import ConfigError, UsageError


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "8091",
            "did you mean :8091? (a port needs its colon; unix:8091 names a socket file)",
        ),
        (
            "127.0.0.1",
            "did you mean 127.0.0.1:5000? (an address needs its port;"
            " unix:127.0.0.1 names a socket file)",
        ),
        (
            "0.0.0.0",
            "did you mean 0.0.0.0:5000? (an address needs its port;"
            " unix:0.0.0.0 names a socket file)",
        ),
        (
            "localhost",
            "did you mean localhost:5000? (an address needs its port;"
            " unix:localhost names a socket file)",
        ),
        ("[::1]", "did you mean [::1]:5000? (an address needs its port)"),
    ],
)
def test_a_bare_port_or_address_is_refused_with_the_spelling_meant(
    text: str, message: str
) -> None:
    with pytest.raises(ValueError) as info:
        parse_listen(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("unix:8091", ListenSpec(path="8091")),
        ("./8091", ListenSpec(path="./8091")),
        ("app.sock", ListenSpec(path="app.sock")),
        ("/run/app/127.0.0.1", ListenSpec(path="/run/app/127.0.0.1")),
        (":8091", ListenSpec(None, 8091)),
        ("127.0.0.1:8091", ListenSpec("127.0.0.1", 8091)),
        ("localhost:8091", ListenSpec("localhost", 8091)),
    ],
)
def test_the_good_neighbours_still_parse(text: str, spec: ListenSpec) -> None:
    assert parse_listen(text) == spec


def test_the_command_line_names_the_option_and_the_value() -> None:
    with pytest.raises(UsageError) as info:
        load_settings(["--listen", "8091"], {})
    assert str(info.value) == (
        "invalid --listen value '8091': did you mean :8091?"
        " (a port needs its colon; unix:8091 names a socket file)"
    )


def test_a_toml_number_is_refused_the_same_way(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "app.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write("[starman]\nlisten = 8091\n")
    with pytest.raises(ConfigError, match=r"did you mean :8091\?"):
        load_settings(["--config", path], {})

"""The --port/--path grammar and the SERVER_STARTER_PORT format, against Perl's rules."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from start_server.common.portspec import (
    PortSpec,
    Transport,
    format_server_starter_port,
    parse_path_spec,
    parse_port_spec,
    parse_server_starter_port,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("80", PortSpec("80", Transport.TCP, None, 80)),
        ("080", PortSpec("080", Transport.TCP, None, 80)),
        (" 8080 ", PortSpec("8080", Transport.TCP, None, 8080)),
        ("18302=7", PortSpec("18302", Transport.TCP, None, 18302, fd=7)),
        ("18302 =7", PortSpec("18302", Transport.TCP, None, 18302, fd=7)),
        ("u5353", PortSpec("5353", Transport.UDP, None, 5353)),
        ("u5353=0", PortSpec("5353", Transport.UDP, None, 5353, fd=0)),
        ("127.0.0.1:80", PortSpec("127.0.0.1:80", Transport.TCP, "127.0.0.1", 80)),
        (
            "localhost:8080",
            PortSpec("localhost:8080", Transport.TCP, "localhost", 8080),
        ),
        ("localhost:u53", PortSpec("localhost:53", Transport.UDP, "localhost", 53)),
        (
            "127.0.0.1:80=5",
            PortSpec("127.0.0.1:80", Transport.TCP, "127.0.0.1", 80, fd=5),
        ),
        ("[::1]:80", PortSpec("[::1]:80", Transport.TCP, "::1", 80)),
        ("[ ::1 ] : 80", PortSpec("[::1]:80", Transport.TCP, "::1", 80)),
        ("[::]:u80=9", PortSpec("[::]:80", Transport.UDP, "::", 80, fd=9)),
        # Perl's regex takes an unbracketed IPv6 literal, the last colon before the port.
        ("::1:80", PortSpec("[::1]:80", Transport.TCP, "::1", 80)),
    ],
)
def test_portspec_parses_like_perl(text: str, expected: PortSpec) -> None:
    assert parse_port_spec(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "80x", "x80", ":80", "[::1]", "host:", "80=", "80=x", "u", "uu80", "1:2:"],
)
def test_portspec_rejects_malformed_values(text: str) -> None:
    with pytest.raises(ValueError, match="invalid --port value"):
        parse_port_spec(text)


def test_portspec_rejects_port_above_65535() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_port_spec("127.0.0.1:65536")


def test_portspec_ipv6_property() -> None:
    assert parse_port_spec("[::1]:80").ipv6
    assert not parse_port_spec("127.0.0.1:80").ipv6
    assert not parse_port_spec("80").ipv6


@pytest.mark.parametrize(
    "text",
    [
        "80",
        "u80",
        "80=3",
        "u80=3",
        "h:80",
        "h:u80=4",
        "[::1]:80",
        "[fe80::1]:u9=12",
        "/tmp/x.sock",
    ],
)
def test_portspec_format_round_trips(text: str) -> None:
    spec = parse_path_spec(text) if text.startswith("/") else parse_port_spec(text)
    assert spec.format() == text
    again = (
        parse_path_spec(spec.format())
        if spec.transport is Transport.UNIX
        else parse_port_spec(spec.format())
    )
    assert again == spec


def test_path_spec_keeps_path_as_key() -> None:
    assert parse_path_spec("/tmp/a.sock") == PortSpec(
        "/tmp/a.sock", Transport.UNIX, path="/tmp/a.sock"
    )


@pytest.mark.parametrize("text", ["", "/tmp/a=b", "/tmp/a;b", "/" + "x" * 200])
def test_path_spec_rejects_unusable_paths(text: str) -> None:
    with pytest.raises(ValueError, match="invalid --path value"):
        parse_path_spec(text)


def test_server_starter_port_parses_in_order() -> None:
    value = "127.0.0.1:8080=4;9000=5;/tmp/a.sock=6"
    assert parse_server_starter_port(value) == [
        ("127.0.0.1:8080", 4),
        ("9000", 5),
        ("/tmp/a.sock", 6),
    ]


def test_server_starter_port_empty_is_empty() -> None:
    assert parse_server_starter_port("") == []


def test_server_starter_port_skips_empty_entries_like_perl_split() -> None:
    assert parse_server_starter_port("80=3;;81=4;") == [("80", 3), ("81", 4)]


@pytest.mark.parametrize("value", ["80", "80=x", "a=3;b", "80=-1"])
def test_server_starter_port_rejects_malformed(value: str) -> None:
    with pytest.raises(ValueError, match="malformed SERVER_STARTER_PORT"):
        parse_server_starter_port(value)


def test_server_starter_port_splits_on_first_equals_only() -> None:
    # Perl: split /=/, $_, 2: the key ends at the first '='.
    with pytest.raises(ValueError):
        parse_server_starter_port("a=b=3")


@pytest.mark.parametrize("key", ["", "a;b", "a=b"])
def test_format_refuses_keys_that_cannot_round_trip(key: str) -> None:
    with pytest.raises(ValueError):
        format_server_starter_port([(key, 3)])


_keys = st.text(
    alphabet=st.characters(blacklist_characters=";=", blacklist_categories=("Cs",)),
    min_size=1,
)


@given(st.lists(st.tuples(_keys, st.integers(min_value=0, max_value=1 << 20))))
def test_server_starter_port_round_trip(entries: list[tuple[str, int]]) -> None:
    assert parse_server_starter_port(format_server_starter_port(entries)) == entries


def test_server_starter_port_whole_value_round_trip() -> None:
    value = "[::1]:80=4;localhost:8080=5;u=6;/tmp/s=7"
    assert format_server_starter_port(parse_server_starter_port(value)) == value

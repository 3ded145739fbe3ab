"""starman's option table: Settings fields, parsing, precedence, Perl spellings and errors."""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest

from starman import config as starman_config
from starman.config import OPTIONS, Settings, make_parser
from starman.configload import debug_enabled, load_settings
from starman.optionvalues import ListenSpec, parse_listen
from start_server.common.options import ConfigError, UsageError


def test_settings_annotations_equal_the_option_table_names() -> None:
    # The handwritten annotations are the field list mypy checks code against; __slots__
    # is built from OPTIONS, so only the annotations can drift from the table.
    assert list(vars(Settings)["__annotations__"]) == [o.name for o in OPTIONS]


def _accepts(hint: Any, value: Any) -> bool:
    """Whether ``value`` fits the type ``hint`` (the few forms Settings uses)."""
    if hint is float:
        return type(value) in (int, float)  # mypy's int-to-float promotion
    if hint in (bool, int, str):
        return type(value) is hint
    if hint is type(None):
        return value is None
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):
        return any(_accepts(arg, value) for arg in args)
    if typing.get_origin(hint) is tuple and args[1:] == (Ellipsis,):
        return type(value) is tuple and all(_accepts(args[0], v) for v in value)
    return isinstance(value, hint)


def test_settings_annotations_accept_the_table_defaults() -> None:
    hints = typing.get_type_hints(Settings, vars(starman_config))
    for opt in OPTIONS:
        default = getattr(Settings(), opt.name)
        assert _accepts(hints[opt.name], default), (opt.name, hints[opt.name], default)


def test_the_annotation_check_can_fail() -> None:
    assert not _accepts(int | None, "5")
    assert not _accepts(bool, 0)
    assert not _accepts(tuple[str, ...], ["a"])
    assert not _accepts(tuple[ListenSpec, ...], ("a",))
    assert _accepts(float, 1) and _accepts(str | None, None)


def test_settings_defaults_equal_the_table_defaults() -> None:
    defaults = Settings()
    for opt in OPTIONS:
        expected = tuple(opt.default) if isinstance(opt.default, list) else opt.default
        assert getattr(defaults, opt.name) == expected, opt.name


def test_defaults_without_arguments() -> None:
    s = load_settings([], {})
    assert s == Settings()
    assert s.listen_specs() == (ListenSpec(host=None, port=5000),)
    assert (s.workers, s.backlog, s.max_requests) == (5, 1024, 1000)
    assert (s.keepalive_timeout, s.read_timeout, s.graceful_timeout) == (1.0, 5.0, 30.0)
    assert s.max_request_body == 1 << 30 and s.body_buffer_size == 1 << 20


def test_perl_spellings_are_accepted() -> None:
    s = load_settings(
        [
            "--workers=3",
            "-l",
            "127.0.0.1:8080",
            "--listen",
            "/tmp/x.sock",
            "-E",
            "production",
            "-Ilib",
            "-I",
            "lib2",
            "-MFoo",
            "--disable-keepalive",
            "--disable-proctitle",
            "--max-requests",
            "10",
            "-s",
            "starman",
            "-D",
            "myapp:app",
        ],
        {},
    )
    assert s.workers == 3
    assert s.listen == (ListenSpec("127.0.0.1", 8080), ListenSpec(path="/tmp/x.sock"))
    assert s.env == "production"
    assert s.include == ("lib", "lib2")
    assert s.module == ("Foo",)
    assert s.keepalive is False and s.proctitle is False
    assert s.max_requests == 10 and s.daemonize is True
    assert s.app == "myapp:app"


def test_host_port_socket_fold_into_listen_specs() -> None:
    s = load_settings(["-o", "127.0.0.1", "-p", "8081", "-S", "/tmp/s.sock"], {})
    assert s.listen_specs() == (
        ListenSpec("127.0.0.1", 8081),
        ListenSpec(path="/tmp/s.sock"),
    )
    assert load_settings(["--port", "9"], {}).listen_specs() == (ListenSpec(None, 9),)


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("127.0.0.1:80", ListenSpec("127.0.0.1", 80)),
        (":5000", ListenSpec(None, 5000)),
        ("[::1]:8080", ListenSpec("::1", 8080)),
        ("localhost:0", ListenSpec("localhost", 0)),
        ("unix:/run/a.sock", ListenSpec(path="/run/a.sock")),
        ("relative.sock", ListenSpec(path="relative.sock")),
        ("127.0.0.1:443:ssl", ListenSpec("127.0.0.1", 443, ssl=True)),
    ],
)
def test_parse_listen_forms(text: str, spec: ListenSpec) -> None:
    assert parse_listen(text) == spec


@pytest.mark.parametrize(
    "text",
    ["", "127.0.0.1:", "127.0.0.1:99999", "host:port", "unix:"],
)
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        parse_listen(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("::1:80", r"an IPv6 address goes in brackets, then its port: \[IPV6\]:PORT"),
        ("[::1]", r"did you mean \[::1\]:5000\? \(an address needs its port\)$"),
    ],
)
def test_parse_listen_rejects_ipv6_without_brackets_or_port(
    text: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_listen(text)


def test_bad_listen_is_a_usage_error_quoting_the_value() -> None:
    with pytest.raises(UsageError, match=r"invalid --listen value '1.2.3.4:x'"):
        load_settings(["--listen", "1.2.3.4:x"], {})


def test_misspelt_option_suggests_the_right_one() -> None:
    with pytest.raises(
        UsageError, match=r"unknown option '--worker' \(did you mean --workers\?\)"
    ):
        load_settings(["--worker", "10"], {})


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--min-servers", "3"], "use --workers / TTIN / TTOU"),
        (["--max-spare-servers=3"], "use --workers / TTIN / TTOU"),
        (["--net-server-log-file", "x"], "use --error-log"),
        (["--net-server-serialize", "flock"], "no Net::Server"),
        (["-r"], "kill -HUP"),
        (["-R", "lib"], "kill -HUP"),
        (["-L", "Shotgun"], "Shotgun and Restarter are not supported"),
        (["-s", "Twiggy"], "only 'Starman'"),
        (["--enable-ssl"], "needs --ssl-cert"),
        (["--listen", ":443:ssl"], "needs --ssl-cert"),
        (["--workers", "0"], "expected an integer >= 1"),
        (["--path", "app"], "starting with '/'"),
        (["a.py", "--app", "b.py"], "not both"),
    ],
)
def test_unsupported_perl_options_are_usage_errors_with_a_hint(
    argv: list[str], match: str
) -> None:
    with pytest.raises(UsageError, match=match):
        load_settings(argv, {})


def test_loader_plack_loader_means_preload() -> None:
    assert load_settings(["-L", "Plack::Loader"], {}).preload_app is True
    assert load_settings(["-L", "Delayed"], {}).preload_app is False


def test_new_options_parse_with_units() -> None:
    s = load_settings(
        [
            "--max-request-body",
            "2M",
            "--body-buffer-size",
            "64K",
            "--timeout",
            "2.5",
            "--forwarded-allow-ips",
            "10.0.0.1, 10.0.0.2",
            "--term-immediate",
            "--max-requests-jitter",
            "7",
            "--path",
            "/app/",
        ],
        {},
    )
    assert s.max_request_body == 2 << 20 and s.body_buffer_size == 64 << 10
    assert s.timeout == 2.5 and s.term_immediate and s.max_requests_jitter == 7
    assert s.forwarded_allow_ips == ("10.0.0.1", "10.0.0.2")
    assert s.path == "/app"


def test_toml_file_is_below_the_command_line(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "c.toml"
    path.write_text(
        '[starman]\nworkers = 7\nlisten = ["127.0.0.1:1", "/x.sock"]\nkeepalive = false\n'
        "[start_server]\nport = 80\n"
    )
    s = load_settings(["--config", str(path), "--workers", "2"], {})
    assert s.workers == 2
    assert s.listen == (ListenSpec("127.0.0.1", 1), ListenSpec(path="/x.sock"))
    assert s.keepalive is False


def test_toml_unknown_key_names_file_and_key(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "c.toml"
    path.write_text("[starman]\nworker = 7\n")
    with pytest.raises(
        ConfigError,
        match=r"unknown key 'worker' in \[starman\].*did you mean 'workers'",
    ):
        load_settings(["--config", str(path)], {})


def test_help_lists_every_option_once() -> None:
    text = make_parser().format_help()
    for opt in OPTIONS:
        assert opt.flag_name in text


def test_starman_debug_env() -> None:
    assert debug_enabled({"STARMAN_DEBUG": "1"})
    assert not debug_enabled({})
    assert not debug_enabled({"STARMAN_DEBUG": "0"})

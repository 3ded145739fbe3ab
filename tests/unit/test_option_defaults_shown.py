"""A row's real default is shown the same way by --help and the generated docs.

The default lives in the row (``default``, or ``doc_default`` when the value is
machine-made or stays None until given); the help text never states it itself.
"""

from __future__ import annotations

import importlib.util
import os
import re
from types import ModuleType

import pytest

from starman import config as starman_config
from start_server import config as start_server_config
from start_server.common.options import (
    Option,
    OptionParser,
    default_text,
    help_text,
    to_size,
    to_str,
)

DOCS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "docs",
)

# The help must not say "(default: X)" or "default X": the row says it.
STATED_DEFAULT = re.compile(r"\(default\b|\bdefault[: ]+[^)]*\)|; default\b")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "docs_generate", os.path.join(DOCS, "generate.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    # argparse wraps at hyphens too: one line per option keeps the phrases whole.
    monkeypatch.setenv("COLUMNS", "1000")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _row(name: str) -> Option:
    return next(o for o in start_server_config.OPTIONS if o.name == name)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("signal_on_hup", "TERM"),
        ("signal_on_term", "TERM"),
        ("auto_restart_interval", "360"),
        ("kill_old_delay", "5 with --enable-auto-restart, else 0"),
        ("interval", "1"),
        ("ready_timeout", "30"),
        ("wait_timeout", "60"),
        ("log_level", "info"),
        ("backlog", "SOMAXCONN"),
    ],
)
def test_start_server_docs_and_help_show_the_real_default(
    name: str, shown: str
) -> None:
    opt = _row(name)
    # Was "Default: none" in the man page while the help said "(default: TERM)".
    assert default_text(opt) == shown
    rendered = _generator().render_all()
    man = rendered["start_server.1"].replace("\\-", "-")
    assert f"Default: {shown}." in man.split(f".B {opt.flag_name}", 1)[1]
    usage = _one_line(start_server_config.build_parser().format_help())
    assert f"{opt.flag_name} {opt.metavar} {opt.help} (default: {shown})" in usage


def test_no_start_server_help_text_states_its_own_default() -> None:
    stating = [
        o.flag_name
        for o in start_server_config.OPTIONS
        if STATED_DEFAULT.search(o.help)
    ]
    assert stating == []


def test_help_leaves_out_unset_values_and_flags_that_are_off() -> None:
    usage = _one_line(start_server_config.build_parser().format_help())
    assert (
        "--status-file FILE file holding one GEN:PID line per running generation, "
        "replaced atomically --pid-file" in usage
    )
    assert "(default: none)" not in usage and "(default: off)" not in usage


def test_signal_defaults_are_real_values_in_settings() -> None:
    settings, _ = start_server_config.load(["--", "prog"], {})
    assert settings.signal_on_hup.name == "SIGTERM"
    assert settings.signal_on_term.name == "SIGTERM"


# The machinery is shared: a row of either program that carries its default shows it.


def test_doc_default_is_shown_by_help_man_page_and_reference() -> None:
    rows = [
        Option("app", to_str, None, "the app", metavar="APP", doc_default="./app.py"),
        Option("listen", to_str, [], "where", metavar="SPEC", repeat=True),
        Option("workers", to_str, 5, "how many"),
        Option("keepalive", to_str, True, "keep", flag=True, negatable=True),
        Option("buffer", to_size, 1 << 20, "bytes", metavar="BYTES"),
        Option("fmt", to_str, "100%", "a % sign", metavar="F"),
    ]
    usage = _one_line(
        OptionParser("demo", rows, usage="demo", description="d").format_help()
    )
    assert "--app APP the app (default: ./app.py)" in usage
    assert "--listen SPEC where --workers" in usage
    assert "--workers WORKERS how many (default: 5)" in usage
    assert "--keepalive keep (default: on)" in usage
    assert "--buffer BYTES bytes (default: 1M)" in usage
    assert "--fmt F a % sign (default: 100%)" in usage
    gen = _generator()
    man = gen.render_man(
        "demo",
        rows,
        usage="demo",
        description="d",
        summary="s",
        version="1",
        toml_table="demo",
    )
    assert "the app. Default: ./app.py." in man
    assert "where. Default: none." in man
    md = gen.render_markdown(
        "demo", rows, usage="demo", description="d", toml_table="demo"
    )
    assert "| `--app APP`<br>" not in md
    assert "| `--app APP` | ./app.py | `app` |" in md


def test_help_text_appends_the_default_once() -> None:
    opt = Option("port", to_str, None, "TCP port", metavar="PORT", doc_default="5000")
    assert help_text(opt) == "TCP port (default: 5000)"
    assert help_text(Option("x", to_str, None, "nothing")) == "nothing"


def test_starman_rows_with_a_value_show_it_in_help() -> None:
    usage = _one_line(starman_config.make_parser().format_help())
    assert "number of worker processes (default: 5)" in usage

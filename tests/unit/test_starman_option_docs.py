"""starman's rows: the docs show each option's real default, and every access log directive."""

from __future__ import annotations

import importlib.util
import os
import re
from types import ModuleType

import pytest

from starman import config
from starman.access import ACCESS_LOG_DIRECTIVES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "docs_generate", os.path.join(REPO, "docs", "generate.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(name: str) -> config.Option:
    return next(opt for opt in config.OPTIONS if opt.name == name)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("app", "./app.py"),
        ("listen", ":5000"),
        ("port", "5000"),
        ("socket_mode", "from the umask"),
        ("ssl_key", "the key in --ssl-cert"),
    ],
)
def test_the_docs_show_the_real_default(name: str, shown: str) -> None:
    gen = _generator()
    opt = _row(name)
    assert gen.default_text(opt) == shown
    rendered = gen.render_all()
    assert "Default: " + shown.replace("-", "\\-") + "." in rendered["starman.1"]
    starman_section = rendered["options.md"].split("## starman\n", 1)[1]
    line = next(
        line
        for line in starman_section.splitlines()
        if line.startswith(f"| `{opt.flag_name} ")
    )
    assert f"| {shown} |" in line


def test_no_help_text_states_a_default_of_its_own() -> None:
    """The default is said once, in the row's default (or doc_default), not in its help."""
    for opt in config.OPTIONS:
        assert not re.search(r"\(default\b|default:|\(default\)", opt.help), opt.name


def test_the_access_log_format_help_lists_every_directive() -> None:
    help_text = _row("access_log_format").help
    for directive in ACCESS_LOG_DIRECTIVES:
        assert "%" + directive in help_text, directive
    man = _generator().render_all()["starman.1"]
    assert "%D %T" in man

"""The options reference and man pages are rendered from the option tables and not stale."""

from __future__ import annotations

import importlib.util
import os
import re
from types import ModuleType

import pytest

from starman import config as starman_config
from start_server import config as start_server_config
from start_server.common.options import Option, to_str

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = os.path.join(REPO, "docs")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "docs_generate", os.path.join(DOCS, "generate.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_docs_match_the_option_tables() -> None:
    stale = _generator().stale_files(DOCS)
    assert stale == [], f"stale: {stale}; run python docs/generate.py"


def test_stale_check_notices_an_edited_file(tmp_path: object) -> None:
    gen = _generator()
    target = str(tmp_path)
    for name, text in gen.render_all().items():
        with open(os.path.join(target, name), "w", encoding="utf-8") as f:
            f.write(text)
    assert gen.stale_files(target) == []
    with open(os.path.join(target, "starman.1"), "a", encoding="utf-8") as f:
        f.write(".PP\nedited by hand\n")
    assert gen.stale_files(target) == ["starman.1"]


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("start_server", start_server_config.OPTIONS),
        ("starman", starman_config.OPTIONS),
    ],
)
def test_every_option_is_in_its_man_page_and_the_reference(
    name: str, options: tuple[Option, ...]
) -> None:
    rendered = _generator().render_all()
    man = rendered[f"{name}.1"]
    section = rendered["options.md"].split(f"## {name}\n", 1)[1]
    for opt in options:
        assert ".B " + opt.flag_name.replace("-", "\\-") in man, opt.name
        assert f"| `{opt.flag_name}" in section, opt.name
        if not opt.cli_only:
            assert f"`{opt.name.replace('_', '-')}`" in section, opt.name


def test_man_page_escapes_hyphens_backslashes_and_leading_dots() -> None:
    opt = Option("dry_run", to_str, None, ".hidden -x C:\\path", metavar="X")
    page = _generator().render_man(
        "demo",
        [opt],
        usage="demo [options]",
        description="'quoted start",
        summary="a demo",
        version="1.0",
        toml_table="demo",
        sections=[("See also", "  verbatim -line\n  second")],
    )
    assert ".B \\-\\-dry\\-run X" in page
    assert "\\&.hidden \\-x C:\\epath. Default: none." in page
    assert "\n\\&'quoted start\n" in page
    assert ".SH SEE ALSO\n.PP\n.nf\n  verbatim \\-line\n  second\n.fi\n" in page
    # No line may start with an unescaped dot or quote except the requests we emit.
    for line in page.splitlines():
        if line.startswith((".", "'")):
            assert re.match(r"\.(TH|SH|TP|B|PP|nf|fi)\b", line), line


def test_markdown_escapes_pipes_and_marks_cli_only_rows() -> None:
    rows = [
        Option("log_file", to_str, None, 'a FILE or "| CMD"', metavar="FILE"),
        Option("stop", to_str, False, "stop it", flag=True, cli_only=True),
    ]
    md = _generator().render_markdown(
        "demo", rows, usage="demo", description="d", toml_table="demo"
    )
    assert '| `--log-file FILE` | none | `log-file` |  | a FILE or "\\| CMD" |' in md
    assert "| `--stop` | off | CLI only |  | stop it |" in md


def test_machine_dependent_defaults_have_a_fixed_doc_text() -> None:
    default_text = _generator().default_text
    backlog = next(o for o in start_server_config.OPTIONS if o.name == "backlog")
    assert default_text(backlog) == "SOMAXCONN"
    sizes = {o.name: default_text(o) for o in starman_config.OPTIONS}
    assert sizes["max_request_body"] == "1G"
    assert sizes["body_buffer_size"] == "1M"
    assert sizes["graceful_timeout"] == "30"


def test_readme_links_the_generated_docs_and_guides() -> None:
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    docs = readme.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    for target in (
        "docs/options.md",
        "docs/start_server.1",
        "docs/starman.1",
        "docs/quickstart.md",
        "docs/systemd.md",
        "docs/migrating.md",
        "docs/hot-deploy.md",
    ):
        assert f"]({target})" in docs, target

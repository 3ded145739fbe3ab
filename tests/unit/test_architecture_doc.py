"""docs/architecture.md stays true: it names every module and every option, and the code
cites no document that a reader of this repository does not have."""

from __future__ import annotations

import os
import re

import pytest

from starman import config as starman_config
from start_server import config as start_server_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(REPO, "docs", "architecture.md")


def doc_text() -> str:
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def source_files(*tops: str, suffixes: tuple[str, ...] = (".py",)) -> list[str]:
    found = []
    for top in tops:
        for dirpath, _dirs, files in os.walk(os.path.join(REPO, top)):
            found.extend(
                os.path.relpath(os.path.join(dirpath, f), REPO)
                for f in files
                if f.endswith(suffixes)
            )
    return sorted(found)


@pytest.mark.parametrize("path", source_files("starman", "start_server"))
def test_the_module_map_names_every_module(path: str) -> None:
    if os.path.basename(path) in ("__init__.py", "__main__.py"):
        path = os.path.dirname(path) + "/"
    assert f"`{path}`" in doc_text(), f"docs/architecture.md does not name {path}"


@pytest.mark.parametrize(
    ("program", "name"),
    [("starman", opt.name) for opt in starman_config.OPTIONS]
    + [("start_server", opt.name) for opt in start_server_config.OPTIONS],
)
def test_the_option_map_names_every_option(program: str, name: str) -> None:
    text = doc_text()
    section = text[text.index("## 6.") : text.index("## 7.")]
    part = section[section.index(f"### {program}") :]
    part = part[: part.index("###", 4)] if "###" in part[4:] else part
    flag = "--" + name.replace("_", "-")
    assert re.search(re.escape(f"`{flag}`"), part), f"{program} {flag} is not in §6"


# A comment that sends the reader to a document they cannot open.
OUTSIDE = re.compile(r"spec §|STYLE(\.md| §)|DESIGN(\.md| §)|\.\./shared|\bissue \d+\b")


@pytest.mark.parametrize(
    "path",
    source_files(
        "starman", "start_server", "tests", "bench", "docs", suffixes=(".py", ".md")
    )
    + ["README.md"],
)
def test_no_reference_to_documents_outside_the_repository(path: str) -> None:
    if path == os.path.relpath(__file__, REPO):
        return  # this file names the patterns
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        bad = [
            f"{path}:{n}: {line.strip()}"
            for n, line in enumerate(f, 1)
            if OUTSIDE.search(line)
        ]
    assert not bad

"""A directory of throw-away app modules for the app-loading tests."""

from __future__ import annotations

import pathlib
import sys
import textwrap
from collections.abc import Iterator

import pytest


@pytest.fixture
def appdir(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pathlib.Path]:
    """A directory on sys.path and the cwd; modules imported from it are forgotten after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(d: pathlib.Path, name: str, text: str) -> None:
    """Write ``text`` (dedented) to ``d/name``, making its folders."""
    (d / name).parent.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(textwrap.dedent(text))

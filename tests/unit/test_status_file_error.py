"""--status-file's refusal at start: one line, the same words in both programs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from start_server.common.proc import status_file_error


def test_missing_directory_says_it_does_not_exist(tmp_path: Path) -> None:
    path = str(tmp_path / "app" / "status")
    assert status_file_error(path) == (
        f"cannot write --status-file {path!r}: directory "
        f"{str(tmp_path / 'app')!r} does not exist"
    )


def test_directory_given_as_the_file(tmp_path: Path) -> None:
    assert status_file_error(str(tmp_path)) == (
        f"cannot write --status-file {str(tmp_path)!r}: it is a directory"
    )


def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    path = str(tmp_path / "f" / "status")
    assert status_file_error(path) == (
        f"cannot write --status-file {path!r}: {str(tmp_path / 'f')!r} is not a directory"
    )


def test_unwritable_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # root may write anywhere: ask as if access(2) said no.
    monkeypatch.setattr(os, "access", lambda *_a, **_k: False)
    path = str(tmp_path / "status")
    assert status_file_error(path) == (
        f"cannot write --status-file {path!r}: directory {str(tmp_path)!r} is not writable"
    )


def test_writable_directory_and_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert status_file_error(str(tmp_path / "status")) is None
    monkeypatch.chdir(tmp_path)
    assert status_file_error("status") is None

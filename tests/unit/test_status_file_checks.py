"""starman's --status-file: refused at start with start_server's words (the shared
``status_file_error``, tested in test_status_file_error.py) as a configuration error;
removed at exit only while it still holds this master's document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from starman.master.board import check_status_file, remove_status_file
from start_server.common.options import ConfigError


def test_missing_directory_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "run" / "app" / "status.json"
    with pytest.raises(ConfigError) as err:
        check_status_file(str(path))
    assert str(err.value) == (
        f"cannot write --status-file {str(path)!r}: "
        f"directory {str(path.parent)!r} does not exist"
    )


def test_a_directory_is_not_a_status_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="it is a directory$"):
        check_status_file(str(tmp_path))


def test_writable_path_passes_and_leaves_nothing(tmp_path: Path) -> None:
    check_status_file(str(tmp_path / "status.json"))
    assert list(tmp_path.iterdir()) == []


def test_removed_at_exit_when_it_is_ours(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text(json.dumps({"master_pid": 1234, "phase": "running"}))
    remove_status_file(str(path), 1234)
    assert not path.exists()


def test_kept_when_another_master_rewrote_it(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text(json.dumps({"master_pid": 999, "phase": "running"}))
    remove_status_file(str(path), 1234)
    assert path.exists()
    path.write_text("not json")
    remove_status_file(str(path), 1234)
    assert path.exists()
    remove_status_file(str(tmp_path / "missing.json"), 1234)

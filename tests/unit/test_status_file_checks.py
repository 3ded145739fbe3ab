"""starman's --status-file: refused at start when it could not be written, removed at
exit only while it still holds this master's document."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from starman.master.board import check_status_file, remove_status_file
from start_server.common.options import ConfigError


def test_missing_directory_is_named(tmp_path: Path) -> None:
    path = tmp_path / "run" / "app" / "status.json"
    with pytest.raises(ConfigError) as err:
        check_status_file(str(path))
    assert str(err.value) == (
        f"cannot write --status-file {str(path)!r}: "
        f"directory {str(path.parent)!r} does not exist"
    )


def test_parent_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    path = tmp_path / "plain" / "status.json"
    with pytest.raises(ConfigError, match="is not a directory$"):
        check_status_file(str(path))


def test_a_directory_is_not_a_status_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        check_status_file(str(tmp_path))
    assert str(err.value) == (
        f"cannot write --status-file {str(tmp_path)!r}: it is a directory"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(ConfigError, match="Permission denied"):
        check_status_file(str(locked / "status.json"))


def test_writable_path_passes_and_leaves_nothing(tmp_path: Path) -> None:
    check_status_file(str(tmp_path / "status.json"))
    assert list(tmp_path.iterdir()) == []
    # A relative path is checked in the current directory.
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        check_status_file("status.json")
    finally:
        os.chdir(cwd)
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

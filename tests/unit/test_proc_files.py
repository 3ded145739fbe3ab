"""start_server.common.proc file writers on a full disk (ENOSPC simulated), without a mount."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from start_server.common.proc import PidFile, PidFileError, atomic_write


def _enospc_after(limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """os.write accepts ``limit`` bytes in total, then fails with ENOSPC."""
    real = os.write
    left = [limit]

    def write(fd: int, data: bytes | memoryview) -> int:
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real(fd, bytes(data[: left[0]]))
        left[0] -= n
        return n

    monkeypatch.setattr(os, "write", write)


def test_atomic_write_on_a_full_disk_keeps_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "status"
    path.write_text("1:100\n")
    _enospc_after(3, monkeypatch)  # a short write first, then ENOSPC
    with pytest.raises(OSError) as info:
        atomic_write(str(path), "2:200\n3:300\n")
    assert info.value.errno == errno.ENOSPC
    assert path.read_text() == "1:100\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status"]


def test_atomic_write_is_whole_and_private_enough(tmp_path: Path) -> None:
    path = tmp_path / "status"
    old = os.umask(0)
    try:
        atomic_write(str(path), "1:100\n")
    finally:
        os.umask(old)
    assert path.read_text() == "1:100\n"
    assert path.stat().st_mode & 0o777 == 0o644  # never writable by others
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status"]


def test_pid_file_on_a_full_disk_raises_clearly_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pid"
    _enospc_after(0, monkeypatch)
    pidfile = PidFile(str(path))
    with pytest.raises(PidFileError, match="cannot write pid file .*No space left"):
        pidfile.acquire()
    assert not path.exists()
    assert not pidfile.held


def test_pid_file_is_not_writable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "pid"
    old = os.umask(0)
    try:
        pidfile = PidFile(str(path))
        pidfile.acquire()
    finally:
        os.umask(old)
    try:
        assert path.read_text() == f"{os.getpid()}\n"
        assert path.stat().st_mode & 0o022 == 0
    finally:
        pidfile.release()

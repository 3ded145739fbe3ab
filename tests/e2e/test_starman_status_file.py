"""starman --status-file: a path that cannot be written is refused at start (one line,
exit 2); the file is removed when the master exits."""

from __future__ import annotations

import json
import os
import signal

from tests.harness.process import wait_for
from tests.harness.starman_program import APP, Launcher, error_lines, launcher

__all__ = ["launcher"]


def test_status_file_in_a_missing_directory_is_refused_at_start(
    launcher: Launcher,
) -> None:
    status = os.path.join(launcher.tmpdir, "run", "app", "status.json")
    server = launcher.run(["--listen", "unix:x.sock", "--status-file", status, APP])
    assert server.proc.wait(timeout=15) == 2
    log = server.log()
    assert error_lines(log) == [
        f"starman: error: cannot write --status-file {status!r}: "
        f"directory {os.path.dirname(status)!r} does not exist"
    ], log
    assert "Traceback" not in log and "spawned" not in log


def test_status_file_that_is_a_directory_is_refused_at_start(
    launcher: Launcher,
) -> None:
    server = launcher.run(
        ["--listen", "unix:x.sock", "--status-file", launcher.tmpdir, APP]
    )
    assert server.proc.wait(timeout=15) == 2
    assert error_lines(server.log()) == [
        f"starman: error: cannot write --status-file {launcher.tmpdir!r}: "
        "it is a directory"
    ]


def test_status_file_is_removed_when_the_master_exits(launcher: Launcher) -> None:
    status = os.path.join(launcher.tmpdir, "status.json")
    server = launcher.inherited("--status-file", status, APP, workers=1)

    def running() -> bool:
        with open(status) as f:
            doc = json.load(f)
        return doc["master_pid"] == server.pid and doc["phase"] == "running"

    wait_for(running)
    server.signal(signal.SIGTERM)
    assert server.proc.wait(timeout=15) == 0
    assert not os.path.exists(status)
    assert "--status-file" not in server.log()

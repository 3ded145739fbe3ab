"""start_server refuses a --status-file it cannot write before doing anything else."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.harness.start_server_program import START_SERVER


def test_missing_directory_is_the_only_line(tmp_path: Path) -> None:
    path = tmp_path / "run" / "app" / "status"
    res = subprocess.run(
        [
            *START_SERVER,
            "--port",
            "127.0.0.1:0",
            "--status-file",
            str(path),
            "--",
            "true",
        ],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert res.returncode == 1
    assert res.stderr.decode().splitlines() == [
        f"start_server: error: cannot write --status-file '{path}': "
        f"directory '{path.parent}' does not exist"
    ]

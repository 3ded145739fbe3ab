"""pgrep -x start_server finds our supervisor (its comm was python3), not its children."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.process import kill_group, spawn, wait_for
from tests.harness.start_server_program import START_SERVER

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process names are Linux's"
)


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()]


@pytest.mark.parametrize("how", ["module", "console_script"])
def test_supervisor_is_named_start_server(how: str) -> None:
    script = os.path.join(os.path.dirname(sys.executable), "start_server")
    if how == "console_script" and not os.path.exists(script):
        pytest.skip("start_server console script not installed next to python")
    argv = START_SERVER if how == "module" else [script]
    proc = spawn([*argv, "--port", "127.0.0.1:0", "--", "sleep", "60"])
    try:
        (child,) = wait_for(lambda: _children(proc.pid), timeout=10)
        wait_for(lambda: _comm(proc.pid) == "start_server", timeout=10)
        # The exec'd program has its own name (a just-forked child still carries
        # start_server's until its exec: wait for the exec, bounded).
        wait_for(lambda: _comm(child) == "sleep", timeout=10)
        pgrep = shutil.which("pgrep")
        if pgrep is not None:
            found = subprocess.run(
                [pgrep, "-x", "start_server"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.split()
            assert str(proc.pid) in found
    finally:
        kill_group(proc)

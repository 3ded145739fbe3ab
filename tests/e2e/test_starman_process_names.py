"""Process names: ``pgrep -x starman`` finds the master and ``pgrep -x starman-worker``
its workers, however starman was started (here ``python -m starman``)."""

from __future__ import annotations

import subprocess

from tests.harness.starman_program import APP, Launcher, launcher

__all__ = ["launcher"]


def pgrep(*args: str) -> set[int]:
    out = subprocess.run(
        ["pgrep", *args], capture_output=True, text=True, timeout=10, check=False
    )
    return {int(pid) for pid in out.stdout.split()}


def test_pgrep_finds_the_master_and_its_workers(launcher: Launcher) -> None:
    server = launcher.inherited(APP, workers=2)
    assert server.pid in pgrep("-x", "starman")
    workers = server.workers()
    assert len(workers) == 2
    assert pgrep("-x", "-P", str(server.pid), "starman-worker") == workers
    # Only the master is "starman": its workers are not counted twice.
    assert not workers & pgrep("-x", "starman")


def test_disable_proctitle_leaves_the_name_alone(launcher: Launcher) -> None:
    server = launcher.inherited("--disable-proctitle", APP, workers=1)
    assert server.pid not in pgrep("-x", "starman")
    assert not pgrep("-x", "-P", str(server.pid), "starman-worker")

"""Ctrl-C (SIGINT) or systemd's stop (SIGTERM) sent to the whole process group stops
starman without forking anyone."""

from __future__ import annotations

import os
import re
import signal

import pytest

from tests.harness.starman_program import APP, Launcher, launcher

__all__ = ["launcher"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_signal_to_the_process_group_forks_no_new_worker(
    launcher: Launcher, sig: signal.Signals
) -> None:
    # The workers get the signal with the master; their exits used to be taken for
    # crashes and replaced before the master saw its own signal (most runs, so a few
    # rounds make a regression show).
    for _ in range(3):
        server = launcher.inherited("--log-level", "debug", APP, workers=4)
        os.killpg(server.pid, sig)
        # bounded by the drain (--graceful-timeout, 30 s), not by a guess of its speed
        assert server.proc.wait(timeout=40) == 0
        log = server.log()
        spawned = re.findall(r"spawned worker (\d+)", log)
        assert len(spawned) == 4, log
        exited = set(re.findall(r"worker (\d+) (?:exited|killed)", log))
        assert exited <= set(spawned), log
        assert f"received {sig.name}: stopping" in log

"""An app that the workers cannot load (no --preload-app): the policy asks for one
report, stops a first generation with code 4, and never respawns it (literal events)."""

from __future__ import annotations

import logging
import signal

import pytest

from starman.config import Settings
from starman.master.pool import (
    APP_LOAD_ERROR,
    AppLoadFailed,
    ChildExited,
    Exit,
    Notify,
    Phase,
    PoolState,
    Signal,
    Signalled,
    SlotReady,
    Spawn,
    Spawned,
    Tick,
    next_deadline,
    on_event,
    pool_state,
)


def booting(n: int) -> PoolState:
    """``n`` workers forked (pids 100, ...), none ready yet."""
    state = pool_state(Settings(workers=n), master_pid=1)
    assert on_event(state, Tick(), 0.0) == [Spawn(i, 1) for i in range(n)]
    for i in range(n):
        on_event(state, Spawned(i, 100 + i), 0.0)
    return state


def test_first_generation_failure_is_reported_once_and_stops_with_4(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    state = booting(5)
    actions = on_event(state, ChildExited(102, code=APP_LOAD_ERROR), 0.5)
    assert actions == [
        AppLoadFailed(102, fatal=True),
        Notify("STOPPING=1"),
        *(Signal(pid, signal.SIGTERM) for pid in (100, 101, 103, 104)),
    ]
    # The others failed the same way, or died of the TERM while importing: no second
    # report, no respawn, nothing above DEBUG.
    assert on_event(state, ChildExited(100, code=APP_LOAD_ERROR), 0.5) == []
    assert on_event(state, ChildExited(101, signal=signal.SIGTERM), 0.5) == []
    assert on_event(state, Tick(), 10.0) == []
    assert on_event(state, ChildExited(103, code=APP_LOAD_ERROR), 0.6) == []
    assert on_event(state, ChildExited(104, signal=signal.SIGTERM), 0.6) == [
        Exit(APP_LOAD_ERROR)
    ]
    assert caplog.text == ""


def test_other_boot_failures_still_back_off(caplog: pytest.LogCaptureFixture) -> None:
    # The good neighbour: a worker that dies for another reason is retried, logged.
    caplog.set_level(logging.INFO)
    state = booting(2)
    assert on_event(state, ChildExited(100, code=3), 0.5) == []
    assert state.phase is Phase.RUNNING
    assert next_deadline(state) == pytest.approx(0.6)
    assert "worker 100 exited with code 3 while booting" in caplog.text


def test_failed_reload_reports_once_and_keeps_the_old_workers() -> None:
    state = booting(2)
    on_event(state, SlotReady(0), 0.1)
    on_event(state, SlotReady(1), 0.1)
    actions = on_event(state, Signalled(signal.SIGHUP), 1.0)
    assert actions[0] == Notify("RELOADING=1")
    on_event(state, Spawned(2, 200), 1.0)
    on_event(state, Spawned(3, 201), 1.0)
    actions = on_event(state, ChildExited(200, code=APP_LOAD_ERROR), 1.2)
    assert actions == [
        AppLoadFailed(200, fatal=False),
        Signal(201, signal.SIGKILL),
        Notify("READY=1"),
    ]
    assert state.phase is Phase.RUNNING and state.generation == 1
    assert on_event(state, ChildExited(201, code=APP_LOAD_ERROR), 1.3) == []


def test_after_the_pool_served_a_load_failure_is_reported_and_retried() -> None:
    state = booting(1)
    on_event(state, SlotReady(0), 0.1)
    assert on_event(state, ChildExited(100, code=0), 1.0) == [Spawn(0, 1)]
    on_event(state, Spawned(0, 300), 1.0)
    assert on_event(state, ChildExited(300, code=APP_LOAD_ERROR), 1.5) == [
        AppLoadFailed(300, fatal=False)
    ]
    assert state.phase is Phase.RUNNING
    assert on_event(state, Tick(), 1.6) == [Spawn(0, 1)]

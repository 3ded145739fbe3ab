"""The master's supervision policy, fed literal events (no processes, no clock)."""

from __future__ import annotations

import logging
import signal

import pytest

from starman.config import Settings
from starman.master.pool import (
    RETIRE,
    AppLoadFailed,
    ChildExited,
    Exit,
    Notify,
    Phase,
    PoolState,
    ReopenLogs,
    RequestTooLong,
    Signal,
    Signalled,
    SlotDraining,
    SlotReady,
    SlotRetiring,
    Spawn,
    Spawned,
    Tick,
    WorkerState,
    next_deadline,
    on_event,
    pool_state,
)


def booted(n: int = 3, **kw: object) -> PoolState:
    """A pool of ``n`` ready workers with pids 100, 101, ... in slots 0, 1, ..."""
    state = pool_state(Settings(workers=n, **kw), master_pid=1)
    actions = on_event(state, Tick(), 0.0)
    assert actions == [Spawn(i, 1) for i in range(n)]
    for i in range(n):
        assert on_event(state, Spawned(i, 100 + i), 0.0) == []
    for i in range(n - 1):
        assert on_event(state, SlotReady(i), 0.0) == []
    assert on_event(state, SlotReady(n - 1), 0.0) == [Notify("READY=1\nMAINPID=1")]
    return state


def pids(state: PoolState) -> set[int]:
    return {w.pid for w in state.workers.values() if w.pid is not None}


def test_start_fills_the_pool_and_announces_ready_once() -> None:
    state = booted(3)
    assert state.phase is Phase.RUNNING
    assert on_event(state, Tick(), 1.0) == []


def test_crashed_worker_is_respawned_at_once() -> None:
    state = booted(2)
    assert on_event(state, ChildExited(101, signal=signal.SIGKILL), 5.0) == [
        Spawn(1, 1)
    ]


def test_recycled_worker_is_respawned() -> None:
    state = booted(2)
    assert on_event(state, ChildExited(100, code=0), 5.0) == [Spawn(0, 1)]


def test_draining_worker_is_replaced_before_it_exits() -> None:
    # max-requests/harakiri: capacity never dips while the old worker finishes.
    state = booted(2)
    assert on_event(state, SlotDraining(1), 5.0) == [Spawn(2, 1)]
    assert state.workers[1].state is WorkerState.DRAINING
    assert on_event(state, Spawned(2, 102), 5.0) == []
    assert on_event(state, SlotReady(2), 5.1) == []
    # Its own exit is a retirement: nothing more to spawn.
    assert on_event(state, ChildExited(101, code=0), 6.0) == []
    assert pids(state) == {100, 102}
    # A second report, or one for a worker already told to stop, changes nothing.
    assert on_event(state, SlotDraining(1), 6.0) == []
    assert on_event(state, SlotDraining(7), 6.0) == []


def test_retiring_worker_is_replaced_early_and_keeps_serving() -> None:
    # Near --max-requests: the replacement boots while the old worker still serves, and
    # the old one gets no kill deadline until it actually drains.
    state = booted(2, graceful_timeout=10.0)
    assert on_event(state, SlotRetiring(1), 5.0) == [Spawn(2, 1)]
    assert state.workers[1].state is WorkerState.RETIRING
    assert state.workers[1].kill_at is None
    assert on_event(state, Spawned(2, 102), 5.0) == []
    assert on_event(state, SlotReady(2), 5.1) == []
    assert on_event(state, Tick(), 100.0) == []  # however long it takes to get there
    # Then it drains: no second replacement, but now a deadline.
    assert on_event(state, SlotDraining(1), 200.0) == []
    assert state.workers[1].state is WorkerState.DRAINING
    assert state.workers[1].kill_at is not None and state.workers[1].kill_at > 210.0
    assert on_event(state, ChildExited(101, code=0), 201.0) == []
    assert pids(state) == {100, 102}


def test_retiring_worker_that_exits_is_not_a_boot_failure() -> None:
    state = booted(2)
    on_event(state, SlotRetiring(0), 5.0)
    on_event(state, Spawned(2, 102), 5.0)
    assert on_event(state, ChildExited(100, code=0), 6.0) == []
    assert state.boot_failures == 0
    # A second notice, or one for an unknown slot, changes nothing.
    assert on_event(state, SlotRetiring(0), 6.0) == []
    assert on_event(state, SlotRetiring(7), 6.0) == []


def test_retiring_workers_are_stopped_by_term_and_replaced_by_hup() -> None:
    state = booted(2)
    on_event(state, SlotRetiring(0), 5.0)
    on_event(state, Spawned(2, 102), 5.0)
    on_event(state, SlotReady(2), 5.0)
    actions = on_event(state, Signalled(signal.SIGTERM), 6.0)
    assert Signal(100, signal.SIGTERM) in actions
    assert {a.pid for a in actions if isinstance(a, Signal)} == {100, 101, 102}


def test_draining_worker_that_never_exits_is_killed() -> None:
    state = booted(1, graceful_timeout=10.0)
    assert on_event(state, SlotDraining(0), 5.0) == [Spawn(1, 1)]
    on_event(state, Spawned(1, 101), 5.0)
    assert next_deadline(state) == 16.0
    assert on_event(state, Tick(), 15.9) == []
    assert on_event(state, Tick(), 16.0) == [Signal(100, signal.SIGKILL)]


def test_both_workers_draining_at_once_get_two_replacements() -> None:
    state = booted(2)
    assert on_event(state, SlotDraining(0), 5.0) == [Spawn(2, 1)]
    assert on_event(state, SlotDraining(1), 5.0) == [Spawn(3, 1)]
    assert on_event(state, ChildExited(100, code=0), 6.0) == []


def test_ttin_and_ttou_change_the_pool_by_one() -> None:
    state = booted(2)
    assert on_event(state, Signalled(signal.SIGTTIN), 1.0) == [Spawn(2, 1)]
    assert state.target == 3
    on_event(state, Spawned(2, 102), 1.0)
    on_event(state, SlotReady(2), 1.0)
    assert on_event(state, Signalled(signal.SIGTTOU), 2.0) == [Signal(102, RETIRE)]
    assert state.workers[2].state is WorkerState.DRAINING
    assert on_event(state, ChildExited(102, code=0), 3.0) == []
    assert state.target == 2 and pids(state) == {100, 101}


def test_ttou_retires_the_least_loaded_worker() -> None:
    # Slot 2 is the newest but inside the app; slot 1 is idle: slot 1 goes.
    state = booted(3)
    actions = on_event(state, Signalled(signal.SIGTTOU, frozenset({0, 2})), 1.0)
    assert actions == [Signal(101, RETIRE)]
    # All busy: the newest goes.
    state = booted(3)
    actions = on_event(state, Signalled(signal.SIGTTOU, frozenset({0, 1, 2})), 1.0)
    assert actions == [Signal(102, RETIRE)]
    # A booting worker serves nobody: it goes first, busy or not.
    state = booted(2)
    on_event(state, Signalled(signal.SIGTTIN), 1.0)
    on_event(state, Spawned(2, 102), 1.0)
    actions = on_event(state, Signalled(signal.SIGTTOU, frozenset({2})), 1.0)
    assert actions == [Signal(102, signal.SIGTERM)]


def test_ttou_never_goes_below_one(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    state = booted(1)
    assert on_event(state, Signalled(signal.SIGTTOU), 1.0) == []
    assert state.target == 1
    assert "already at 1" in caplog.text


def test_hup_boots_a_new_generation_before_retiring_the_old() -> None:
    state = booted(2)
    actions = on_event(state, Signalled(signal.SIGHUP), 10.0)
    assert actions == [Notify("RELOADING=1"), Spawn(2, 2), Spawn(3, 2)]
    on_event(state, Spawned(2, 200), 10.0)
    on_event(state, Spawned(3, 201), 10.0)
    assert on_event(state, SlotReady(2), 11.0) == []  # one new worker is not enough
    assert on_event(state, SlotReady(3), 11.0) == [
        Signal(100, RETIRE),
        Signal(101, RETIRE),
        Notify("READY=1"),
    ]
    assert state.phase is Phase.RUNNING and state.generation == 2
    # Retired workers exiting are not replaced.
    assert on_event(state, ChildExited(100, code=0), 12.0) == []
    assert on_event(state, ChildExited(101, code=0), 12.0) == []
    assert pids(state) == {200, 201}


def test_hup_generation_whose_workers_already_retire_still_becomes_ready() -> None:
    # A slow-booting app: the first new worker gives its leaving-soon notice before its
    # sibling has booted. It still accepts, so the generation is ready when the sibling
    # is, even though the notice's own replacement is booting.
    state = booted(2)
    on_event(state, Signalled(signal.SIGHUP), 10.0)
    on_event(state, Spawned(2, 200), 10.0)
    on_event(state, Spawned(3, 201), 10.0)
    assert on_event(state, SlotReady(2), 13.0) == []
    assert on_event(state, SlotRetiring(2), 13.5) == [Spawn(4, 2)]
    on_event(state, Spawned(4, 202), 13.5)
    assert on_event(state, SlotReady(3), 14.0) == [
        Signal(100, RETIRE),
        Signal(101, RETIRE),
        Notify("READY=1"),
    ]
    assert state.phase is Phase.RUNNING and state.generation == 2
    # The replacement's own readiness changes nothing more.
    assert on_event(state, SlotReady(4), 16.0) == []


def test_start_with_a_retiring_worker_announces_ready_once_enough_accept() -> None:
    state = pool_state(Settings(workers=2), master_pid=1)
    assert on_event(state, Tick(), 0.0) == [Spawn(0, 1), Spawn(1, 1)]
    on_event(state, Spawned(0, 100), 0.0)
    on_event(state, Spawned(1, 101), 0.0)
    assert on_event(state, SlotReady(0), 3.0) == []
    assert on_event(state, SlotRetiring(0), 3.5) == [Spawn(2, 1)]
    on_event(state, Spawned(2, 102), 3.5)
    assert on_event(state, SlotReady(1), 4.0) == [Notify("READY=1\nMAINPID=1")]
    assert on_event(state, SlotReady(2), 6.0) == []


def test_hup_whose_new_workers_cannot_load_keeps_the_old_ones() -> None:
    state = booted(2)
    on_event(state, Signalled(signal.SIGHUP), 10.0)
    on_event(state, Spawned(2, 200), 10.0)
    on_event(state, Spawned(3, 201), 10.0)
    actions = on_event(state, ChildExited(200, code=4), 11.0)
    assert actions == [
        AppLoadFailed(200, fatal=False),
        Signal(201, signal.SIGKILL),
        Notify("READY=1"),
    ]
    assert state.phase is Phase.RUNNING and state.generation == 1
    assert on_event(state, ChildExited(201, signal=signal.SIGKILL), 11.0) == []
    assert pids(state) == {100, 101}
    # The next HUP gets a fresh generation number.
    assert on_event(state, Signalled(signal.SIGHUP), 20.0)[1:] == [
        Spawn(2, 3),
        Spawn(3, 3),
    ]


def test_hup_not_ready_within_graceful_timeout_is_rolled_back() -> None:
    state = booted(1, graceful_timeout=5.0)
    on_event(state, Signalled(signal.SIGHUP), 10.0)
    on_event(state, Spawned(1, 200), 10.0)
    assert next_deadline(state) == 15.0
    assert on_event(state, Tick(), 15.0) == [
        Signal(200, signal.SIGKILL),
        Notify("READY=1"),
    ]
    assert state.generation == 1


def test_second_hup_during_a_reload_is_ignored() -> None:
    state = booted(1)
    on_event(state, Signalled(signal.SIGHUP), 1.0)
    assert on_event(state, Signalled(signal.SIGHUP), 1.5) == []


def test_term_drains_then_exits_zero() -> None:
    state = booted(2, graceful_timeout=30.0)
    actions = on_event(state, Signalled(signal.SIGTERM), 1.0)
    assert actions == [
        Notify("STOPPING=1"),
        Signal(100, signal.SIGTERM),
        Signal(101, signal.SIGTERM),
    ]
    assert on_event(state, ChildExited(100, code=0), 2.0) == []
    assert on_event(state, ChildExited(101, code=0), 2.0) == [Exit(0)]
    assert state.phase is Phase.DONE


def test_term_kills_what_is_left_after_graceful_timeout() -> None:
    state = booted(1, graceful_timeout=3.0)
    on_event(state, Signalled(signal.SIGQUIT), 1.0)
    assert next_deadline(state) == 4.0
    assert on_event(state, Tick(), 3.9) == []
    assert on_event(state, Tick(), 4.0) == [Signal(100, signal.SIGKILL)]
    assert on_event(state, ChildExited(100, signal=signal.SIGKILL), 4.1) == [Exit(0)]


def test_term_immediate_and_int_send_sigint() -> None:
    state = booted(1, term_immediate=True)
    assert on_event(state, Signalled(signal.SIGTERM), 1.0)[1:] == [
        Signal(100, signal.SIGINT)
    ]
    state = booted(1)
    assert on_event(state, Signalled(signal.SIGINT), 1.0)[1:] == [
        Signal(100, signal.SIGINT)
    ]
    assert next_deadline(state) == 6.0


def test_int_during_graceful_stop_hurries_the_workers() -> None:
    state = booted(1)
    on_event(state, Signalled(signal.SIGTERM), 1.0)
    assert on_event(state, Signalled(signal.SIGINT), 2.0) == [
        Notify("STOPPING=1"),
        Signal(100, signal.SIGINT),
    ]
    assert next_deadline(state) == 7.0


def test_app_load_error_in_the_first_generation_halts_with_4() -> None:
    state = pool_state(Settings(workers=2), master_pid=1)
    on_event(state, Tick(), 0.0)
    on_event(state, Spawned(0, 100), 0.0)
    on_event(state, Spawned(1, 101), 0.0)
    actions = on_event(state, ChildExited(100, code=4), 0.5)
    assert actions == [
        AppLoadFailed(100, fatal=True),
        Notify("STOPPING=1"),
        Signal(101, signal.SIGTERM),
    ]
    assert on_event(state, ChildExited(101, code=4), 0.6) == [Exit(4)]


def test_boot_crashes_back_off_exponentially_up_to_5s() -> None:
    state = booted(1)
    on_event(state, ChildExited(100, code=1), 0.0)  # was ready: respawned at once
    delays = []
    now = 0.0
    pid = 1000
    for _ in range(9):
        slot = next(iter(state.workers))
        on_event(state, Spawned(slot, pid), now)
        assert on_event(state, ChildExited(pid, code=3), now) == []
        deadline = next_deadline(state)
        assert deadline is not None
        delays.append(round(deadline - now, 3))
        assert on_event(state, Tick(), deadline - 0.01) == []
        now = deadline
        assert on_event(state, Tick(), now) == [Spawn(0, 1)]
        pid += 1
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    on_event(state, Spawned(0, pid), now)
    on_event(state, SlotReady(0), now)
    assert state.boot_failures == 0


def test_timeout_sends_abort_then_kill_one_second_later() -> None:
    state = booted(1)
    assert on_event(state, RequestTooLong(0), 10.0) == [Signal(100, signal.SIGABRT)]
    assert on_event(state, RequestTooLong(0), 10.5) == []
    assert next_deadline(state) == 11.0
    # The stuck worker no longer counts: its replacement starts with the SIGKILL.
    assert on_event(state, Tick(), 11.0) == [Signal(100, signal.SIGKILL), Spawn(1, 1)]
    assert on_event(state, ChildExited(100, signal=signal.SIGKILL), 11.1) == []


def test_usr1_reopens_and_forwards() -> None:
    state = booted(2)
    assert on_event(state, Signalled(signal.SIGUSR1), 1.0) == [
        ReopenLogs(),
        Signal(100, signal.SIGUSR1),
        Signal(101, signal.SIGUSR1),
    ]


def test_usr2_and_winch_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    state = booted(1)
    assert on_event(state, Signalled(signal.SIGUSR2), 1.0) == []
    assert on_event(state, Signalled(signal.SIGWINCH), 1.0) == []
    assert "SIGUSR2: ignored" in caplog.text


def test_unknown_child_is_reaped_without_effect() -> None:
    state = booted(1)
    assert on_event(state, ChildExited(4242, code=0), 1.0) == []
    assert pids(state) == {100}


def test_killed_worker_log_names_the_signal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    state = booted(1)
    on_event(state, ChildExited(100, signal=signal.SIGKILL), 1.0)
    assert "worker 100 killed by SIGKILL" in caplog.text


def test_routine_recycling_logs_only_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    # Perl's Net::Server logs child starts and exits at levels 3-4 (not shown by default).
    caplog.set_level(logging.INFO)
    state = booted(2)
    caplog.clear()  # "all 2 workers ready" stays at INFO
    assert on_event(state, SlotDraining(1), 5.0) == [Spawn(2, 1)]
    on_event(state, Spawned(2, 102), 5.0)
    on_event(state, SlotReady(2), 5.1)
    on_event(state, ChildExited(101, code=0), 5.5)
    on_event(state, ChildExited(100, code=0), 6.0)  # recycled without draining first
    assert caplog.text == ""
    caplog.set_level(logging.DEBUG)
    on_event(state, SlotDraining(2), 7.0)
    assert "worker 102 is draining" in caplog.text


def test_drained_worker_that_fails_is_still_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    state = booted(2)
    on_event(state, SlotDraining(1), 5.0)
    on_event(state, ChildExited(101, code=1), 5.5)
    assert "worker 101 exited with code 1 (retired)" in caplog.text

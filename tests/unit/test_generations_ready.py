"""The --wait-ready policy (READY=1 decides; rollback; failures; upward notifications)."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from start_server.common.proc import ExitStatus
from start_server.generations import (
    FAILED_KILL_AFTER,
    Exit,
    NotifyUp,
    Params,
    ReadyReceived,
    RecordFailure,
    Signal,
    Signalled,
    Spawn,
    Spawned,
    SpawnFailed,
    Start,
    State,
    Tick,
    WriteStatus,
    next_deadline,
    on_event,
)
from tests.harness.policy import exited, of, texts

if TYPE_CHECKING:  # Action is a type alias for mypy only
    pass

TERM = signal.SIGTERM


def ready_params(**kw: object) -> Params:
    return Params(wait_ready=True, ready_timeout=10.0, interval=1.0, **kw)  # type: ignore[arg-type]


def serving(params: Params | None = None, pid: int = 100) -> State:
    """Generation 1 (pid) current after its READY=1 at t=0.5."""
    state = State(params=params or ready_params())
    assert on_event(state, Start(), 0.0) == [Spawn(1)]
    on_event(state, Spawned(pid), 0.0)
    assert next_deadline(state) == 10.0
    # --interval means nothing now: surviving it does not promote.
    assert on_event(state, Tick(), 1.0) == []
    actions = on_event(state, ReadyReceived(1), 0.5)
    assert of(WriteStatus, actions) == [WriteStatus(((1, pid),))]
    assert state.current is not None and state.current.pid == pid
    return state


def hup(state: State, now: float, pid: int) -> int:
    actions = on_event(state, Signalled(signal.SIGHUP), now)
    spawn = of(Spawn, actions)
    assert len(spawn) == 1
    assert isinstance(spawn[0], Spawn)
    on_event(state, Spawned(pid), now)
    return spawn[0].generation


def test_ready_promotes_at_once_and_retires_the_old_generation() -> None:
    state = serving()
    hup(state, 5.0, 200)
    # Before READY=1 the old generation is current in every sense but the status file.
    assert on_event(state, Tick(), 9.0) == []
    actions = on_event(state, ReadyReceived(2), 9.5)
    assert texts(actions)[0] == "new worker 200 is ready (READY=1 after 4.5s)"
    assert WriteStatus(((1, 100), (2, 200))) in actions
    assert Signal(TERM, (100,)) in actions
    on_event(state, exited(100), 10.0)
    assert state.current is not None and state.current.generation == 2


def test_ready_from_another_generation_is_ignored() -> None:
    state = serving()
    hup(state, 5.0, 200)
    assert on_event(state, ReadyReceived(1), 6.0) == []  # the serving one, again
    assert on_event(state, ReadyReceived(7), 6.0) == []
    assert state.starting is not None and state.starting.pid == 200


def test_generation_that_exits_before_ready_is_rolled_back_at_once() -> None:
    state = serving()
    hup(state, 5.0, 200)
    actions = on_event(state, exited(200, 3), 5.2)
    assert texts(actions)[:2] == [
        "new worker 200 (generation 2) failed to start: exited before READY=1, "
        "status:768 (exit code 3)",
        "rolled back: old worker 100 keeps serving",
    ]
    assert of(Signal, actions) == []  # nothing to stop, nothing retried
    assert of(Spawn, actions) == []
    assert of(RecordFailure, actions) == [
        RecordFailure(
            2,
            200,
            "exited before READY=1, status:768 (exit code 3); rolled back, "
            "generation 1 (pid 100) keeps serving",
        )
    ]
    # The status file names only the generation that serves.
    assert of(WriteStatus, actions) == [WriteStatus(((1, 100),))]
    assert state.current is not None and state.current.pid == 100
    assert state.old == {}
    assert next_deadline(state) is None


def test_generation_not_ready_in_time_is_stopped_then_killed() -> None:
    state = serving(ready_params(signal_on_term=signal.SIGUSR2))
    hup(state, 5.0, 200)
    assert next_deadline(state) == 15.0
    assert on_event(state, Tick(), 14.9) == []
    actions = on_event(state, Tick(), 15.0)
    assert texts(actions)[0] == (
        "new worker 200 (generation 2) failed to start: no READY=1 within 10s; "
        "sending USR2 to it"
    )
    assert of(Signal, actions) == [Signal(signal.SIGUSR2, (200,))]
    assert of(WriteStatus, actions) == [WriteStatus(((1, 100),))]
    failure = of(RecordFailure, actions)
    assert len(failure) == 1 and isinstance(failure[0], RecordFailure)
    assert failure[0].render() == (
        "2:200 no READY=1 within 10s; rolled back, generation 1 (pid 100) keeps serving\n"
    )
    # A READY=1 that comes too late changes nothing.
    assert on_event(state, ReadyReceived(2), 15.5) == []
    assert state.current is not None and state.current.pid == 100
    # Still alive after the grace period: KILL, once.
    assert next_deadline(state) == 15.0 + FAILED_KILL_AFTER
    actions = on_event(state, Tick(), 15.0 + FAILED_KILL_AFTER)
    assert of(Signal, actions) == [Signal(signal.SIGKILL, (200,))]
    assert next_deadline(state) is None
    assert on_event(state, Tick(), 40.0) == []
    actions = on_event(state, exited(200), 41.0)
    assert texts(actions) == ["failed worker 200 is gone, status:0"]
    assert state.failed == {}


def test_a_hup_during_the_wait_is_queued_and_tried_after_the_rollback() -> None:
    state = serving()
    hup(state, 5.0, 200)
    assert on_event(state, Signalled(signal.SIGHUP), 6.0) == []
    actions = on_event(state, exited(200, 1), 7.0)
    assert Spawn(3) in actions
    on_event(state, Spawned(300), 7.0)
    actions = on_event(state, ReadyReceived(3), 8.0)
    assert Signal(TERM, (100,)) in actions
    assert state.current is not None and state.current.pid == 300


def test_first_generation_failing_is_retried_after_the_interval() -> None:
    state = State(params=ready_params())
    on_event(state, Start(), 0.0)
    on_event(state, Spawned(100), 0.0)
    actions = on_event(state, exited(100, 2), 0.3)
    assert of(Spawn, actions) == []
    assert of(RecordFailure, actions) == [
        RecordFailure(
            1, 100, "exited before READY=1, status:512 (exit code 2); nothing else "
            "is serving, retrying"
        )
    ]  # fmt: skip
    assert next_deadline(state) == 1.3
    assert on_event(state, Tick(), 1.3) == [Spawn(2)]


def test_exec_failure_of_a_new_generation_rolls_back() -> None:
    state = serving()
    on_event(state, Signalled(signal.SIGHUP), 5.0)
    status = ExitStatus(200, 255 << 8, 255, None)
    actions = on_event(state, SpawnFailed(status, "failed to exec 'x'"), 5.0)
    assert "rolled back: old worker 100 keeps serving" in texts(actions)
    assert state.current is not None and state.current.pid == 100
    assert of(Spawn, actions) == []


def test_old_generation_dying_during_the_wait_leaves_nothing_to_roll_back_to() -> None:
    state = serving()
    hup(state, 5.0, 200)
    on_event(state, exited(100, 1), 6.0)
    actions = on_event(state, Tick(), 15.0)
    assert of(Signal, actions) == [Signal(TERM, (200,))]
    assert state.current is None
    assert state.spawn_at == 16.0
    assert on_event(state, Tick(), 16.0) == [Spawn(3)]


def test_term_while_waiting_stops_the_new_one_too_and_exits() -> None:
    state = serving()
    hup(state, 5.0, 200)
    actions = on_event(state, Signalled(TERM), 6.0)
    assert of(Signal, actions) == [Signal(TERM, (100, 200))]
    on_event(state, exited(100), 6.5)
    assert on_event(state, ReadyReceived(2), 6.6) == []
    actions = on_event(state, exited(200), 7.0)
    assert Exit(0) in actions
    assert of(RecordFailure, actions) == []


def test_term_waits_for_a_failed_generation_still_stopping() -> None:
    state = serving()
    hup(state, 5.0, 200)
    on_event(state, Tick(), 15.0)  # 200 failed, got TERM
    actions = on_event(state, Signalled(TERM), 16.0)
    assert of(Signal, actions) == [Signal(TERM, (100, 200))]
    assert of(Exit, on_event(state, exited(100), 16.5)) == []
    # Its KILL deadline still runs while stopping.
    assert next_deadline(state) == 15.0 + FAILED_KILL_AFTER
    assert Exit(0) in on_event(state, exited(200), 17.0)


def test_without_wait_ready_a_late_ready_changes_nothing() -> None:
    # (A READY=1 within --interval promotes at once even without --wait-ready:
    # tests/unit/test_generations_announced.py.)
    state = State(params=Params(interval=1.0))
    on_event(state, Start(), 0.0)
    on_event(state, Spawned(100), 0.0)
    assert of(WriteStatus, on_event(state, Tick(), 1.0)) == [WriteStatus(((1, 100),))]
    assert on_event(state, ReadyReceived(1), 1.1) == []
    assert state.current is not None and state.current.pid == 100


def test_upward_notifications_under_systemd() -> None:
    params = ready_params(notify_upstream=True)
    state = State(params=params)
    on_event(state, Start(), 0.0)
    on_event(state, Spawned(100), 0.0)
    actions = on_event(state, ReadyReceived(1), 0.5)
    assert of(NotifyUp, actions) == [NotifyUp("READY=1\nSTATUS=generation 1 serving")]
    actions = on_event(state, Signalled(signal.SIGHUP), 5.0)
    assert of(NotifyUp, actions) == [NotifyUp("RELOADING=1")]
    on_event(state, Spawned(200), 5.0)
    actions = on_event(state, ReadyReceived(2), 6.0)
    assert of(NotifyUp, actions) == [NotifyUp("READY=1\nSTATUS=generation 2 serving")]
    # A failed swap ends the reload too: READY=1, with the reason in STATUS.
    on_event(state, Signalled(signal.SIGHUP), 8.0)
    on_event(state, Spawned(300), 8.0)
    actions = on_event(state, exited(300, 1), 8.5)
    (note,) = of(NotifyUp, actions)
    assert isinstance(note, NotifyUp)
    assert note.message.startswith("READY=1\nSTATUS=generation 3 failed to start")
    actions = on_event(state, Signalled(TERM), 9.0)
    assert of(NotifyUp, actions) == [NotifyUp("STOPPING=1")]


def test_no_upward_notifications_without_a_supervisor() -> None:
    state = serving()
    hup(state, 5.0, 200)
    actions = on_event(state, ReadyReceived(2), 6.0)
    assert of(NotifyUp, actions) == []

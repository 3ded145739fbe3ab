"""The supervision policy, event by event, with literal times (no processes, no clock)."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from start_server.common.proc import ExitStatus
from start_server.generations import (
    Exit,
    Log,
    Params,
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
from tests.harness.policy import exited

if TYPE_CHECKING:  # Action is a type alias for mypy only
    from start_server.generations import Action

TERM = signal.SIGTERM


def logs(actions: list[Action]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Log)]


def non_log(actions: list[Action]) -> list[Action]:
    return [a for a in actions if not isinstance(a, Log)]


def started(params: Params | None = None, pid: int = 100) -> State:
    """A state whose first generation (pid) is current at t=1."""
    state = State(params=params or Params(interval=1.0))
    assert on_event(state, Start(), 0.0) == [Spawn(1)]
    assert logs(on_event(state, Spawned(pid), 0.0)) == [f"starting new worker {pid}"]
    assert non_log(on_event(state, Tick(), 1.0)) == [WriteStatus(((1, pid),))]
    return state


def test_first_generation_becomes_current_after_interval() -> None:
    state = State(params=Params(interval=2.0))
    on_event(state, Start(), 0.0)
    on_event(state, Spawned(100), 0.0)
    assert next_deadline(state) == 2.0
    assert on_event(state, Tick(), 1.9) == []
    assert on_event(state, Tick(), 2.0) == [WriteStatus(((1, 100),))]
    assert state.current is not None and state.current.pid == 100
    assert next_deadline(state) is None


def test_hup_spawns_then_signals_old_after_interval() -> None:
    state = started()
    actions = on_event(state, Signalled(signal.SIGHUP), 5.0)
    assert actions == [Log("received HUP, spawning a new worker"), Spawn(2)]
    on_event(state, Spawned(200), 5.0)
    # The old generation is not touched during the interval.
    assert on_event(state, Tick(), 5.5) == []
    actions = on_event(state, Tick(), 6.0)
    assert actions == [
        WriteStatus(((1, 100), (2, 200))),
        Log("new worker is now running, sending TERM to old workers:100"),
        Log("killing old workers"),
        Signal(TERM, (100,)),
    ]
    actions = on_event(state, exited(100), 6.1)
    assert actions == [Log("old worker 100 died, status:0"), WriteStatus(((2, 200),))]


def test_signal_on_hup_and_kill_old_delay_are_honoured() -> None:
    state = started(
        Params(interval=1.0, kill_old_delay=3.0, signal_on_hup=signal.SIGUSR1)
    )
    on_event(state, Signalled(signal.SIGHUP), 5.0)
    on_event(state, Spawned(200), 5.0)
    actions = on_event(state, Tick(), 6.0)
    assert logs(actions)[-1] == "sleeping 3 secs before killing old workers"
    assert not any(isinstance(a, Signal) for a in actions)
    assert next_deadline(state) == 9.0
    assert on_event(state, Tick(), 8.9) == []
    assert on_event(state, Tick(), 9.0) == [
        Log("killing old workers"),
        Signal(signal.SIGUSR1, (100,)),
    ]


def test_new_generation_dying_at_start_is_retried_while_old_serves() -> None:
    state = started()
    on_event(state, Signalled(signal.SIGHUP), 5.0)
    on_event(state, Spawned(200), 5.0)
    assert on_event(state, exited(200, 1), 5.1) == []
    actions = on_event(state, Tick(), 6.0)
    assert actions == [
        Log(
            "new worker 200 seems to have failed to start, exit status:256",
            warning=True,
        ),
        Spawn(3),
    ]
    on_event(state, Spawned(300), 6.0)
    assert state.old == {100: 1}
    actions = on_event(state, Tick(), 7.0)
    assert actions[0] == WriteStatus(((1, 100), (3, 300)))
    assert Signal(TERM, (100,)) in actions


def test_failed_exec_after_first_generation_is_logged_and_retried() -> None:
    state = started()
    on_event(state, Signalled(signal.SIGHUP), 5.0)
    status = ExitStatus(200, 255 << 8, 255, None)
    actions = on_event(state, SpawnFailed(status, "failed to exec 'x': nope"), 5.0)
    assert actions == [Log("failed to exec 'x': nope", warning=True)]
    assert non_log(on_event(state, Tick(), 6.0)) == [Spawn(3)]


def test_failed_exec_of_first_generation_exits_with_the_error() -> None:
    state = State()
    on_event(state, Start(), 0.0)
    status = ExitStatus(100, 255 << 8, 255, None)
    assert on_event(state, SpawnFailed(status, "failed to exec"), 0.0) == [
        Exit(1, "failed to exec")
    ]


def test_current_dying_unexpectedly_is_restarted_with_next_generation() -> None:
    state = started()
    actions = on_event(state, exited(100, 3), 10.0)
    assert actions[0] == Log(
        "worker 100 died unexpectedly with status:768, restarting (exit code 3)",
        warning=True,
    )
    assert actions[1:] == [Spawn(2)]
    on_event(state, Spawned(200), 10.0)
    assert on_event(state, Tick(), 11.0) == [WriteStatus(((2, 200),))]


def test_respawn_is_throttled_when_interval_is_zero() -> None:
    state = State(params=Params(interval=0.0))
    on_event(state, Start(), 0.0)
    # With --interval 0 the child is current as soon as it is spawned.
    assert non_log(on_event(state, Spawned(100), 0.0)) == [WriteStatus(((1, 100),))]
    # Spawned at 0.0; a crash at 0.01 waits for the floor since that spawn.
    assert non_log(on_event(state, exited(100, 1), 0.01)) == []
    assert next_deadline(state) is not None
    assert on_event(state, Tick(), 0.1) == [Spawn(2)]


def test_term_forwards_signal_on_term_and_exits_after_children() -> None:
    state = started(Params(interval=1.0, signal_on_term=signal.SIGQUIT))
    on_event(state, Signalled(signal.SIGHUP), 5.0)
    on_event(state, Spawned(200), 5.0)
    actions = on_event(state, Signalled(TERM), 5.2)
    assert actions == [
        Log("received TERM, sending QUIT to all workers:100,200"),
        Signal(signal.SIGQUIT, (100, 200)),
    ]
    assert non_log(on_event(state, exited(100), 5.3)) == [WriteStatus(())]
    # HUP while stopping is ignored.
    assert on_event(state, Signalled(signal.SIGHUP), 5.4) == []
    actions = on_event(state, exited(200), 5.5)
    assert actions == [Log("worker 200 died, status:0"), Log("exiting"), Exit(0)]
    assert state.exited


def test_int_forwards_term_whatever_signal_on_term() -> None:
    state = started(Params(signal_on_term=signal.SIGUSR2))
    actions = on_event(state, Signalled(signal.SIGINT), 2.0)
    assert Signal(TERM, (100,)) in actions


def test_quit_is_treated_like_term() -> None:
    state = started(Params(signal_on_term=signal.SIGUSR2))
    actions = on_event(state, Signalled(signal.SIGQUIT), 2.0)
    assert actions == [
        Log("received QUIT, sending USR2 to all workers:100"),
        Signal(signal.SIGUSR2, (100,)),
    ]


def test_two_hups_make_two_generations_and_signal_every_older_one() -> None:
    state = started()
    on_event(state, Signalled(signal.SIGHUP), 5.0)
    on_event(state, Spawned(200), 5.0)
    # A second HUP during the interval waits for the first restart to finish.
    assert on_event(state, Signalled(signal.SIGHUP), 5.5) == []
    actions = on_event(state, Tick(), 6.0)
    assert Signal(TERM, (100,)) in actions
    assert actions[-2:] == [Log("received HUP, spawning a new worker"), Spawn(3)]
    on_event(state, Spawned(300), 6.0)
    actions = on_event(state, Tick(), 7.0)
    assert WriteStatus(((1, 100), (2, 200), (3, 300))) in actions
    assert Signal(TERM, (100, 200)) in actions


def test_status_file_sorts_generations_as_strings_like_perl() -> None:
    state = started()
    state.generation = 9
    on_event(state, Signalled(signal.SIGHUP), 5.0)
    on_event(state, Spawned(200), 5.0)
    actions = on_event(state, Tick(), 6.0)
    assert actions[0] == WriteStatus(((1, 100), (10, 200)))
    assert isinstance(actions[0], WriteStatus)
    assert actions[0].render() == "1:100\n10:200\n"


def test_auto_restart_after_interval_without_old_workers() -> None:
    params = Params(interval=1.0, auto_restart=True, auto_restart_interval=10.0)
    state = started(params)
    assert next_deadline(state) == 11.0
    assert on_event(state, Tick(), 10.9) == []
    actions = on_event(state, Tick(), 11.0)
    assert actions == [Log("autorestart triggered (interval=10)"), Spawn(2)]
    on_event(state, Spawned(200), 11.0)
    actions = on_event(state, Tick(), 12.0)
    # Perl: kill-old-delay defaults to 5 with auto-restart.
    assert Log("sleeping 5 secs before killing old workers") in actions
    assert next_deadline(state) == 17.0


def test_auto_restart_is_forced_after_twice_the_interval() -> None:
    params = Params(interval=1.0, auto_restart=True, auto_restart_interval=10.0)
    state = started(params)
    state.old[50] = 0  # an old worker that refuses to die
    assert next_deadline(state) == 21.0
    actions = on_event(state, Tick(), 21.0)
    assert actions[0] == Log("autorestart triggered (forced, interval=10)")


def test_unknown_children_are_ignored() -> None:
    state = started()
    assert on_event(state, exited(999), 3.0) == []


def test_term_during_a_start_signals_the_starting_child_too() -> None:
    state = started()
    on_event(state, Signalled(signal.SIGHUP), 5.0)
    on_event(state, Spawned(200), 5.0)
    actions = on_event(state, Signalled(TERM), 5.1)
    assert Signal(TERM, (100, 200)) in actions
    on_event(state, exited(200), 5.2)
    assert on_event(state, exited(100), 5.3)[-1] == Exit(0)

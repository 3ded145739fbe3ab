"""Readiness without --wait-ready: a generation that speaks sd_notify within --interval
opts in (READY=1 decides, with rollback); one that says nothing keeps Perl's rule."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from start_server.generations import (
    Announced,
    NotifyUp,
    Params,
    ReadyReceived,
    RecordFailure,
    Signal,
    Signalled,
    Spawn,
    Spawned,
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


def defaults(**kw: object) -> Params:
    """start_server's defaults: no --wait-ready."""
    return Params(interval=1.0, ready_timeout=10.0, **kw)  # type: ignore[arg-type]


def serving(params: Params | None = None) -> State:
    """Generation 1 (pid 100), silent, current after --interval."""
    state = State(params=params or defaults())
    on_event(state, Start(), 0.0)
    on_event(state, Spawned(100), 0.0)
    assert of(WriteStatus, on_event(state, Tick(), 1.0)) == [WriteStatus(((1, 100),))]
    return state


def hup(state: State, now: float, pid: int = 200) -> None:
    assert of(Spawn, on_event(state, Signalled(signal.SIGHUP), now)) == [Spawn(2)]
    on_event(state, Spawned(pid), now)


def test_an_announced_generation_is_promoted_on_ready_not_on_the_interval() -> None:
    state = serving()
    hup(state, 5.0)
    actions = on_event(state, Announced(2), 5.2)
    assert texts(actions) == [
        "new worker 200 announced itself, waiting for its READY=1 (--ready-timeout 10s)"
    ]
    assert next_deadline(state) == 15.0
    # --interval passes: the old generation keeps serving, nothing is signalled.
    assert of(Signal, on_event(state, Tick(), 6.5)) == []
    assert state.old == {100: 1} and state.starting is not None
    actions = on_event(state, ReadyReceived(2), 8.0)
    assert "new worker 200 is ready (READY=1 after 3.0s)" in texts(actions)
    assert of(Signal, actions) == [Signal(TERM, (100,))]
    assert of(WriteStatus, actions) == [WriteStatus(((1, 100), (2, 200)))]


def test_a_silent_generation_keeps_perls_interval_rule() -> None:
    state = serving()
    hup(state, 5.0)
    assert next_deadline(state) == 6.0
    actions = on_event(state, Tick(), 6.0)
    assert "new worker is now running, sending TERM to old workers:100" in texts(
        actions
    )
    assert of(Signal, actions) == [Signal(TERM, (100,))]


def test_a_silent_generation_that_exits_is_respawned_as_perl_does() -> None:
    state = serving()
    hup(state, 5.0)
    assert on_event(state, exited(200, 1), 5.5) == []
    actions = on_event(state, Tick(), 6.0)
    assert texts(actions)[0].startswith("new worker 200 seems to have failed to start")
    assert of(Spawn, actions) == [Spawn(3)]
    assert of(RecordFailure, actions) == []


def test_a_message_after_the_interval_is_too_late_to_opt_in() -> None:
    state = serving()
    hup(state, 5.0)
    # The message is read before the Tick that would promote: the interval decides.
    actions = on_event(state, Announced(2), 6.1)
    assert "announced itself" not in " ".join(texts(actions))
    assert of(Signal, actions) == [Signal(TERM, (100,))]


def test_ready_within_the_interval_promotes_at_once() -> None:
    # A systemd-style server that sends only READY=1.
    state = serving()
    hup(state, 5.0)
    actions = on_event(state, ReadyReceived(2), 5.3)
    assert of(Signal, actions) == [Signal(TERM, (100,))]
    assert state.current is not None and state.current.pid == 200


def test_an_announced_generation_that_exits_is_rolled_back() -> None:
    state = serving()
    hup(state, 5.0)
    on_event(state, Announced(2), 5.1)
    actions = on_event(state, exited(200, 3), 5.5)
    assert texts(actions)[:2] == [
        "new worker 200 (generation 2) failed to start: exited before READY=1, "
        "status:768 (exit code 3)",
        "rolled back: old worker 100 keeps serving",
    ]
    assert of(RecordFailure, actions) != []
    assert state.current is not None and state.current.pid == 100
    assert of(Signal, actions) == []  # the old generation never got a signal


def test_an_announced_generation_not_ready_in_time_is_stopped_and_rolled_back() -> None:
    state = serving()
    hup(state, 5.0)
    on_event(state, Announced(2), 5.1)
    assert on_event(state, Tick(), 14.9) == []
    actions = on_event(state, Tick(), 15.0)
    assert texts(actions)[0] == (
        "new worker 200 (generation 2) failed to start: no READY=1 within 10s; "
        "sending TERM to it"
    )
    assert of(Signal, actions) == [Signal(TERM, (200,))]
    assert state.current is not None and state.current.pid == 100


def test_announcing_is_per_generation() -> None:
    state = serving()
    hup(state, 5.0)
    on_event(state, Announced(2), 5.1)
    on_event(state, ReadyReceived(2), 6.0)
    on_event(state, exited(100), 6.2)
    # Generation 3 says nothing: --interval decides for it.
    assert of(Spawn, on_event(state, Signalled(signal.SIGHUP), 7.0)) == [Spawn(3)]
    on_event(state, Spawned(300), 7.0)
    assert on_event(state, Announced(2), 7.1) == []  # an old generation's message
    assert next_deadline(state) == 8.0
    assert of(Signal, on_event(state, Tick(), 8.0)) == [Signal(TERM, (200,))]


def test_under_systemd_a_rollback_ends_the_reload_with_ready() -> None:
    state = serving(defaults(notify_upstream=True))
    actions = on_event(state, Signalled(signal.SIGHUP), 5.0)
    assert of(NotifyUp, actions) == [NotifyUp("RELOADING=1")]
    on_event(state, Spawned(200), 5.0)
    on_event(state, Announced(2), 5.1)
    (note,) = of(NotifyUp, on_event(state, exited(200, 1), 5.5))
    assert isinstance(note, NotifyUp)
    assert note.message.startswith("READY=1\nSTATUS=generation 2 failed to start")

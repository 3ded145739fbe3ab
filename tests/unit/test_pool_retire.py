"""The pool's two ways of ending a worker: RETIRE (its connections move to the live
workers: SIGTTOU, the end of a SIGHUP reload) and SIGTERM (they close: a stop)."""

from __future__ import annotations

import signal

from starman.master.pool import (
    RETIRE,
    Signal,
    Signalled,
    WorkerState,
    on_event,
)
from tests.unit.test_pool import booted


def test_ttou_retires_a_ready_worker_with_the_handover_signal() -> None:
    state = booted(3)
    actions = on_event(state, Signalled(signal.SIGTTOU, frozenset()), 1.0)
    assert actions == [Signal(102, RETIRE)]
    assert state.workers[2].state is WorkerState.DRAINING


def test_a_stop_after_a_retirement_sends_term_so_its_connections_close() -> None:
    # The retired worker is handing its connections over; the whole pool now stops, so
    # nobody would take them: SIGTERM switches it to closing them.
    state = booted(3)
    on_event(state, Signalled(signal.SIGTTOU, frozenset()), 1.0)
    actions = on_event(state, Signalled(signal.SIGTERM), 2.0)
    assert Signal(102, signal.SIGTERM) in actions
    assert Signal(100, signal.SIGTERM) in actions
    # ...once: a second stop signal sends no second TERM.
    assert Signal(102, signal.SIGTERM) not in on_event(
        state, Signalled(signal.SIGQUIT), 3.0
    )


def test_a_term_stopped_worker_is_not_sent_term_twice() -> None:
    state = booted(2)
    first = on_event(state, Signalled(signal.SIGTERM), 1.0)
    assert Signal(100, signal.SIGTERM) in first
    assert on_event(state, Signalled(signal.SIGQUIT), 2.0) == []

"""A stopping pool never spawns: Ctrl-C reaches the master and its workers together, and
the workers' exits must not be taken for ones to replace (fed literal events)."""

from __future__ import annotations

import random
import signal

from starman.config import Settings
from starman.master.pool import (
    ChildExited,
    Event,
    Exit,
    Notify,
    Phase,
    PoolState,
    RequestTooLong,
    Signal,
    Signalled,
    SlotDraining,
    SlotReady,
    SlotRetiring,
    Spawn,
    Spawned,
    Tick,
    on_event,
    pool_state,
)


def booted(n: int) -> PoolState:
    """``n`` ready workers, pids 100, 101, ... in slots 0, 1, ..."""
    state = pool_state(Settings(workers=n), master_pid=1)
    on_event(state, Tick(), 0.0)
    for i in range(n):
        on_event(state, Spawned(i, 100 + i), 0.0)
        on_event(state, SlotReady(i), 0.0)
    assert state.announced_ready
    return state


def test_ctrl_c_batch_signal_first_spawns_nothing_and_exits_0() -> None:
    # The master feeds a turn's signals before its reaped children.
    state = booted(3)
    assert on_event(state, Signalled(signal.SIGINT), 1.0) == [
        Notify("STOPPING=1"),
        Signal(100, signal.SIGINT),
        Signal(101, signal.SIGINT),
        Signal(102, signal.SIGINT),
    ]
    assert on_event(state, ChildExited(100, code=0), 1.0) == []
    assert on_event(state, ChildExited(101, signal=signal.SIGINT), 1.0) == []
    assert on_event(state, Tick(), 1.1) == []
    assert on_event(state, ChildExited(102, code=0), 1.2) == [Exit(0)]


def test_the_same_exits_before_the_signal_would_be_replaced() -> None:
    # The good neighbour, and why the order matters: a worker that leaves while the
    # pool runs is replaced at once.
    state = booted(2)
    assert on_event(state, ChildExited(100, code=0), 1.0) == [Spawn(0, 1)]


def test_a_worker_forked_just_before_the_stop_is_stopped_when_it_is_known() -> None:
    state = booted(2)
    assert on_event(state, ChildExited(100, signal=signal.SIGKILL), 1.0) == [
        Spawn(0, 1)
    ]
    on_event(state, Signalled(signal.SIGTERM), 1.0)
    assert on_event(state, Spawned(0, 200), 1.0) == [Signal(200, signal.SIGTERM)]


def test_no_event_sequence_makes_a_stopping_pool_spawn() -> None:
    rng = random.Random(23)
    for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        for _ in range(200):
            state = booted(3)
            on_event(state, Signalled(stop), 1.0)
            now = 1.0
            for _ in range(30):
                now += rng.choice((0.0, 0.5, 3.0))
                live = [w.pid for w in state.workers.values() if w.pid is not None]
                choices: list[Event] = [
                    Tick(),
                    Signalled(
                        rng.choice(
                            (
                                signal.SIGHUP,
                                signal.SIGTTIN,
                                signal.SIGTTOU,
                                signal.SIGINT,
                                signal.SIGTERM,
                            )
                        )
                    ),
                    SlotReady(rng.randrange(3)),
                    SlotDraining(rng.randrange(3)),
                    SlotRetiring(rng.randrange(3)),
                    RequestTooLong(rng.randrange(3)),
                ]
                if live:
                    choices.append(
                        ChildExited(rng.choice(live), code=rng.choice((0, 1, 3, 4)))
                    )
                actions = on_event(state, rng.choice(choices), now)
                assert not any(isinstance(a, Spawn) for a in actions), actions
            assert state.phase in (Phase.STOPPING, Phase.DONE)

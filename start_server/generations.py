"""The supervision policy of start_server, as a pure state machine (Server::Starter's rules).

Rule 1: no syscalls, no clock, no signals sent here: ``on_event(state, event, now)`` only
mutates ``state`` and returns the Actions for the supervisor to carry out, in order.
Rule 2: every deadline (interval, kill-old-delay, auto-restart, respawn) is data in State;
``next_deadline(state)`` tells the loop how long it may block.
Rule 3: after a Spawn action, the supervisor reports Spawned or SpawnFailed before
anything else. Log texts keep Server::Starter's wording, which operators grep.
Rule 4 (readiness): a new generation counts as started when it reports READY=1
(ReadyReceived), not when it survived --interval, if ``--wait-ready`` is on or if it
announced itself on its notify socket within --interval (Announced: any message, as
our starman's master sends at start). One that exits first, or is still not ready at
its deadline (a Tick past ``start_deadline``, --ready-timeout after the spawn), is
stopped and the generation it was to replace becomes current again (rollback);
RecordFailure tells ``--restart`` why. A child that says nothing keeps Perl's rule. NotifyUp actions are what start_server reports to its own
supervisor (systemd) when it runs under one. The records it speaks are in
``start_server.generation_records``.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable

from start_server.common.proc import ExitStatus
from start_server.generation_records import (
    Announced,
    Child,
    ChildExited,
    Exit,
    Log,
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
)

# The unions of the records exist for mypy only (typing stays out of the supervisor).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from start_server.generation_records import Action, Event

# The policy's API: the two functions and the records they speak.
__all__ = [
    "Announced",
    "ChildExited",
    "Child",
    "Exit",
    "Log",
    "NotifyUp",
    "Params",
    "ReadyReceived",
    "RecordFailure",
    "Signal",
    "Signalled",
    "Spawn",
    "SpawnFailed",
    "Spawned",
    "Start",
    "State",
    "Tick",
    "WriteStatus",
    "next_deadline",
    "on_event",
]

# Floor between two automatic spawns (a failed start's retry or a crashed child's
# restart): Perl has none, so with --interval 0 a crashing command is forked in a busy
# loop. This floor keeps that cheap while staying invisible with the default --interval.
RESPAWN_FLOOR = 0.1

# What makes start_server stop every generation and exit.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)

# A generation that failed to become ready got --signal-on-term; it gets KILL if it is
# still alive this many seconds later.
FAILED_KILL_AFTER = 10.0


# --------------------------------------------------------------------------- helpers


def _pids_text(pids: Iterable[int]) -> str:
    """Perl's ``join(',', sort keys %old_workers)``: pids sorted as strings."""
    return ",".join(sorted(str(p) for p in pids))


def _sorted_pids(pids: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted(pids, key=str))


def _status(state: State) -> WriteStatus:
    gen_pid: dict[int, int] = {gen: pid for pid, gen in state.old.items()}
    if state.current is not None:
        gen_pid[state.current.generation] = state.current.pid
    # Perl sorts the generations as strings (sort keys %gen_pid); keep it byte-identical.
    return WriteStatus(tuple((g, gen_pid[g]) for g in sorted(gen_pid, key=str)))


def _exit_text(status: ExitStatus) -> str:
    """Perl prints the raw wait status; the decoded form follows in parentheses."""
    return f"{status.status}"


def _waits_for_ready(state: State, child: Child) -> bool:
    """Rule 4: READY=1 decides for this starting generation, not --interval."""
    return state.params.wait_ready or child.announced


def _notify_up(state: State, out: list[Action], message: str) -> None:
    if state.params.notify_upstream:
        out.append(NotifyUp(message))


def _spawn(state: State, out: list[Action]) -> None:
    state.generation += 1
    state.spawning = state.generation
    state.spawn_at = None
    out.append(Spawn(state.generation))


def _schedule_respawn(state: State, now: float, out: list[Action]) -> None:
    """Spawn again now, or once RESPAWN_FLOOR has passed since the previous spawn."""
    earliest = (
        now if state.last_spawn_at is None else state.last_spawn_at + RESPAWN_FLOOR
    )
    if earliest <= now:
        _spawn(state, out)
    else:
        state.spawn_at = earliest


def _alive_children(state: State) -> list[int]:
    pids = list(state.old)
    if state.current is not None:
        pids.append(state.current.pid)
    if state.starting is not None and state.starting.exited is None:
        pids.append(state.starting.pid)
    pids.extend(state.failed)
    return pids


def _maybe_exit(state: State, out: list[Action]) -> None:
    if state.stopping and not state.exited and not _alive_children(state):
        if state.spawning is None:
            state.exited = True
            out.append(Log("exiting"))
            out.append(Exit(0))


# --------------------------------------------------------------------------- the policy


def on_event(state: State, event: Event, now: float) -> list[Action]:
    """Apply ``event`` at monotonic time ``now``; return the actions to execute in order."""
    out: list[Action] = []
    if state.exited:
        return out
    if isinstance(event, Start):
        _spawn(state, out)
    elif isinstance(event, Spawned):
        _on_spawned(state, event.pid, now, out)
    elif isinstance(event, SpawnFailed):
        _on_spawn_failed(state, event, now, out)
    elif isinstance(event, ChildExited):
        _on_child_exited(state, event.status, now, out)
    elif isinstance(event, Signalled):
        _on_signal(state, event.signal, out)
    elif isinstance(event, ReadyReceived):
        _on_ready(state, event.generation, now, out)
    elif isinstance(event, Announced):
        _on_announced(state, event.generation, now, out)
    _advance(state, now, out)
    return out


def _on_spawned(state: State, pid: int, now: float, out: list[Action]) -> None:
    gen = state.spawning if state.spawning is not None else state.generation
    state.spawning = None
    state.last_spawn_at = now
    state.starting = Child(pid, gen, now)
    params = state.params
    state.start_deadline = now + (
        params.ready_timeout if params.wait_ready else params.interval
    )
    out.append(Log(f"starting new worker {pid}"))
    if state.stopping:
        out.append(Signal(signal.SIGTERM, (pid,)))


def _on_spawn_failed(
    state: State, event: SpawnFailed, now: float, out: list[Action]
) -> None:
    gen = state.spawning if state.spawning is not None else state.generation
    state.spawning = None
    state.last_spawn_at = now
    if gen == 1 and state.current is None and not state.old:
        # Nothing is serving yet: a command that cannot be executed is a usage problem.
        state.exited = True
        out.append(Exit(1, event.message))
        return
    out.append(Log(event.message, warning=True))
    state.starting = Child(event.status.pid, gen, now, exited=event.status)
    state.start_deadline = now + state.params.interval
    if state.params.wait_ready and not state.stopping:
        _fail_start(state, "could not be executed", now, out)


def _on_child_exited(
    state: State, status: ExitStatus, now: float, out: list[Action]
) -> None:
    pid = status.pid
    starting = state.starting
    if starting is not None and starting.pid == pid:
        starting.exited = status
        if state.stopping:
            out.append(Log(f"worker {pid} died, status:{_exit_text(status)}"))
            state.starting = None
            state.start_deadline = None
        elif _waits_for_ready(state, starting):
            _fail_start(
                state,
                f"exited before READY=1, status:{_exit_text(status)} ({status.describe()})",
                now,
                out,
            )
        return
    if pid in state.failed:
        del state.failed[pid]
        out.append(Log(f"failed worker {pid} is gone, status:{_exit_text(status)}"))
        return
    if state.current is not None and state.current.pid == pid:
        state.current = None
        if state.stopping:
            out.append(Log(f"worker {pid} died, status:{_exit_text(status)}"))
            out.append(_status(state))
            return
        out.append(
            Log(
                f"worker {pid} died unexpectedly with status:{_exit_text(status)}, "
                f"restarting ({status.describe()})",
                warning=True,
            )
        )
        state.restarting = False
        _schedule_respawn(state, now, out)
        return
    if pid in state.old:
        del state.old[pid]
        if state.stopping:
            out.append(Log(f"worker {pid} died, status:{_exit_text(status)}"))
        else:
            out.append(Log(f"old worker {pid} died, status:{_exit_text(status)}"))
        out.append(_status(state))
    # Any other pid: an orphan we inherited (e.g. as PID 1); reaped, not ours to count.


def _on_signal(state: State, sig: signal.Signals, out: list[Action]) -> None:
    if state.stopping:
        return
    if sig == signal.SIGHUP:
        state.pending_hups += 1
        return
    if sig not in STOP_SIGNALS:
        return
    # Perl forwards --signal-on-term for TERM and TERM for anything else; QUIT (which
    # Perl does not handle) is treated as TERM.
    send = state.params.signal_on_term if sig != signal.SIGINT else signal.SIGTERM
    state.stopping = True
    _notify_up(state, out, "STOPPING=1")
    state.pending_hups = 0
    state.kill_at = None
    state.spawn_at = None
    pids = _alive_children(state)
    out.append(
        Log(
            f"received {sig.name[3:]}, sending {send.name[3:]} to all workers:"
            f"{_pids_text(pids)}"
        )
    )
    if pids:
        out.append(Signal(send, _sorted_pids(pids)))


def _promote(state: State, now: float, out: list[Action]) -> None:
    starting = state.starting
    assert starting is not None
    state.starting = None
    state.start_deadline = None
    state.current = starting
    state.previous = None
    state.last_restart = now
    out.append(_status(state))
    _notify_up(state, out, f"READY=1\nSTATUS=generation {starting.generation} serving")
    if not state.restarting:
        return
    state.restarting = False
    sig = state.params.signal_on_hup.name[3:]
    old = _pids_text(state.old) or "none"
    out.append(Log(f"new worker is now running, sending {sig} to old workers:{old}"))
    delay = state.params.effective_kill_old_delay
    if delay > 0:
        out.append(Log(f"sleeping {delay:g} secs before killing old workers"))
        state.kill_at = now + delay
    else:
        _kill_old(state, out)


def _kill_old(state: State, out: list[Action]) -> None:
    state.kill_at = None
    out.append(Log("killing old workers"))
    if state.old:
        out.append(Signal(state.params.signal_on_hup, _sorted_pids(state.old)))


def _restart(state: State, reason: str, out: list[Action]) -> None:
    out.append(Log(reason))
    _notify_up(state, out, "RELOADING=1")
    if state.current is not None:
        state.old[state.current.pid] = state.current.generation
        state.previous = state.current
        state.current = None
    state.restarting = True
    _spawn(state, out)


def _advance(state: State, now: float, out: list[Action]) -> None:
    """Run every deadline that is due and every queued request that may now proceed."""
    if state.exited:
        return
    _kill_failed(state, now, out)
    if state.stopping:
        _maybe_exit(state, out)
        return
    if state.spawning is not None:
        return
    if state.starting is not None and state.start_deadline is not None:
        if now < state.start_deadline:
            return
        starting = state.starting
        if _waits_for_ready(state, starting):
            timeout = state.params.ready_timeout
            _fail_start(state, f"no READY=1 within {timeout:g}s", now, out)
            return
        if starting.exited is not None:
            out.append(
                Log(
                    f"new worker {starting.pid} seems to have failed to start, "
                    f"exit status:{_exit_text(starting.exited)}",
                    warning=True,
                )
            )
            state.starting = None
            state.start_deadline = None
            _schedule_respawn(state, now, out)
            return
        _promote(state, now, out)
    if state.spawn_at is not None:
        if now >= state.spawn_at:
            _spawn(state, out)
        return
    if state.kill_at is not None:
        if now < state.kill_at:
            return
        _kill_old(state, out)
    if state.current is None:
        return
    if state.pending_hups > 0:
        state.pending_hups -= 1
        _restart(state, "received HUP, spawning a new worker", out)
        return
    params = state.params
    if params.auto_restart and state.last_restart is not None:
        elapsed = now - state.last_restart
        ari = params.auto_restart_interval
        if elapsed >= ari and not state.old:
            _restart(state, f"autorestart triggered (interval={ari:g})", out)
        elif elapsed >= ari * 2:
            _restart(state, f"autorestart triggered (forced, interval={ari:g})", out)


def next_deadline(state: State) -> float | None:
    """The monotonic time of the next due deadline, or None to wait for events only."""
    if state.exited or state.spawning is not None:
        return None
    kill_failed = min(
        (at for _, at in state.failed.values() if at != float("inf")), default=None
    )
    policy = _policy_deadline(state)
    if kill_failed is None:
        return policy
    return kill_failed if policy is None else min(policy, kill_failed)


def _policy_deadline(state: State) -> float | None:
    if state.stopping:
        return None
    if state.starting is not None:
        return state.start_deadline
    if state.spawn_at is not None:
        return state.spawn_at
    if state.kill_at is not None:
        return state.kill_at
    if state.pending_hups > 0 and state.current is not None:
        return float("-inf")
    params = state.params
    if params.auto_restart and state.last_restart is not None and state.current:
        ari = params.auto_restart_interval
        return state.last_restart + (ari if not state.old else ari * 2)
    return None


# --------------------------------------------------------------------------- readiness


def _is_starting(state: State, generation: int) -> bool:
    starting = state.starting
    return (
        not state.stopping
        and starting is not None
        and starting.generation == generation
        and starting.exited is None
    )


def _on_announced(state: State, generation: int, now: float, out: list[Action]) -> None:
    """A message within --interval: from now on this generation's READY=1 decides."""
    starting = state.starting
    if not _is_starting(state, generation) or starting is None:
        return  # a message from a generation already started, or gone: nothing to do
    if _waits_for_ready(state, starting):
        return
    if state.start_deadline is not None and now >= state.start_deadline:
        return  # too late: --interval has passed, Perl's rule decides
    starting.announced = True
    timeout = state.params.ready_timeout
    state.start_deadline = starting.spawned_at + timeout
    out.append(
        Log(
            f"new worker {starting.pid} announced itself, waiting for its READY=1 "
            f"(--ready-timeout {timeout:g}s)"
        )
    )


def _on_ready(state: State, generation: int, now: float, out: list[Action]) -> None:
    starting = state.starting
    if not _is_starting(state, generation) or starting is None:
        return  # a late READY=1 from a rolled-back generation, or a repeat: ignored
    waited = now - starting.spawned_at
    out.append(Log(f"new worker {starting.pid} is ready (READY=1 after {waited:.1f}s)"))
    _promote(state, now, out)


def _fail_start(state: State, reason: str, now: float, out: list[Action]) -> None:
    """Stop the starting generation (not ready) and make the previous one current again."""
    starting = state.starting
    assert starting is not None
    state.starting = None
    state.start_deadline = None
    gen, pid = starting.generation, starting.pid
    if starting.exited is None:
        sig = state.params.signal_on_term
        out.append(
            Log(
                f"new worker {pid} (generation {gen}) failed to start: {reason}; "
                f"sending {sig.name[3:]} to it",
                warning=True,
            )
        )
        out.append(Signal(sig, (pid,)))
        state.failed[pid] = (gen, now + FAILED_KILL_AFTER)
    else:
        out.append(
            Log(
                f"new worker {pid} (generation {gen}) failed to start: {reason}",
                warning=True,
            )
        )
    previous = state.previous
    state.previous = None
    if previous is not None and previous.pid in state.old and state.current is None:
        del state.old[previous.pid]
        state.current = previous
        state.restarting = False
        # Auto-restart waits a full interval before it tries again.
        state.last_restart = now
        kept = f"generation {previous.generation} (pid {previous.pid})"
        out.append(Log(f"rolled back: old worker {previous.pid} keeps serving"))
        out.append(
            RecordFailure(gen, pid, f"{reason}; rolled back, {kept} keeps serving")
        )
        out.append(_status(state))
        _notify_up(
            state,
            out,
            f"READY=1\nSTATUS=generation {gen} failed to start ({reason}); "
            f"{kept} serving",
        )
        return
    # Nothing to roll back to (the first generation, or the previous one died): retry.
    out.append(RecordFailure(gen, pid, f"{reason}; nothing else is serving, retrying"))
    state.spawn_at = now + max(RESPAWN_FLOOR, state.params.interval)


def _kill_failed(state: State, now: float, out: list[Action]) -> None:
    due = [pid for pid, (_, at) in state.failed.items() if at <= now]
    if not due:
        return
    for pid in due:
        gen, _ = state.failed[pid]
        state.failed[pid] = (gen, float("inf"))
        out.append(
            Log(
                f"failed worker {pid} (generation {gen}) still alive after "
                f"{FAILED_KILL_AFTER:g}s, sending KILL",
                warning=True,
            )
        )
    out.append(Signal(signal.SIGKILL, _sorted_pids(due)))

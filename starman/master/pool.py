"""Pure supervision policy for the starman master: events in, actions out.

Rule 1: no syscalls here (no fork, kill, wait, clock or file I/O); ``now`` is passed in.
Rule 2: the master feeds every event through ``on_event`` and carries out the returned
actions in order; ``next_deadline`` says how long it may sleep.
The events, actions and state are the records of ``starman.master.poolrecords``,
re-exported here as the policy's vocabulary.
"""

from __future__ import annotations

import logging
import signal

from starman.master.poolrecords import (
    ACCEPTING,
    APP_LOAD_ERROR,
    MAX_SLOTS,
    WORKER_BOOT_ERROR,
    Action,
    AppLoadFailed,
    ChildExited,
    Event,
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
    SpawnFailed,
    Tick,
    WorkerInfo,
    WorkerState,
    pool_state,
)

__all__ = [
    "APP_LOAD_ERROR",
    "MAX_SLOTS",
    "WORKER_BOOT_ERROR",
    "Action",
    "AppLoadFailed",
    "ChildExited",
    "Event",
    "Exit",
    "Notify",
    "Phase",
    "PoolState",
    "ReopenLogs",
    "RequestTooLong",
    "Signal",
    "Signalled",
    "SlotDraining",
    "SlotReady",
    "SlotRetiring",
    "Spawn",
    "Spawned",
    "SpawnFailed",
    "Tick",
    "WorkerInfo",
    "WorkerState",
    "next_deadline",
    "on_event",
    "pool_state",
]

log = logging.getLogger("starman.pool")

# Repeated boot failures back off from 0.1 s, doubling, up to 5 s.
BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0
# After SIGABRT for --timeout, SIGKILL follows this much later.
ABORT_GRACE = 1.0
# INT: workers exit at once; the master waits at most this long before SIGKILL.
IMMEDIATE_GRACE = 5.0
# Sent to a worker that leaves while the pool serves on (SIGTTOU, the end of a SIGHUP
# reload): it hands its connections over to the live workers (starman.worker.handover)
# instead of closing them as SIGTERM does. A booting one gets SIGTERM (it serves nobody
# yet, and only the loop of a booted worker handles this signal).
RETIRE = signal.SIGUSR2
# What the pool sends to stop a worker (a booting one dies of it).
_STOP_SIGNALS = (int(signal.SIGTERM), int(signal.SIGINT), int(signal.SIGQUIT))


# --------------------------------------------------------------------------- policy


def on_event(state: PoolState, event: Event, now: float) -> list[Action]:
    """Update ``state`` for ``event`` and return what the master must do, in order."""
    if state.phase is Phase.DONE:
        return []
    actions: list[Action] = []
    if isinstance(event, Tick):
        _on_tick(state, now, actions)
    elif isinstance(event, Spawned):
        w = state.workers.get(event.slot)
        if w is not None:
            w.pid = event.pid
            log.debug("spawned worker %d (generation %d)", event.pid, w.generation)
            if state.phase is Phase.STOPPING:
                _stop_worker(
                    state, w, signal.SIGTERM, state.graceful_timeout, now, actions
                )
    elif isinstance(event, SpawnFailed):
        state.workers.pop(event.slot, None)
        log.error("cannot fork a worker: %s", event.reason)
        _note_boot_failure(state, now)
    elif isinstance(event, ChildExited):
        _on_exit(state, event, now, actions)
    elif isinstance(event, Signalled):
        _on_signal(state, event.sig, now, actions, event.busy)
    elif isinstance(event, SlotReady):
        _on_ready(state, event.slot, now, actions)
    elif isinstance(event, SlotRetiring):
        w = state.workers.get(event.slot)
        if w is not None and w.pid is not None and w.state is WorkerState.READY:
            log.debug("worker %d retires soon: starting its replacement", w.pid)
            w.state = WorkerState.RETIRING
    elif isinstance(event, SlotDraining):
        w = state.workers.get(event.slot)
        if (
            w is not None
            and w.pid is not None
            and (w.state is WorkerState.READY or w.state is WorkerState.RETIRING)
        ):
            log.debug("worker %d is draining: starting its replacement", w.pid)
            w.state = WorkerState.DRAINING
            # It exits by itself within graceful_timeout; SIGKILL only if it does not.
            w.kill_at = now + state.graceful_timeout + ABORT_GRACE
    elif isinstance(event, RequestTooLong):
        w = state.workers.get(event.slot)
        if w is not None and w.pid is not None and not w.aborted:
            log.error(
                "worker %d stayed in the app longer than --timeout: sending SIGABRT",
                w.pid,
            )
            w.aborted = True
            w.kill_at = now + ABORT_GRACE
            actions.append(Signal(w.pid, signal.SIGABRT))
    _fill(state, now, actions)
    _maybe_exit(state, actions)
    return actions


def next_deadline(state: PoolState) -> float | None:
    """The monotonic time of the next Tick the policy needs (None: only events matter)."""
    times = [w.kill_at for w in state.workers.values() if w.kill_at is not None]
    if state.stop_deadline is not None:
        times.append(state.stop_deadline)
    if state.reload_deadline is not None:
        times.append(state.reload_deadline)
    if state.phase in (Phase.RUNNING, Phase.RELOADING) and _missing(state) > 0:
        times.append(state.spawn_not_before)
    return min(times) if times else None


def _missing(state: PoolState) -> int:
    return state.target - len(state.serving(state.generation))


def _free_slot(state: PoolState) -> int | None:
    for slot in range(state.max_slots):
        if slot not in state.workers:
            return slot
    return None


def _fill(state: PoolState, now: float, actions: list[Action]) -> None:
    """Spawn workers of the serving generation up to ``target`` (respecting back-off)."""
    if state.phase not in (Phase.RUNNING, Phase.RELOADING):
        return
    if now < state.spawn_not_before:
        return
    for _ in range(_missing(state)):
        slot = _free_slot(state)
        if slot is None:
            log.error(
                "no free scoreboard slot: cannot grow beyond %d workers",
                state.max_slots,
            )
            return
        state.workers[slot] = WorkerInfo(slot=slot, generation=state.generation)
        actions.append(Spawn(slot, state.generation))
        if state.spawn_interval > 0 and state.phase is Phase.RELOADING:
            state.spawn_not_before = now + state.spawn_interval
            return


def _stop_worker(
    state: PoolState,
    w: WorkerInfo,
    sig: signal.Signals,
    grace: float,
    now: float,
    actions: list[Action],
) -> None:
    """Tell one worker to stop; SIGKILL it at now + grace if it has not exited.

    ``RETIRE`` retires it while the pool serves on (its connections move to the live
    workers); a stop after that sends SIGTERM, so that they close instead."""
    if sig is RETIRE and w.state is WorkerState.BOOTING:
        sig = signal.SIGTERM
    if w.state is WorkerState.DRAINING and sig is not signal.SIGKILL:
        if w.kill_at is None or now + grace < w.kill_at:
            w.kill_at = now + grace
        if sig is RETIRE:
            return
        if (sig is not signal.SIGTERM or w.retired) and w.pid is not None:
            actions.append(Signal(w.pid, sig))
        w.retired = False
        return
    w.retired = sig is RETIRE
    w.state = WorkerState.DRAINING
    w.kill_at = now + grace
    if w.pid is not None:
        actions.append(Signal(w.pid, sig))


def _begin_stop(
    state: PoolState,
    sig: signal.Signals,
    grace: float,
    now: float,
    actions: list[Action],
) -> None:
    state.phase = Phase.STOPPING
    state.reload_deadline = None
    state.stop_deadline = now + grace
    actions.append(Notify("STOPPING=1"))
    for w in list(state.workers.values()):
        if w.pid is None:
            continue
        _stop_worker(state, w, sig, grace, now, actions)


def _on_signal(
    state: PoolState,
    sig: signal.Signals,
    now: float,
    actions: list[Action],
    busy: frozenset[int] = frozenset(),
) -> None:
    if sig in (signal.SIGTERM, signal.SIGQUIT):
        if sig is signal.SIGTERM and state.term_immediate:
            sig = signal.SIGINT
        else:
            if state.phase is Phase.STOPPING:
                return
            log.info(
                "received %s: stopping gracefully (at most %gs)",
                sig.name,
                state.graceful_timeout,
            )
            _begin_stop(state, signal.SIGTERM, state.graceful_timeout, now, actions)
            return
    if sig is signal.SIGINT:
        log.info("received SIGINT: stopping now")
        _begin_stop(state, signal.SIGINT, IMMEDIATE_GRACE, now, actions)
        return
    if sig is signal.SIGHUP:
        _begin_reload(state, now, actions)
    elif sig is signal.SIGTTIN:
        if state.phase is Phase.STOPPING:
            return
        state.target += 1
        log.info("received SIGTTIN: workers %d -> %d", state.target - 1, state.target)
    elif sig is signal.SIGTTOU:
        if state.phase is Phase.STOPPING:
            return
        if state.target <= 1:
            log.info("received SIGTTOU: already at 1 worker, not going lower")
            return
        state.target -= 1
        log.info("received SIGTTOU: workers %d -> %d", state.target + 1, state.target)
        serving = state.serving(state.generation)
        if len(serving) > state.target:
            # The least loaded: one still booting (it serves nobody), then one not
            # inside the app right now, then the newest slot.
            victim = max(
                serving,
                key=lambda w: (
                    w.state is WorkerState.BOOTING,
                    w.slot not in busy,
                    w.slot,
                ),
            )
            _stop_worker(state, victim, RETIRE, state.graceful_timeout, now, actions)
    elif sig is signal.SIGUSR1:
        actions.append(ReopenLogs())
        for w in state.workers.values():
            if w.pid is not None:
                actions.append(Signal(w.pid, signal.SIGUSR1))
    elif sig in (signal.SIGUSR2, signal.SIGWINCH):
        log.info("received %s: ignored (hot deploys belong to start_server)", sig.name)


def _begin_reload(state: PoolState, now: float, actions: list[Action]) -> None:
    if state.phase is Phase.STOPPING:
        return
    if state.phase is Phase.RELOADING:
        log.info("received SIGHUP: a reload is already in progress")
        return
    state.last_generation += 1
    state.old_generation = state.generation
    state.generation = state.last_generation
    state.phase = Phase.RELOADING
    state.reload_deadline = now + state.graceful_timeout
    state.spawn_not_before = 0.0
    state.boot_failures = 0
    actions.append(Notify("RELOADING=1"))
    if state.preloaded:
        log.info(
            "received SIGHUP: replacing workers (generation %d); the app is preloaded, so code is NOT reloaded",
            state.generation,
        )
    else:
        log.info("received SIGHUP: replacing workers (generation %d)", state.generation)


def _abort_reload(
    state: PoolState, why: str, now: float, actions: list[Action]
) -> None:
    """The new generation failed: kill it and keep the old one serving."""
    failed = state.generation
    assert state.old_generation is not None
    log.error(
        "reload failed (%s): keeping the workers of generation %d",
        why,
        state.old_generation,
    )
    state.generation = state.old_generation
    state.old_generation = None
    state.phase = Phase.RUNNING
    state.reload_deadline = None
    for w in list(state.workers.values()):
        if w.generation == failed:
            booting = w.state is WorkerState.BOOTING
            _stop_worker(
                state,
                w,
                signal.SIGKILL if booting else signal.SIGTERM,
                state.graceful_timeout,
                now,
                actions,
            )
    actions.append(Notify("READY=1"))


def _finish_reload(state: PoolState, now: float, actions: list[Action]) -> None:
    old = state.old_generation
    log.info("generation %d ready: retiring generation %s", state.generation, old)
    state.old_generation = None
    state.phase = Phase.RUNNING
    state.reload_deadline = None
    for w in list(state.workers.values()):
        if w.generation != state.generation and w.state is not WorkerState.DRAINING:
            _stop_worker(state, w, RETIRE, state.graceful_timeout, now, actions)
    actions.append(Notify("READY=1"))


def _on_ready(state: PoolState, slot: int, now: float, actions: list[Action]) -> None:
    w = state.workers.get(slot)
    if w is None or w.state is not WorkerState.BOOTING:
        return
    w.state = WorkerState.READY
    state.ever_ready = True
    state.boot_failures = 0
    # Ready when `target` workers of the generation accept. A retiring one still accepts
    # (it leaves by itself at --max-requests): under heavy load, or with a slow-booting
    # app, a worker may give that notice before its last sibling has booted, and a
    # generation that waited for a moment with no replacement booting might never be
    # ready.
    if len(state.in_states(state.generation, ACCEPTING)) < state.target:
        return
    if state.phase is Phase.RELOADING and w.generation == state.generation:
        # Deadlines are recomputed from here: the old generation gets a full grace period.
        _finish_reload(state, now, actions)
    elif state.phase is Phase.RUNNING and not state.announced_ready:
        state.announced_ready = True
        log.info("all %d workers ready", state.target)
        actions.append(Notify(f"READY=1\nMAINPID={state.master_pid}"))


def _note_boot_failure(state: PoolState, now: float) -> None:
    state.boot_failures += 1
    delay = min(BACKOFF_MAX, BACKOFF_MIN * (2 ** (state.boot_failures - 1)))
    state.spawn_not_before = now + delay
    log.warning(
        "worker failed to boot %d time(s) in a row: next spawn in %.1fs",
        state.boot_failures,
        delay,
    )


def _describe_exit(ev: ChildExited) -> str:
    if ev.signal is not None:
        try:
            name = signal.Signals(ev.signal).name
        except ValueError:
            name = f"signal {ev.signal}"
        return f"killed by {name}"
    return f"exited with code {ev.code}"


def _on_exit(
    state: PoolState, ev: ChildExited, now: float, actions: list[Action]
) -> None:
    w = state.by_pid(ev.pid)
    if w is None:
        log.debug("reaped unknown child %d (%s)", ev.pid, _describe_exit(ev))
        return
    del state.workers[w.slot]
    what = _describe_exit(ev)
    if w.state is WorkerState.DRAINING:
        # A clean exit after a drain is routine (max-requests, reload, TTOU): DEBUG, as
        # Perl's Net::Server logs child starts and exits only at log levels 3 and 4. So
        # is a booting worker ended by the stop signal sent to it, or one that failed to
        # load the app after an earlier failure stopped the pool (already reported).
        routine = ev.code in (0, APP_LOAD_ERROR) or ev.signal in _STOP_SIGNALS
        log.log(
            logging.DEBUG if routine else logging.INFO,
            "worker %d %s (retired)",
            ev.pid,
            what,
        )
        return
    if w.state is WorkerState.READY or w.state is WorkerState.RETIRING:
        if ev.code == 0:
            log.debug("worker %d %s (recycled)", ev.pid, what)
        else:
            log.warning("worker %d %s", ev.pid, what)
        return
    # It died while booting.
    reloading = state.phase is Phase.RELOADING and w.generation == state.generation
    if ev.code == APP_LOAD_ERROR and not reloading and not state.ever_ready:
        # Every worker of a first generation loads the same app: the first failure
        # stops the pool, and its report is the master's one error line.
        log.debug("worker %d %s while booting: stopping", ev.pid, what)
        actions.append(AppLoadFailed(ev.pid, fatal=True))
        state.exit_code = APP_LOAD_ERROR
        _begin_stop(state, signal.SIGTERM, state.graceful_timeout, now, actions)
        return
    log.warning("worker %d %s while booting", ev.pid, what)
    if ev.code == APP_LOAD_ERROR:
        actions.append(AppLoadFailed(ev.pid, fatal=False))
        if reloading:
            _abort_reload(state, "the new workers could not load the app", now, actions)
            return
    _note_boot_failure(state, now)


def _on_tick(state: PoolState, now: float, actions: list[Action]) -> None:
    for w in list(state.workers.values()):
        if w.kill_at is not None and now >= w.kill_at and w.pid is not None:
            log.warning("worker %d did not exit in time: sending SIGKILL", w.pid)
            w.kill_at = None
            w.state = WorkerState.DRAINING
            actions.append(Signal(w.pid, signal.SIGKILL))
    if (
        state.phase is Phase.RELOADING
        and state.reload_deadline is not None
        and now >= state.reload_deadline
    ):
        _abort_reload(
            state,
            "the new workers were not ready within --graceful-timeout",
            now,
            actions,
        )
    if (
        state.phase is Phase.STOPPING
        and state.stop_deadline is not None
        and now >= state.stop_deadline
    ):
        state.stop_deadline = None


def _maybe_exit(state: PoolState, actions: list[Action]) -> None:
    if state.phase is Phase.STOPPING and not any(
        w.pid is not None for w in state.workers.values()
    ):
        state.workers.clear()
        state.phase = Phase.DONE
        actions.append(Exit(state.exit_code))

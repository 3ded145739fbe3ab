"""The pool policy's vocabulary: the events the master feeds it, the actions it returns,
and the state it keeps (``PoolState``, one ``WorkerInfo`` per scoreboard slot).

Plain records: no syscalls, no logging, no decisions (those are ``starman.master.pool``'s).
"""

from __future__ import annotations

import enum
import signal
from typing import TYPE_CHECKING, Union

from start_server.common.record import Record

if TYPE_CHECKING:
    from starman.config import Settings

__all__ = [
    "ACCEPTING",
    "APP_LOAD_ERROR",
    "COUNTED",
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
    "pool_state",
]

WORKER_BOOT_ERROR = 3  # the worker failed before it could serve (gunicorn's code)
APP_LOAD_ERROR = 4  # the worker could not import the app (gunicorn's code)
# Scoreboard slots the master allocates: the pool never grows beyond them.
MAX_SLOTS = 1024


# --------------------------------------------------------------------------- events


class Tick(Record):
    """Time passed (a deadline may have expired); also the first event, which fills the pool."""

    __slots__ = ()


class Spawned(Record):
    """The master forked the worker asked for by ``Spawn(slot, ...)``."""

    __slots__ = ("slot", "pid")

    def __init__(self, slot: int, pid: int) -> None:
        self.slot = slot
        self.pid = pid


class SpawnFailed(Record):
    """fork() failed for ``Spawn(slot, ...)``."""

    __slots__ = ("slot", "reason")

    def __init__(self, slot: int, reason: str) -> None:
        self.slot = slot
        self.reason = reason


class ChildExited(Record):
    """A child was reaped: exactly one of ``code`` and ``signal`` is set."""

    __slots__ = ("pid", "code", "signal")

    def __init__(
        self, pid: int, code: int | None = None, signal: int | None = None
    ) -> None:
        self.pid = pid
        self.code = code
        self.signal = signal


class Signalled(Record):
    """The master received a signal. For TTOU, ``busy`` names the slots whose worker is
    inside the app right now (from the scoreboard): the least-loaded worker retires."""

    __slots__ = ("sig", "busy")

    def __init__(self, sig: signal.Signals, busy: frozenset[int] = frozenset()) -> None:
        self.sig = sig
        self.busy = busy


class SlotReady(Record):
    """The worker in ``slot`` reported ``ready`` in the scoreboard."""

    __slots__ = ("slot",)

    def __init__(self, slot: int) -> None:
        self.slot = slot


class SlotDraining(Record):
    """The worker in ``slot`` started draining on its own (max-requests, harakiri, a signal
    not sent by the master): it no longer counts, so its replacement is spawned now."""

    __slots__ = ("slot",)

    def __init__(self, slot: int) -> None:
        self.slot = slot


class SlotRetiring(Record):
    """The worker in ``slot`` will leave by itself soon (near --max-requests): it no
    longer counts, so its replacement boots now and is accepting by the time the old
    one closes its connections."""

    __slots__ = ("slot",)

    def __init__(self, slot: int) -> None:
        self.slot = slot


class RequestTooLong(Record):
    """The worker in ``slot`` has been inside the app for longer than --timeout."""

    __slots__ = ("slot",)

    def __init__(self, slot: int) -> None:
        self.slot = slot


Event = Union[
    Tick,
    Spawned,
    SpawnFailed,
    ChildExited,
    Signalled,
    SlotReady,
    SlotDraining,
    SlotRetiring,
    RequestTooLong,
]


# --------------------------------------------------------------------------- actions


class Spawn(Record):
    """Fork a worker into scoreboard ``slot`` for ``generation``; answer with Spawned/SpawnFailed."""

    __slots__ = ("slot", "generation")

    def __init__(self, slot: int, generation: int) -> None:
        self.slot = slot
        self.generation = generation


class Signal(Record):
    """Send ``sig`` to worker ``pid``."""

    __slots__ = ("pid", "sig")

    def __init__(self, pid: int, sig: signal.Signals) -> None:
        self.pid = pid
        self.sig = sig


class ReopenLogs(Record):
    """Reopen the master's error and access logs (USR1)."""

    __slots__ = ()


class Notify(Record):
    """Send an sd_notify message (``READY=1``, ``RELOADING=1``, ``STOPPING=1``)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class AppLoadFailed(Record):
    """Worker ``pid`` could not load the app, and it is news: show the report of one
    worker (not one per worker). ``fatal``: the master stops because of it, and the
    report is its exit message."""

    __slots__ = ("pid", "fatal")

    def __init__(self, pid: int, fatal: bool) -> None:
        self.pid = pid
        self.fatal = fatal


class Exit(Record):
    """Every worker is gone: the master exits with ``code``."""

    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        self.code = code


Action = Union[Spawn, Signal, ReopenLogs, Notify, AppLoadFailed, Exit]


# --------------------------------------------------------------------------- state


class WorkerState(enum.Enum):
    BOOTING = "booting"  # forked, loading the app
    READY = "ready"  # accepting
    RETIRING = "retiring"  # still accepting, leaves by itself soon; no longer counted
    DRAINING = "draining"  # told to stop; no longer counted in the pool


class Phase(enum.Enum):
    RUNNING = "running"
    RELOADING = "reloading"  # HUP: a new generation boots next to the serving one
    STOPPING = "stopping"  # TERM/QUIT/INT or a halt: waiting for workers to exit
    DONE = "done"  # Exit was returned


class WorkerInfo(Record):
    """One worker slot: set up by Spawn, filled in as events arrive."""

    __slots__ = ("slot", "generation", "pid", "state", "kill_at", "aborted", "retired")

    def __init__(self, slot: int, generation: int) -> None:
        self.slot = slot
        self.generation = generation
        self.pid: int | None = None  # once Spawned
        self.state = WorkerState.BOOTING
        self.kill_at: float | None = None  # SIGKILL deadline, once told to stop
        self.aborted = False  # SIGABRT sent for --timeout
        self.retired = False  # told to stop with pool.RETIRE (its connections move)


class PoolState(Record):
    """Everything the policy knows. Build it with ``pool_state``, then feed ``Tick()``."""

    __slots__ = (
        "target",
        "graceful_timeout",
        "term_immediate",
        "preloaded",
        "spawn_interval",
        "max_slots",
        "master_pid",
        "generation",
        "last_generation",
        "old_generation",
        "phase",
        "workers",
        "exit_code",
        "stop_deadline",
        "reload_deadline",
        "boot_failures",
        "spawn_not_before",
        "ever_ready",
        "announced_ready",
    )

    def __init__(
        self,
        *,
        target: int,
        graceful_timeout: float,
        term_immediate: bool,
        preloaded: bool,
        spawn_interval: float,
        max_slots: int,
        master_pid: int,
    ) -> None:
        self.target = target
        self.graceful_timeout = graceful_timeout
        self.term_immediate = term_immediate
        self.preloaded = preloaded
        self.spawn_interval = spawn_interval
        self.max_slots = max_slots
        self.master_pid = master_pid
        # What the policy keeps up to date from here on.
        self.generation = 1  # the generation that serves (or will, once booted)
        self.last_generation = 1  # highest generation ever started
        self.old_generation: int | None = None  # during a reload: the one still serving
        self.phase = Phase.RUNNING
        self.workers: dict[int, WorkerInfo] = {}  # by slot
        self.exit_code = 0
        self.stop_deadline: float | None = None
        self.reload_deadline: float | None = None
        self.boot_failures = 0
        self.spawn_not_before = 0.0
        self.ever_ready = False
        self.announced_ready = False

    def by_pid(self, pid: int) -> WorkerInfo | None:
        for w in self.workers.values():
            if w.pid == pid:
                return w
        return None

    def serving(self, generation: int) -> list[WorkerInfo]:
        """Workers of ``generation`` that count towards the pool (not leaving)."""
        return self.in_states(generation, COUNTED)

    def in_states(
        self, generation: int, states: frozenset[WorkerState]
    ) -> list[WorkerInfo]:
        """Workers of ``generation`` in one of ``states``."""
        return [
            w
            for w in self.workers.values()
            if w.generation == generation and w.state in states
        ]


def pool_state(settings: Settings, *, master_pid: int) -> PoolState:
    """The policy's starting state for ``settings``: the one place that reads the options."""
    s = settings
    return PoolState(
        target=s.workers,
        graceful_timeout=s.graceful_timeout,
        term_immediate=s.term_immediate,
        preloaded=s.preload_app,
        spawn_interval=s.spawn_interval,
        max_slots=MAX_SLOTS,
        master_pid=master_pid,
    )


COUNTED = frozenset((WorkerState.BOOTING, WorkerState.READY))
ACCEPTING = frozenset((WorkerState.READY, WorkerState.RETIRING))

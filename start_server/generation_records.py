"""The values of the supervision policy: its knobs and state, the events it is fed, the
actions it returns (pure records; ``start_server.generations`` holds the rules).
"""

from __future__ import annotations

import signal

from start_server.common.proc import ExitStatus
from start_server.common.record import Record

# typing stays out of the long-lived supervisor; the annotations need it only for mypy
# (``from __future__ import annotations`` keeps them unevaluated).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Union

# Action and Event, the unions of the classes below, exist for mypy only.
__all__ = [
    "AUTO_RESTART_KILL_OLD_DELAY",
    "Announced",
    "DEFAULT_AUTO_RESTART_INTERVAL",
    "DEFAULT_INTERVAL",
    "DEFAULT_READY_TIMEOUT",
    "DEFAULT_SIGNAL",
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
]

# Server::Starter's defaults: the option table (start_server.config) shows them and the
# policy falls back on them.
DEFAULT_INTERVAL = 1.0

# --signal-on-hup and --signal-on-term.
DEFAULT_SIGNAL = signal.SIGTERM

# Perl: $ENV{AUTO_RESTART_INTERVAL} ||= 360 (so 0 also means 360).
DEFAULT_AUTO_RESTART_INTERVAL = 360.0

# Perl's default --kill-old-delay when auto-restart is on (and KILL_OLD_DELAY is unset).
AUTO_RESTART_KILL_OLD_DELAY = 5.0

# --wait-ready's deadline: room for a slow app import, and with starman's drain
# (--graceful-timeout) still inside --restart's default --wait-timeout.
DEFAULT_READY_TIMEOUT = 30.0


# --------------------------------------------------------------------------- values


class Params(Record):
    """The knobs of the policy. The supervisor may replace them (envdir reload)."""

    __slots__ = (
        "interval",
        "kill_old_delay",
        "signal_on_hup",
        "signal_on_term",
        "auto_restart",
        "auto_restart_interval",
        "wait_ready",
        "ready_timeout",
        "notify_upstream",
    )

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        # None: AUTO_RESTART_KILL_OLD_DELAY with auto-restart, else 0 (Perl)
        kill_old_delay: float | None = None,
        signal_on_hup: signal.Signals = DEFAULT_SIGNAL,
        signal_on_term: signal.Signals = DEFAULT_SIGNAL,
        auto_restart: bool = False,
        auto_restart_interval: float = DEFAULT_AUTO_RESTART_INTERVAL,
        wait_ready: bool = False,  # --wait-ready: READY=1 decides, not --interval
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        notify_upstream: bool = False,  # start_server runs under systemd (NOTIFY_SOCKET)
    ) -> None:
        self.interval = interval
        self.kill_old_delay = kill_old_delay
        self.signal_on_hup = signal_on_hup
        self.signal_on_term = signal_on_term
        self.auto_restart = auto_restart
        self.auto_restart_interval = auto_restart_interval
        self.wait_ready = wait_ready
        self.ready_timeout = ready_timeout
        self.notify_upstream = notify_upstream

    @property
    def effective_kill_old_delay(self) -> float:
        """Perl: KILL_OLD_DELAY if defined, else AUTO_RESTART_KILL_OLD_DELAY with
        auto-restart, else 0."""
        if self.kill_old_delay is not None:
            return self.kill_old_delay
        return AUTO_RESTART_KILL_OLD_DELAY if self.auto_restart else 0.0


class Child(Record):
    """One spawned generation. ``announced``: it spoke sd_notify while starting, so its
    READY=1 decides when it counts as started (as with --wait-ready)."""

    __slots__ = ("pid", "generation", "spawned_at", "exited", "announced")

    def __init__(
        self,
        pid: int,
        generation: int,
        spawned_at: float,
        exited: ExitStatus | None = None,
        announced: bool = False,
    ) -> None:
        self.pid = pid
        self.generation = generation
        self.spawned_at = spawned_at
        self.exited = exited
        self.announced = announced


class State(Record):
    """Everything the policy knows. Mutated only by ``on_event``."""

    __slots__ = (
        "params",
        "generation",
        "current",
        "starting",
        "start_deadline",
        "restarting",
        "spawning",
        "spawn_at",
        "last_spawn_at",
        "old",
        "kill_at",
        "pending_hups",
        "last_restart",
        "previous",
        "failed",
        "stopping",
        "exited",
    )

    def __init__(self, params: Params | None = None) -> None:
        self.params = Params() if params is None else params
        self.generation = 0
        self.current: Child | None = None
        self.starting: Child | None = None  # spawned, waiting out --interval
        self.start_deadline: float | None = None
        # The start in progress replaces a generation (HUP/auto).
        self.restarting = False
        # Generation of a Spawn awaiting Spawned/SpawnFailed.
        self.spawning: int | None = None
        # An automatic respawn waiting for RESPAWN_FLOOR.
        self.spawn_at: float | None = None
        self.last_spawn_at: float | None = None
        self.old: dict[int, int] = {}  # pid -> generation
        self.kill_at: float | None = None  # kill-old-delay running
        self.pending_hups = 0
        # When the current generation became current.
        self.last_restart: float | None = None
        # --wait-ready: what a rollback makes current again.
        self.previous: Child | None = None
        self.failed: dict[int, tuple[int, float]] = {}  # pid -> (gen, kill at)
        self.stopping = False
        self.exited = False


# --------------------------------------------------------------------------- events


class Start(Record):
    """start_server is set up: spawn the first generation."""

    __slots__ = ()


class Spawned(Record):
    """The Spawn action produced a running child."""

    __slots__ = ("pid",)

    def __init__(self, pid: int) -> None:
        self.pid = pid


class SpawnFailed(Record):
    """The Spawn action's child could not chdir/exec (it is already reaped)."""

    __slots__ = ("status", "message")

    def __init__(self, status: ExitStatus, message: str) -> None:
        self.status = status
        self.message = message


class ChildExited(Record):
    """A child was reaped."""

    __slots__ = ("status",)

    def __init__(self, status: ExitStatus) -> None:
        self.status = status


class Signalled(Record):
    """start_server received a signal."""

    __slots__ = ("signal",)

    def __init__(self, signal: signal.Signals) -> None:
        self.signal = signal


class Tick(Record):
    """Time passed (a deadline may be due)."""

    __slots__ = ()


class ReadyReceived(Record):
    """Generation ``generation`` sent READY=1 to its notify socket."""

    __slots__ = ("generation",)

    def __init__(self, generation: int) -> None:
        self.generation = generation


class Announced(Record):
    """Generation ``generation`` sent its notify socket a message other than READY=1
    (our starman's ``STATUS=starting`` at start): it will report READY=1."""

    __slots__ = ("generation",)

    def __init__(self, generation: int) -> None:
        self.generation = generation


if TYPE_CHECKING:
    Event = Union[
        Start,
        Spawned,
        SpawnFailed,
        ChildExited,
        Signalled,
        Tick,
        ReadyReceived,
        Announced,
    ]


# --------------------------------------------------------------------------- actions


class Spawn(Record):
    """Fork and exec the command as this generation, then report Spawned/SpawnFailed."""

    __slots__ = ("generation",)

    def __init__(self, generation: int) -> None:
        self.generation = generation


class Signal(Record):
    """Send ``signal`` to each pid."""

    __slots__ = ("signal", "pids")

    def __init__(self, signal: signal.Signals, pids: tuple[int, ...]) -> None:
        self.signal = signal
        self.pids = pids


class WriteStatus(Record):
    """Replace the status file with these ``(generation, pid)`` lines, in this order."""

    __slots__ = ("entries",)

    def __init__(self, entries: tuple[tuple[int, int], ...]) -> None:
        self.entries = entries

    def render(self) -> str:
        """The file's text: ``GEN:PID`` lines."""
        return "".join(f"{gen}:{pid}\n" for gen, pid in self.entries)


class Log(Record):
    """One line for stderr (``warning`` for unexpected deaths and failed starts)."""

    __slots__ = ("text", "warning")

    def __init__(self, text: str, warning: bool = False) -> None:
        self.text = text
        self.warning = warning


class Exit(Record):
    """Every child is gone after a stop, or the first spawn could not exec."""

    __slots__ = ("code", "error")

    def __init__(self, code: int, error: str | None = None) -> None:
        self.code = code
        self.error = error


class RecordFailure(Record):
    """A new generation was rolled back: record why, for ``start_server --restart``."""

    __slots__ = ("generation", "pid", "reason")

    def __init__(self, generation: int, pid: int, reason: str) -> None:
        self.generation = generation
        self.pid = pid
        self.reason = reason

    def render(self) -> str:
        """The sidecar file's text: ``GEN:PID REASON``."""
        return f"{self.generation}:{self.pid} {self.reason}\n"


class NotifyUp(Record):
    """An sd_notify message for start_server's own supervisor (``READY=1``, ...)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


if TYPE_CHECKING:
    Action = Union[Spawn, Signal, WriteStatus, Log, Exit, RecordFailure, NotifyUp]

"""Carries out the policy's actions: spawn a generation (its environment, the envdir, its
notify socket), send signals, write the status and failure files, notify systemd.

The loop (start_server.supervisor) decides nothing here either: it feeds the policy and
hands each action to ``Executor.perform``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping, Sequence

from start_server import generation_records as rec
from start_server.common.portspec import (
    ENV_GENERATION,
    ENV_LISTEN_FDNAMES,
    ENV_LISTEN_FDS,
    ENV_LISTEN_PID,
    ENV_NOTIFY_SOCKET,
    ENV_PORT,
)
from start_server.common.proc import ExecError, atomic_write, spawn
from start_server.common.sdnotify import notify
from start_server.common.sigwake import SignalWaker
from start_server.config import (
    ENV_AUTO_RESTART_INTERVAL,
    ENV_ENABLE_AUTO_RESTART,
    ENV_ENVDIR,
    ENV_KILL_OLD_DELAY,
    Settings,
)
from start_server.logline import log
from start_server.readiness import NotifyListener, failure_file

__all__ = ["Executor", "load_envdir", "params_from_env"]


def load_envdir(path: str) -> dict[str, str]:
    """Read a daemontools envdir: one file per variable, its first line the value.

    Dotfiles are skipped, as are files that cannot be read or are empty (Perl's
    ``_load_env``). Raises OSError when the directory itself cannot be listed.
    """
    values: dict[str, str] = {}
    for name in sorted(os.listdir(path)):
        if name.startswith("."):
            continue
        try:
            with open(os.path.join(path, name), "rb") as f:
                line = f.readline()
        except OSError:
            continue
        if not line:
            continue
        values[name] = line.rstrip(b"\n").decode(errors="surrogateescape")
    return values


def _perl_true(text: str | None) -> bool:
    return text not in (None, "", "0")


def _float_or(text: str | None, default: float | None) -> float | None:
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        return default


def params_from_env(
    settings: Settings, env: Mapping[str, str], notify_upstream: bool = False
) -> rec.Params:
    """The policy's knobs: the options, overridden by the env (Perl reads %ENV, envdir
    included, at each restart)."""
    if ENV_ENABLE_AUTO_RESTART in env:
        auto = _perl_true(env[ENV_ENABLE_AUTO_RESTART])
    else:
        auto = settings.enable_auto_restart
    ari = _float_or(env.get(ENV_AUTO_RESTART_INTERVAL), settings.auto_restart_interval)
    return rec.Params(
        interval=settings.interval,
        kill_old_delay=_float_or(env.get(ENV_KILL_OLD_DELAY), settings.kill_old_delay),
        signal_on_hup=settings.signal_on_hup,
        signal_on_term=settings.signal_on_term,
        auto_restart=auto,
        auto_restart_interval=ari or rec.DEFAULT_AUTO_RESTART_INTERVAL,
        wait_ready=settings.wait_ready,
        ready_timeout=settings.ready_timeout,
        notify_upstream=notify_upstream,
    )


class Executor:
    """Performs one action at a time; a Spawn returns the event reporting its outcome.

    It replaces ``state.params`` before each spawn (the envdir is re-read then, as Perl
    does), and remembers which generation each spawned pid is.
    """

    def __init__(
        self,
        settings: Settings,
        command: Sequence[str],
        base_env: Mapping[str, str],
        port_value: str,
        waker: SignalWaker,
        state: rec.State,
        listener: NotifyListener,
        upstream: str | None = None,
    ) -> None:
        self.settings = settings
        self.command = list(command)
        self.base_env = dict(base_env)
        self.port_value = port_value
        self.waker = waker
        self.state = state
        self.listener = listener
        self.envdir_values: dict[str, str] = {}
        self.status_written = False
        # NOTIFY_SOCKET of our own supervisor (systemd), never passed to the children.
        self.upstream = {ENV_NOTIFY_SOCKET: upstream} if upstream else None
        self.pid_generation: dict[int, int] = {}

    def reload_envdir(self) -> None:
        """Re-read the envdir (a failure keeps the previous values, with a warning)."""
        path = self.base_env.get(ENV_ENVDIR)
        if path:
            try:
                self.envdir_values = load_envdir(path)
            except OSError as exc:
                log.warning(
                    "failed to read envdir %s: %s (keeping previous values)", path, exc
                )
        env = {**self.base_env, **self.envdir_values}
        self.state.params = params_from_env(
            self.settings, env, notify_upstream=self.upstream is not None
        )

    def child_env(self, generation: int) -> dict[str, str]:
        env = {**self.base_env, **self.envdir_values}
        env[ENV_PORT] = self.port_value
        env[ENV_GENERATION] = str(generation)
        for name in (
            ENV_NOTIFY_SOCKET,
            ENV_LISTEN_FDS,
            ENV_LISTEN_PID,
            ENV_LISTEN_FDNAMES,
        ):
            env.pop(name, None)
        return env

    def perform(self, action: rec.Action) -> rec.Event | None:
        """Do one action (Exit is the loop's); a Spawn returns Spawned or SpawnFailed."""
        if isinstance(action, rec.Spawn):
            return self.spawn_generation(action.generation)
        if isinstance(action, rec.Signal):
            self.send(action.signal, action.pids)
        elif isinstance(action, rec.WriteStatus):
            self.write_status(action.render())
        elif isinstance(action, rec.Log):
            (log.warning if action.warning else log.info)("%s", action.text)
        elif isinstance(action, rec.RecordFailure):
            self.record_failure(action)
        elif isinstance(action, rec.NotifyUp):
            self.notify_up(action.message)
        return None

    def spawn_generation(self, generation: int) -> rec.Event:
        """Fork and exec the command as ``generation``, with its notify socket."""
        self.reload_envdir()
        env = self.child_env(generation)
        try:
            env[ENV_NOTIFY_SOCKET] = self.listener.open(generation)
        except OSError as exc:
            log.error("cannot create a notify socket: %s", exc)
        try:
            pid = spawn(
                self.command,
                env=env,
                cwd=self.settings.dir,
                in_child=self.waker.reset_in_child,
            )
        except ExecError as exc:
            self.listener.close(generation)
            return rec.SpawnFailed(exc.status, str(exc))
        self.pid_generation[pid] = generation
        self.listener.bind_pid(generation, pid)
        return rec.Spawned(pid)

    def reaped(self, pid: int) -> int | None:
        """The generation of a reaped child we spawned (forgotten now), else None."""
        return self.pid_generation.pop(pid, None)

    @staticmethod
    def send(sig: signal.Signals, pids: Sequence[int]) -> None:
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def write_status(self, text: str) -> None:
        path = self.settings.status_file
        if not path:
            return
        try:
            atomic_write(path, text)
            self.status_written = True
        except OSError as exc:
            log.error("failed to write status file %s: %s", path, exc)

    def record_failure(self, action: rec.RecordFailure) -> None:
        """Write STATUS_FILE.failed (``GEN:PID REASON``), which --restart reads."""
        if not self.settings.status_file:
            return
        path = failure_file(self.settings.status_file)
        try:
            atomic_write(path, action.render())
            self.status_written = True
        except OSError as exc:
            log.error("failed to write %s: %s", path, exc)

    def notify_up(self, message: str) -> None:
        """Tell systemd (our own NOTIFY_SOCKET): READY=1, RELOADING=1, STOPPING=1."""
        if self.upstream is None:
            return
        if message.startswith("READY=1"):
            message += f"\nMAINPID={os.getpid()}"
        elif message.startswith("RELOADING=1"):
            # systemd >= 253 (Type=notify-reload) wants the CLOCK_MONOTONIC time too.
            usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            message += f"\nMONOTONIC_USEC={usec}"
        notify(message, env=self.upstream)

    def remove_files(self) -> None:
        """Remove the status file and its failure record, if we wrote them."""
        path = self.settings.status_file
        if path and self.status_written:
            for name in (path, failure_file(path)):
                try:
                    os.unlink(name)
                except OSError:
                    pass

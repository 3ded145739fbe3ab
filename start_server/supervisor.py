"""The superdaemon's loop: set up, then turn signals, exits and READY=1 into events for
``generations.on_event``, whose actions start_server.executor carries out.

Raises SupervisorError for setup failures; never imports psutil.
"""

from __future__ import annotations

import os
import selectors
import signal
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from start_server import generation_records as rec, generations as gen
from start_server.common.portspec import ENV_NOTIFY_SOCKET, format_server_starter_port
from start_server.common.proc import PidFile, PidFileError, reap
from start_server.common.sigwake import SignalWaker
from start_server.config import ENV_ENVDIR, Settings
from start_server.executor import Executor, load_envdir
from start_server.listeners import Bound, adopt_all, bind_all, unlink_sockets
from start_server.logline import log
from start_server.readiness import NotifyListener
from start_server.startup import (
    LogTarget,
    SupervisorError,
    check_status_file,
    daemonize,
    option_exports,
)

__all__ = ["SupervisorError", "run"]

# Signals that only wake the loop up: a child to reap, a deadline.
WAKEUP_SIGNALS = (signal.SIGALRM, signal.SIGCHLD)
HANDLED_SIGNALS = (signal.SIGHUP, *gen.STOP_SIGNALS, *WAKEUP_SIGNALS)


class Supervisor:
    """Feeds the policy events and hands its actions to the Executor until it says Exit."""

    def __init__(
        self,
        settings: Settings,
        command: Sequence[str],
        base_env: Mapping[str, str],
        bound: Sequence[Bound],
        waker: SignalWaker,
        upstream: str | None = None,
    ) -> None:
        self.bound = list(bound)
        self.waker = waker
        self.exit: rec.Exit | None = None
        self.state = rec.State()
        # Every generation gets a notify socket: one that speaks sd_notify opts in to
        # readiness (docs/hot-deploy.md §1), one that does not ignores it.
        self.listener = NotifyListener()
        self.executor = Executor(
            settings,
            command,
            base_env,
            format_server_starter_port(b.entry for b in self.bound),
            waker,
            self.state,
            self.listener,
            upstream,
        )
        self.selector = selectors.DefaultSelector()
        self.selector.register(waker.fileno(), selectors.EVENT_READ, None)
        self.registered: set[int] = set()

    def feed(self, event: rec.Event) -> None:
        """Apply one event and carry out every resulting action (and their follow-ups)."""
        queue: deque[rec.Action] = deque(
            gen.on_event(self.state, event, time.monotonic())
        )
        while queue:
            action = queue.popleft()
            if isinstance(action, rec.Exit):
                self.exit = action
                continue
            follow = self.executor.perform(action)
            if isinstance(action, rec.Spawn):
                self.sync_selector()  # the generation's notify socket opened or closed
            if follow is not None:
                queue.extendleft(
                    reversed(gen.on_event(self.state, follow, time.monotonic()))
                )

    # ------------------------------------------------------------ notify sockets

    def sync_selector(self) -> None:
        """Register each generation's notify socket (and forget the closed ones)."""
        socks = self.listener.sockets()
        for generation in list(self.registered):
            if generation not in socks:
                self.registered.discard(generation)
        for key in list(self.selector.get_map().values()):
            if key.data is not None and key.data not in socks:
                self.selector.unregister(key.fileobj)
        for generation, sock in socks.items():
            if generation not in self.registered:
                self.selector.register(sock, selectors.EVENT_READ, generation)
                self.registered.add(generation)

    def read_notifications(self, generations: Iterable[int]) -> None:
        """Turn waiting READY=1 (and any other message: Announced) into events."""
        for generation in generations:
            for message in self.listener.receive(generation):
                if message.stopping:
                    log.info("generation %d reports STOPPING=1", generation)
                if "MAINPID" in message.fields:
                    log.info(
                        "generation %d reports MAINPID=%s",
                        generation,
                        message.fields["MAINPID"],
                    )
                if message.ready:
                    self.feed(rec.ReadyReceived(generation))
                else:
                    self.feed(rec.Announced(generation))
                if self.exit is not None:
                    return

    def forget(self, pid: int) -> None:
        """A child was reaped: read what it said last, then close its notify socket."""
        generation = self.executor.reaped(pid)
        if generation is None:
            return
        self.read_notifications([generation])
        self.listener.close(generation)
        self.sync_selector()

    def loop(self) -> rec.Exit:
        """Run until the policy says Exit."""
        self.executor.reload_envdir()
        self.feed(rec.Start())
        while self.exit is None:
            deadline = gen.next_deadline(self.state)
            timeout = (
                None if deadline is None else max(0.0, deadline - time.monotonic())
            )
            ready = self.selector.select(timeout)
            signals = self.waker.drain()
            self.read_notifications(
                key.data for key, _ in ready if isinstance(key.data, int)
            )
            for status in reap():
                if self.exit is not None:
                    break
                self.forget(status.pid)
                self.feed(rec.ChildExited(status))
            for sig in signals:
                if self.exit is None and sig not in WAKEUP_SIGNALS:
                    self.feed(rec.Signalled(sig))
            if self.exit is None:
                self.feed(rec.Tick())
        return self.exit

    def cleanup(self) -> None:
        """Remove the status file (if we wrote it) and the UNIX sockets we created."""
        self.executor.remove_files()
        self.listener.close_all()
        self.selector.close()
        unlink_sockets(self.bound)


def run(settings: Settings, command: Sequence[str]) -> int:
    """Start the superdaemon and run it until it is stopped; return the exit code."""
    log.set_level(settings.log_level)
    if settings.status_file:  # a refusal is then the only line printed
        check_status_file(settings.status_file)
    log.info("start_server (pid:%d) starting now...", os.getpid())
    base_env = dict(os.environ)
    # systemd's NOTIFY_SOCKET is ours: the children report to us, and we
    # report upward (READY=1 once a generation serves, RELOADING=1 ... READY=1 per swap).
    upstream = base_env.pop(ENV_NOTIFY_SOCKET, None)
    base_env.update(option_exports(settings))
    envdir = base_env.get(ENV_ENVDIR)
    if envdir:
        try:
            load_envdir(envdir)
        except OSError as exc:
            raise SupervisorError(
                f"cannot read envdir {envdir!r}: {exc.strerror or exc}"
            ) from None
    logfile = LogTarget(settings.log_file) if settings.log_file else None
    adopted = adopt_all(os.environ, (s.key for s in settings.specs))
    clash = {b.sock.fileno() for b in adopted} & {
        s.fd for s in settings.specs if s.fd is not None
    }
    if clash:
        raise SupervisorError(
            f"file descriptor {min(clash)} is requested by --port and passed by systemd"
        )
    bound = bind_all(settings.specs, settings.backlog) + adopted
    waker = SignalWaker(HANDLED_SIGNALS)
    if logfile is not None:
        logfile.redirect()
    if settings.daemonize:
        keep_stdin = any(b.sock.fileno() == 0 for b in bound)
        if not daemonize(keep_stdin):
            os._exit(0)
    pidfile = PidFile(settings.pid_file) if settings.pid_file else None
    sup = Supervisor(settings, command, base_env, bound, waker, upstream)
    try:
        if pidfile is not None:
            try:
                pidfile.acquire()
            except PidFileError as exc:
                raise SupervisorError(str(exc)) from None
        result = sup.loop()
    finally:
        sup.cleanup()
        if pidfile is not None:
            pidfile.release()
        waker.close()
    if result.error is not None:
        raise SupervisorError(result.error)
    return result.code

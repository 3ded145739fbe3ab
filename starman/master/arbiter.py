"""The prefork master's loop: signals, ready workers and deadlines in; the pool policy's
actions (fork, kill, reopen logs, notify) carried out.

The decisions are made by ``starman.master.pool``; start-up is ``starman.master.startup``.
Raises AppImportError when the workers cannot load the app; never prints user-facing
errors itself (cli.py does).
"""

from __future__ import annotations

import gc
import logging
import os
import random
import selectors
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

from starman.config import Settings
from starman.master import pool
from starman.master.board import (
    busy_slots,
    remove_status_file,
    scan_board,
    status_document,
    write_status_file,
)
from starman.master.immortal import immortalize_program
from starman.master.loadreport import LoadReport, LoadReports
from starman.master.logs import reopen_log_handlers
from starman.master.process import (
    MASTER_NAME,
    WORKER_NAME,
    libc,
    proctitle_setter,
    set_parent_death_signal,
    set_title,
    trim_heap,
)
from starman.master.startup import AppLoadError, Boot, load_the_app
from starman.worker.config import worker_config
from starman.worker.handover import Handover, handover_pair
from starman.worker.loop import run_worker
from starman.worker.rehearse import rehearse
from starman.worker.scoreboard import Scoreboard, SlotHooks
from starman.wsgi.appload import AppImportError
from start_server.common.proc import reap
from start_server.common.sdnotify import notify
from start_server.common.sigwake import SignalWaker

__all__ = ["Master", "run_master"]

log = logging.getLogger("starman.master")

_SIGNALS = (
    signal.SIGHUP,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
    signal.SIGCHLD,
)


class Master:
    """The master's loop over what ``boot`` set up. For the caller: ``run() -> exit code``."""

    def __init__(self, boot: Boot, argv: list[str]) -> None:
        self.s: Settings = boot.settings
        self.argv = argv
        self.pid = boot.pid
        self.listeners = boot.listeners
        self.app: Callable[..., Any] | None = boot.app
        self.gc_recipe = boot.gc_recipe
        self.notify_env = boot.notify_env
        self.ssl_context: Any = boot.ssl_context
        self.board: Scoreboard | None = None
        self.waker: SignalWaker | None = None
        self.selector: selectors.BaseSelector | None = None
        self.ready_r = -1
        self.ready_w = -1
        self.state: pool.PoolState | None = None
        self.next_status_write = 0.0
        self.timeout_check_at: float | None = None
        self.load_reports = LoadReports()  # made before the first fork
        self.load_error: str | None = None  # the exit message, when that is the cause
        # Made before the first fork: every worker inherits both ends, so a connection
        # in flight waits in the queue for a worker forked later (seamless recycling).
        self.handover: Handover | None = None

    # ---------------------------------------------------------------- the loop

    def run(self) -> int:
        s = self.s
        libc()  # load once here; every forked worker inherits it (see libc)
        proctitle_setter()  # likewise
        rehearse()  # workers inherit the request path's bytecode already specialised
        # CPython 3.12/3.13: see starman/master/immortal.py
        marked = immortalize_program(() if self.app is None else (self.app,))
        if marked:
            log.debug("made %d objects of the program immortal before forking", marked)
        trim_heap()
        if s.proctitle:
            set_title("starman master " + " ".join(self.argv), MASTER_NAME)
        self.board = Scoreboard(pool.MAX_SLOTS)
        self.handover = handover_pair()
        self.ready_r, self.ready_w = os.pipe()
        os.set_blocking(self.ready_r, False)
        os.set_blocking(self.ready_w, False)
        self.waker = SignalWaker(_SIGNALS)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.waker.fileno(), selectors.EVENT_READ)
        self.selector.register(self.ready_r, selectors.EVENT_READ)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.state = pool.pool_state(s, master_pid=self.pid)
        try:
            code = self._feed(pool.Tick())
            while code is None:
                code = self._turn()
        finally:
            self.waker.close()
            self.selector.close()
            os.close(self.ready_r)
            os.close(self.ready_w)
            self.load_reports.close()
            if self.handover is not None:
                self.handover.inbox.close()
                self.handover.outbox.close()
            if s.status_file:
                remove_status_file(s.status_file, self.pid)
        if code == pool.APP_LOAD_ERROR:
            raise AppImportError(
                self.load_error or "the workers could not load the app; exiting"
            )
        log.info("master exiting with code %d", code)
        return code

    def _turn(self) -> int | None:
        """Wait for a signal, a ready worker or the next deadline; feed what happened."""
        assert self.selector is not None and self.waker is not None
        assert self.state is not None and self.board is not None
        self.selector.select(self._wait_time(time.monotonic()))
        try:
            while os.read(self.ready_r, 4096):
                pass
        except BlockingIOError:
            pass
        # Signals first, read after reaping: Ctrl-C reaches the whole process group, and
        # a worker it ended must be seen by a stopping pool, not replaced by a running
        # one. The master's own signal was pending before any of those workers could
        # exit, so it is in the waker once their exits have been reaped.
        exited = reap()
        for sig in self.waker.drain():
            if sig is signal.SIGCHLD:
                continue
            busy = (
                busy_slots(self.state, self.board)
                if sig is signal.SIGTTOU
                else frozenset()
            )
            code = self._feed(pool.Signalled(sig, busy))
            if code is not None:
                return code
        for status in exited:
            died_of = status.signal
            code = self._feed(
                pool.ChildExited(
                    status.pid,
                    status.code,
                    None if died_of is None else int(died_of),
                )
            )
            if code is not None:
                return code
        events, self.timeout_check_at = scan_board(
            self.state, self.board, self.s.timeout, time.monotonic()
        )
        for event in events:
            code = self._feed(event)
            if code is not None:
                return code
        self._write_status()
        return self._feed(pool.Tick())

    def _wait_time(self, now: float) -> float | None:
        assert self.state is not None
        times = []
        deadline = pool.next_deadline(self.state)
        if deadline is not None:
            times.append(deadline)
        if self.timeout_check_at is not None:
            times.append(self.timeout_check_at)
        if self.s.status_file:
            times.append(self.next_status_write)
        if not times:
            return None
        return max(0.0, min(times) - now)

    def _write_status(self) -> None:
        path = self.s.status_file
        now = time.monotonic()
        if not path or now < self.next_status_write:
            return
        assert self.state is not None and self.board is not None
        self.next_status_write = now + 1.0
        write_status_file(path, status_document(self.state, self.board, self.pid))

    # ---------------------------------------------------------------- actions

    def _feed(self, event: pool.Event) -> int | None:
        """Run one event through the policy and carry out its actions; an exit code ends."""
        assert self.state is not None
        actions = pool.on_event(self.state, event, time.monotonic())
        for action in actions:
            if isinstance(action, pool.Spawn):
                follow = self._spawn(action)
                code = self._feed(follow)
                if code is not None:
                    return code
            elif isinstance(action, pool.Signal):
                try:
                    os.kill(action.pid, action.sig)
                except ProcessLookupError:
                    pass
            elif isinstance(action, pool.ReopenLogs):
                reopen_log_handlers()
                log.info("received SIGUSR1: reopened logs")
            elif isinstance(action, pool.Notify):
                if self.notify_env:
                    notify(action.message, env=self.notify_env)
            elif isinstance(action, pool.AppLoadFailed):
                self._app_load_failed(action)
            elif isinstance(action, pool.Exit):
                return action.code
        return None

    def _app_load_failed(self, action: pool.AppLoadFailed) -> None:
        """Show one worker's report: the user's traceback in the log, and the message
        (the exit message, when the master stops because of it)."""
        report = self.load_reports.take(action.pid)
        if report is None:
            report = LoadReport(action.pid, f"exited with code {pool.APP_LOAD_ERROR}")
        if report.details:
            log.error(
                "worker %d: error while loading the app:\n%s",
                report.pid,
                report.details.rstrip(),
            )
        message = f"worker {report.pid} could not load the app: {report.message}"
        if action.fatal:
            self.load_error = message
        else:
            log.error("%s", message)

    def _spawn(self, action: pool.Spawn) -> pool.Event:
        assert self.board is not None
        self.board.clear(action.slot)
        # Whatever the mode, the worker's collector must never walk (and so dirty) the
        # objects it inherits: a collection of the old generation in a worker that
        # imports its app would otherwise copy most of the master's heap.
        gc.freeze()
        sys.stdout.flush()
        sys.stderr.flush()
        # Block the handled signals across fork: one sent to the new worker before it
        # drops the master's handlers would otherwise be written to the master's wakeup
        # fd and lost for the worker (a TERM then waited out the graceful timeout).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            pid = os.fork()
        except OSError as exc:
            self._after_fork(mask)
            return pool.SpawnFailed(action.slot, str(exc))
        if pid == 0:
            self._child(action.slot, action.generation, mask)
        self._after_fork(mask)
        return pool.Spawned(action.slot, pid)

    def _after_fork(self, mask: set[int]) -> None:
        """In the master, after a fork (or a failed one)."""
        if not self.gc_recipe:
            gc.unfreeze()  # without the recipe, the master's own collector keeps going
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    # ---------------------------------------------------------------- the worker side

    def _child(self, slot: int, generation: int, mask: set[int]) -> NoReturn:
        """In the forked worker: never returns into the master's loop."""
        status = pool.WORKER_BOOT_ERROR
        try:
            assert self.waker is not None and self.selector is not None
            assert self.board is not None
            self.waker.reset_in_child()
            # Default dispositions now: a TERM sent while booting ends the worker.
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            self.selector.close()
            os.close(self.ready_r)
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            if self.gc_recipe:
                gc.enable()
            set_parent_death_signal(signal.SIGTERM)
            if os.getppid() != self.pid:
                os._exit(0)
            if self.s.proctitle:
                set_title("starman worker " + " ".join(self.argv), WORKER_NAME)
            hooks = SlotHooks(self.board, slot, generation, self.ready_w)
            status = self._serve(hooks, generation)
        except BaseException:
            log.exception("worker failed")
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(status)

    def _serve(self, hooks: SlotHooks, generation: int) -> int:
        app = self.app
        if app is None:
            try:
                app = load_the_app(self.s)
            except AppImportError as exc:
                # The master shows one worker's report, not one per worker.
                details = exc.details if isinstance(exc, AppLoadError) else ""
                if not self.load_reports.write(
                    LoadReport(os.getpid(), str(exc), details)
                ):
                    log.error("%s%s", details, exc)
                return pool.APP_LOAD_ERROR
        s = self.s
        max_requests = s.max_requests
        stretch = 0.0  # the jitter as a fraction, for the lifetime and memory limits
        if max_requests and s.max_requests_jitter:
            extra = random.randint(0, s.max_requests_jitter)
            stretch = extra / max_requests
            max_requests += extra
        config = worker_config(
            s,
            parent_pid=self.pid,
            generation=str(generation),
            ssl_context=self.ssl_context,
            tls_fds=frozenset(lst.sock.fileno() for lst in self.listeners if lst.tls),
            max_requests=max_requests,
            stretch=stretch,
        )
        return run_worker(
            [lst.sock for lst in self.listeners], app, config, hooks, self.handover
        )


def run_master(settings: Settings, argv: list[str]) -> int:
    """Run the server until it stops; return the exit code (raises on start-up failures)."""
    boot = Boot(settings)
    try:
        if not boot.start():
            return 0  # a --daemonize launcher: the daemon runs the loop
        return Master(boot, argv).run()
    finally:
        boot.close()

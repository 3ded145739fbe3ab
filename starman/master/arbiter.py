"""The prefork master: adopt or bind listeners, optionally preload, fork workers, supervise.

Every syscall of the supervision lives here (fork, kill, waitpid, dup2); the decisions are
made by ``starman.master.pool``. Raises MasterError, ListenerError or AppImportError; never prints
user-facing errors itself (cli.py does).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import json
import logging
import os
import pwd
import random
import selectors
import signal
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from starman.config import Settings
from starman.master import pool
from starman.master.immortal import immortalize_program
from starman.master.listeners import Listener, close_listeners, resolve_listeners
from starman.worker.config import WorkerConfig
from starman.worker.loop import run_worker
from starman.worker.rehearse import rehearse
from starman.worker.scoreboard import Scoreboard, SlotHooks, SlotInfo, SlotState
from starman.wsgi.appload import (
    AppImportError,
    add_include_dirs,
    check_target,
    load_app,
    preload_modules,
)
from start_server.common.proc import PidFile, PidFileError, atomic_write, reap
from start_server.common.sdnotify import ENV_NOTIFY_SOCKET, notify
from start_server.common.sigwake import SignalWaker

__all__ = [
    "MasterError",
    "ReopeningFileHandler",
    "StderrHandler",
    "run_master",
]

log = logging.getLogger("starman.master")

MAX_SLOTS = 1024
_PR_SET_NAME = 15
_PR_SET_PDEATHSIG = 1
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
# How long the --daemonize launcher waits for the daemon to report that it started.
DAEMON_START_TIMEOUT = 60.0


class MasterError(Exception):
    """A runtime failure of the master (exit 1): user, pid file, daemonize."""


# --------------------------------------------------------------------------- logs


class ReopeningFileHandler(logging.FileHandler):
    """A FileHandler whose ``reopen()`` (USR1) starts a new file after a rename."""

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in typeshed
    """Logs to fd 2; ``reopen()`` re-points fd 2 at --error-log after a rename (USR1)."""

    def __init__(self, error_log: str | None = None) -> None:
        super().__init__(sys.stderr)
        self.error_log = error_log

    def reopen(self) -> None:
        if self.error_log is not None:
            redirect_stderr(self.error_log)


def redirect_stderr(path: str) -> None:
    """Point fd 2 (and so every child's stderr) at ``path``, appending."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        sys.stderr.flush()
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def reopen_log_handlers() -> None:
    """Call ``reopen()`` on every logging handler that has one."""
    for name in ("", "starman.access"):
        for handler in logging.getLogger(name).handlers:
            reopen = getattr(handler, "reopen", None)
            if callable(reopen):
                reopen()


# --------------------------------------------------------------------------- process helpers


@functools.cache
def _libc() -> Any:
    """The C library, loaded once in the master so forked workers inherit it.

    ``CDLL(None)`` resolves symbols in the running process, which already links libc:
    ``ctypes.util.find_library`` would run ``ldconfig -p`` (2.2 ms of CPU and ~0.6 MB of
    USS per call in every new worker, measured).
    """
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def set_parent_death_signal(sig: signal.Signals) -> None:
    """Linux: have the kernel send ``sig`` when the master dies (best effort elsewhere)."""
    libc = _libc()
    if libc is not None and sys.platform.startswith("linux"):
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def _trim_heap() -> None:
    """Give the C heap's free pages back to the kernel (glibc ``malloc_trim``), once,
    before the first fork.

    Imports leave freed memory behind in the heap (0.2-0.5 MB measured, mostly the
    compiler's, for the code that dataclasses generate): while resident it is shared with
    every worker and counted in the tree's PSS, and a worker that allocates there copies
    the page. Without glibc (musl has no ``malloc_trim``) nothing happens.
    """
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is not None:
        trim(0)


@functools.cache
def _setproctitle() -> Callable[[str], None] | None:
    """``setproctitle.setproctitle`` if installed; looked up once, in the master.

    A failed import walks every ``sys.path`` entry: in each new worker that cost
    ~90 page faults (~0.4 ms), measured.
    """
    try:
        import setproctitle
    except ImportError:
        return None
    setter: Callable[[str], None] = setproctitle.setproctitle
    return setter


def set_title(title: str, short: str) -> None:
    """setproctitle if installed, else prctl(PR_SET_NAME) with the short name (15 bytes)."""
    setter = _setproctitle()
    if setter is not None:
        setter(title)
        return
    libc = _libc()
    if libc is not None and sys.platform.startswith("linux"):
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(short.encode()[:15]), 0, 0, 0)


def resolve_ids(
    user: str | None, group: str | None
) -> tuple[int | None, int | None, str | None]:
    """(uid, gid, user name) for --user/--group; raise MasterError for unknown names."""
    import grp

    uid: int | None = None
    gid: int | None = None
    name: str | None = None
    if user is not None:
        try:
            pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise MasterError(f"unknown user {user!r} (--user)") from None
        uid, gid, name = pw.pw_uid, pw.pw_gid, pw.pw_name
    if group is not None:
        try:
            gr = grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)
        except KeyError:
            raise MasterError(f"unknown group {group!r} (--group)") from None
        gid = gr.gr_gid
    return uid, gid, name


def drop_privileges(uid: int | None, gid: int | None, name: str | None) -> None:
    """setgid, initgroups, setuid (in that order); nothing to do if already that user."""
    try:
        if gid is not None and gid != os.getegid():
            os.setgid(gid)
            if name is not None:
                os.initgroups(name, gid)
            else:
                os.setgroups([gid])
        if uid is not None and uid != os.geteuid():
            if name is not None and gid is None:
                os.initgroups(name, pwd.getpwuid(uid).pw_gid)
            os.setuid(uid)
    except PermissionError as exc:
        who = name if name is not None else str(uid if uid is not None else gid)
        raise MasterError(
            f"cannot switch to user/group {who!r}: [Errno {exc.errno}] {exc.strerror}"
        ) from None


def _dev_null_stdio(keep_stderr: bool) -> None:
    fd = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1) if keep_stderr else (0, 1, 2):
        os.dup2(fd, target)
    os.close(fd)


# --------------------------------------------------------------------------- the master


class Master:
    """One run of the master. Methods for the caller: ``run() -> exit code``."""

    def __init__(
        self,
        settings: Settings,
        argv: list[str],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.s = settings
        self.argv = argv
        self.pid = os.getpid()
        self.listeners: list[Listener] = []
        self.app: Callable[..., Any] | None = None
        self.gc_recipe = False
        self.notify_env: dict[str, str] = {}
        self.board: Scoreboard | None = None
        self.waker: SignalWaker | None = None
        self.selector: selectors.BaseSelector | None = None
        self.ready_r = -1
        self.ready_w = -1
        self.state: pool.PoolState | None = None
        self.pidfile: PidFile | None = None
        self.ssl_context: Any = None  # an ssl.SSLContext when a listener speaks TLS
        self.next_status_write = 0.0
        self.timeout_check_at: float | None = None

    # ---------------------------------------------------------------- start-up

    def run(self) -> int:
        s = self.s
        uid, gid, name = resolve_ids(s.user, s.group)
        self.listeners = resolve_listeners(s, os.environ)
        if any(lst.tls for lst in self.listeners):
            # Read the key once, here, before privileges are dropped (it is often 0600).
            from starman.worker.tls import TLSError, server_context

            assert s.ssl_cert is not None  # config: TLS needs --ssl-cert
            try:
                self.ssl_context = server_context(s.ssl_cert, s.ssl_key)
            except TLSError as exc:
                close_listeners(self.listeners)
                raise MasterError(str(exc)) from None
        for lst in self.listeners:
            log.info("listening on %s", lst.describe())
        try:
            drop_privileges(uid, gid, name)
            os.environ["STARMAN_ENV"] = s.env
            add_include_dirs(s.include)
            if s.module or s.preload_app:
                # gc recipe for copy-on-write (spec §5.3): no collections in the master.
                gc.disable()
                self.gc_recipe = True
            for note in preload_modules(s.module):
                log.info("%s", note)
            if s.preload_app:
                self.app = self._load_app()
                log.info("app preloaded in the master")
            elif s.app is not None or s.eval is None:
                check_target(s.app)
            if s.daemonize:
                started = self._daemonize()
                if not started:
                    # The launcher: the daemon owns the sockets (and their unlinking) now.
                    for lst in self.listeners:
                        lst.unlink_path = None
                    return 0
            if s.error_log:
                redirect_stderr(s.error_log)
            raw_notify = os.environ.pop(ENV_NOTIFY_SOCKET, None)
            if raw_notify:
                self.notify_env = {ENV_NOTIFY_SOCKET: raw_notify}
            if s.pid:
                self.pidfile = PidFile(s.pid)
                try:
                    self.pidfile.acquire()
                except PidFileError as exc:
                    raise MasterError(str(exc)) from None
            self._report_daemon_started()
            return self._loop()
        finally:
            close_listeners(self.listeners)
            if self.pidfile is not None:
                self.pidfile.release()

    def _load_app(self) -> Callable[..., Any]:
        """Load the app (master with --preload-app, or a worker); raise AppImportError."""
        s = self.s
        try:
            app = load_app(s.app, s.eval, factory=s.factory)
        except AppImportError:
            raise
        except Exception as exc:
            # The user's module raised: their traceback is the useful part.
            log.exception("error while loading the app")
            raise AppImportError(
                f"cannot import app {s.app or s.eval or 'app.py'!r}: it raised {type(exc).__name__}: {exc}"
            ) from None
        if s.env == "development" and s.default_middleware:
            from wsgiref.validate import validator

            app = validator(app)
        return app

    _daemon_pipe: int | None = None

    def _daemonize(self) -> bool:
        """Double fork + setsid. True in the daemon, False in the launcher (after it started)."""
        s = self.s

        def absolute(path: str | None) -> str | None:
            return os.path.abspath(path) if path else path

        self.s = s.replace(
            pid=absolute(s.pid),
            error_log=absolute(s.error_log),
            access_log=absolute(s.access_log),
            status_file=absolute(s.status_file),
        )
        r, w = os.pipe()
        pid = os.fork()
        if pid > 0:
            os.close(w)
            os.waitpid(pid, 0)
            sel = selectors.DefaultSelector()
            sel.register(r, selectors.EVENT_READ)
            ok = bool(sel.select(DAEMON_START_TIMEOUT)) and os.read(r, 1) == b"1"
            sel.close()
            os.close(r)
            if not ok:
                raise MasterError(
                    "the daemon failed to start (see --error-log for details)"
                )
            return False
        os.close(r)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        self.pid = os.getpid()
        _dev_null_stdio(keep_stderr=False)
        self._daemon_pipe = w
        return True

    def _report_daemon_started(self) -> None:
        if self._daemon_pipe is not None:
            os.write(self._daemon_pipe, b"1")
            os.close(self._daemon_pipe)
            self._daemon_pipe = None

    # ---------------------------------------------------------------- the loop

    def _loop(self) -> int:
        s = self.s
        _libc()  # load once here; every forked worker inherits it (see _libc)
        _setproctitle()  # likewise
        rehearse()  # workers inherit the request path's bytecode already specialised
        # CPython 3.12/3.13: see starman/master/immortal.py
        marked = immortalize_program(() if self.app is None else (self.app,))
        if marked:
            log.debug("made %d objects of the program immortal before forking", marked)
        _trim_heap()
        if s.proctitle:
            set_title("starman master " + " ".join(self.argv), "starman-master")
        self.board = Scoreboard(MAX_SLOTS)
        self.ready_r, self.ready_w = os.pipe()
        os.set_blocking(self.ready_r, False)
        os.set_blocking(self.ready_w, False)
        self.waker = SignalWaker(_SIGNALS)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.waker.fileno(), selectors.EVENT_READ)
        self.selector.register(self.ready_r, selectors.EVENT_READ)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.state = pool.PoolState(
            target=s.workers,
            graceful_timeout=s.graceful_timeout,
            term_immediate=s.term_immediate,
            preloaded=s.preload_app,
            spawn_interval=s.spawn_interval,
            max_slots=MAX_SLOTS,
            master_pid=self.pid,
        )
        try:
            code = self._feed(pool.Tick())
            while code is None:
                code = self._turn()
        finally:
            self.waker.close()
            self.selector.close()
            os.close(self.ready_r)
            os.close(self.ready_w)
        if code == pool.APP_LOAD_ERROR:
            raise AppImportError(
                "the workers could not load the app (see the error above); exiting"
            )
        log.info("master exiting with code %d", code)
        return code

    def _turn(self) -> int | None:
        """Wait for a signal, a ready worker or the next deadline; feed what happened."""
        assert self.selector is not None and self.waker is not None
        assert self.state is not None
        self.selector.select(self._wait_time(time.monotonic()))
        try:
            while os.read(self.ready_r, 4096):
                pass
        except BlockingIOError:
            pass
        signals = self.waker.drain()
        for status in reap():
            sig = status.signal
            code = self._feed(
                pool.ChildExited(
                    status.pid, status.code, None if sig is None else int(sig)
                )
            )
            if code is not None:
                return code
        for sig in signals:
            if sig is signal.SIGCHLD:
                continue
            busy = self._busy_slots() if sig is signal.SIGTTOU else frozenset()
            code = self._feed(pool.Signalled(sig, busy))
            if code is not None:
                return code
        for event in self._scan_board(time.monotonic()):
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

    def _scan_board(self, now: float) -> list[pool.Event]:
        """Readiness and --timeout from the workers' slots."""
        assert self.state is not None and self.board is not None
        events: list[pool.Event] = []
        limit_ns = int(self.s.timeout * 1e9)
        now_ns = time.monotonic_ns()
        next_check_ns = now_ns + limit_ns
        for w, info in self._live_slots():
            if w.state is pool.WorkerState.BOOTING and info.state in (
                SlotState.READY,
                SlotState.IN_APP,
                SlotState.DRAINING,
            ):
                events.append(pool.SlotReady(w.slot))
            elif info.draining and (
                w.state is pool.WorkerState.READY
                or w.state is pool.WorkerState.RETIRING
            ):
                # max-requests, harakiri: start the replacement before this one leaves.
                events.append(pool.SlotDraining(w.slot))
            elif info.retiring and w.state is pool.WorkerState.READY:
                events.append(pool.SlotRetiring(w.slot))
            if limit_ns and info.state is SlotState.IN_APP and info.request_start_ns:
                due = info.request_start_ns + limit_ns
                if due <= now_ns:
                    events.append(pool.RequestTooLong(w.slot))
                else:
                    next_check_ns = min(next_check_ns, due)
        if limit_ns:
            # A request that starts after this scan is due no earlier than now + limit.
            self.timeout_check_at = now + (next_check_ns - now_ns) / 1e9 + 0.001
        return events

    def _live_slots(self) -> list[tuple[pool.WorkerInfo, SlotInfo]]:
        """Each worker with a pid and the scoreboard slot it has written itself."""
        assert self.board is not None and self.state is not None
        live = []
        for w in list(self.state.workers.values()):
            if w.pid is not None:
                info = self.board.read(w.slot)
                if info.pid == w.pid:
                    live.append((w, info))
        return live

    def _busy_slots(self) -> frozenset[int]:
        """Slots whose worker is inside the app now (TTOU retires an idle one)."""
        return frozenset(
            w.slot for w, info in self._live_slots() if info.state is SlotState.IN_APP
        )

    def _write_status(self) -> None:
        path = self.s.status_file
        now = time.monotonic()
        if not path or now < self.next_status_write:
            return
        assert self.state is not None and self.board is not None
        self.next_status_write = now + 1.0
        workers = []
        for w in sorted(self.state.workers.values(), key=lambda x: x.slot):
            entry: dict[str, object] = {"slot": w.slot, "pool_state": w.state.value}
            if w.pid is not None:
                info = self.board.read(w.slot)
                if info.pid == w.pid:
                    entry.update(info.as_json())
                else:
                    entry.update({"pid": w.pid, "generation": w.generation})
            workers.append(entry)
        doc = {
            "master_pid": self.pid,
            "phase": self.state.phase.value,
            "generation": self.state.generation,
            "target_workers": self.state.target,
            "time": time.time(),
            "workers": workers,
        }
        try:
            atomic_write(path, json.dumps(doc, indent=1) + "\n")
        except OSError as exc:
            log.error("cannot write --status-file %r: %s", path, exc)

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
            elif isinstance(action, pool.Exit):
                return action.code
        return None

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
                set_title("starman worker " + " ".join(self.argv), "starman-worker")
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
                app = self._load_app()
            except AppImportError as exc:
                log.error("%s", exc)
                return pool.APP_LOAD_ERROR
        s = self.s
        max_requests = s.max_requests
        if max_requests and s.max_requests_jitter:
            max_requests += random.randint(0, s.max_requests_jitter)
        access_log = bool(s.access_log) or (
            s.env == "development" and s.default_middleware
        )
        config = WorkerConfig(
            keepalive=s.keepalive,
            keepalive_timeout=s.keepalive_timeout,
            read_timeout=s.read_timeout,
            body_timeout=s.body_timeout,
            write_timeout=s.write_timeout,
            graceful_timeout=s.graceful_timeout,
            max_requests=max_requests,
            max_keepalive_reqs=s.max_keepalive_reqs,
            max_connections=s.max_connections_per_worker,
            max_request_body=s.max_request_body,
            body_buffer_size=s.body_buffer_size,
            tmp_dir=s.tmp_dir,
            limit_request_line=s.limit_request_line,
            limit_request_fields=s.limit_request_fields,
            limit_request_field_size=s.limit_request_field_size,
            script_name=s.path or "",
            forwarded_allow_ips=s.forwarded_allow_ips,
            access_log=access_log,
            parent_pid=self.pid,
            generation=str(generation),
            ssl_context=self.ssl_context,
            tls_fds=frozenset(lst.sock.fileno() for lst in self.listeners if lst.tls),
        )
        return run_worker([lst.sock for lst in self.listeners], app, config, hooks)


def run_master(settings: Settings, argv: list[str]) -> int:
    """Run the server until it stops; return the exit code (raises on start-up failures)."""
    return Master(settings, argv).run()

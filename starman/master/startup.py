"""The master's start-up before its loop: listeners, TLS, privileges, preloading,
daemonizing, --error-log, the pid file; and what is closed once the loop has ended.

Raises MasterError, ListenerError, AppImportError or ConfigError (a file named by an
option cannot be used); prints nothing (cli.py does).
"""

from __future__ import annotations

import gc
import logging
import os
import traceback
from collections.abc import Callable
from typing import Any

from starman.config import Settings
from starman.master.board import check_status_file
from starman.master.listeners import Listener, close_listeners, resolve_listeners
from starman.master.logs import forget_console, redirect_stderr
from starman.master.process import MasterError, daemonize, drop_privileges, resolve_ids
from starman.wsgi.appload import (
    AppImportError,
    add_include_dirs,
    check_target,
    load_app,
    preload_modules,
)
from start_server.common.options import ConfigError
from start_server.common.proc import PidFile, PidFileError
from start_server.common.sdnotify import ENV_NOTIFY_SOCKET, notify

__all__ = ["DAEMON_START_TIMEOUT", "AppLoadError", "Boot", "load_the_app"]

log = logging.getLogger("starman.master")

# How long the --daemonize launcher waits for the daemon to report that it started.
DAEMON_START_TIMEOUT = 60.0


class Boot:
    """What the master sets up before its loop: ``start()``, then always ``close()``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.listeners: list[Listener] = []
        self.app: Callable[..., Any] | None = None
        # gc stays off in the master (copy-on-write), on again in each worker
        self.gc_recipe = False
        self.notify_env: dict[str, str] = {}
        self.pidfile: PidFile | None = None
        self.ssl_context: Any = None  # an ssl.SSLContext when a listener speaks TLS
        self._daemon_pipe: int | None = None

    def start(self) -> bool:
        """Set everything up; False in a --daemonize launcher (its work is done)."""
        # Before the app loads: a supervisor that reads this (start_server) then waits
        # for our READY=1 instead of --interval (docs/hot-deploy.md §1).
        notify("STATUS=starting")
        s = self.settings
        uid, gid, name = resolve_ids(s.user, s.group)
        self.listeners = resolve_listeners(s, os.environ)
        if any(lst.tls for lst in self.listeners):
            # Read the key once, here, before privileges are dropped (it is often 0600).
            from starman.worker.tls import TLSError, server_context

            assert s.ssl_cert is not None  # config: TLS needs --ssl-cert
            _check_readable("--ssl-cert", s.ssl_cert)
            if s.ssl_key is not None:
                _check_readable("--ssl-key", s.ssl_key)
            try:
                self.ssl_context = server_context(s.ssl_cert, s.ssl_key)
            except TLSError as exc:
                raise ConfigError(str(exc)) from None  # close() closes the listeners
        for lst in self.listeners:
            log.info("listening on %s", lst.describe())
        drop_privileges(uid, gid, name)
        if s.status_file:
            check_status_file(s.status_file)  # as the user that will rewrite it
        os.environ["STARMAN_ENV"] = s.env
        add_include_dirs(s.include)
        if s.module or s.preload_app:
            # Copy-on-write: a collection in the master would write to objects that
            # every worker shares, so none runs there.
            gc.disable()
            self.gc_recipe = True
        for note in preload_modules(s.module):
            log.info("%s", note)
        if s.preload_app:
            try:
                self.app = load_the_app(s)
            except AppLoadError as exc:
                log.error("error while loading the app:\n%s", exc.details.rstrip())
                raise
            log.info("app preloaded in the master")
        elif s.app is not None or s.eval is None:
            check_target(s.app)
        if s.daemonize and not self._daemonize():
            # The launcher: the daemon owns the sockets (and their unlinking) now.
            for lst in self.listeners:
                lst.unlink_path = None
            return False
        s = self.settings
        raw_notify = os.environ.pop(ENV_NOTIFY_SOCKET, None)
        if raw_notify:
            self.notify_env = {ENV_NOTIFY_SOCKET: raw_notify}
        if s.pid:
            self.pidfile = PidFile(s.pid)
            try:
                self.pidfile.acquire()
            except PidFileError as exc:
                raise MasterError(str(exc)) from None
        if self._daemon_pipe is not None:
            os.write(self._daemon_pipe, b"1")
            os.close(self._daemon_pipe)
            self._daemon_pipe = None
        return True

    def _daemonize(self) -> bool:
        """True in the daemon, False in the launcher (after the daemon started)."""
        s = self.settings

        def absolute(path: str | None) -> str | None:
            return os.path.abspath(path) if path else path

        self.settings = s.replace(
            pid=absolute(s.pid),
            error_log=absolute(s.error_log),
            access_log=absolute(s.access_log),
            status_file=absolute(s.status_file),
        )
        self._daemon_pipe = daemonize(DAEMON_START_TIMEOUT)
        if self._daemon_pipe is None:
            return False
        self.pid = os.getpid()
        forget_console()
        error_log = self.settings.error_log
        if error_log:
            # daemonize() pointed fd 2 at /dev/null; cli.py had opened the log already,
            # so this cannot fail short of the file being made unwritable meanwhile.
            try:
                redirect_stderr(error_log)
            except OSError as exc:
                raise ConfigError(
                    f"cannot open --error-log {error_log!r}: {exc.strerror or exc}"
                ) from None
        return True

    def close(self) -> None:
        """Close the listeners and remove the pid file (after the loop, or a failure)."""
        close_listeners(self.listeners)
        if self.pidfile is not None:
            self.pidfile.release()


def _check_readable(option: str, path: str) -> None:
    """A file the option names must open for reading (ssl reports a missing file with
    no name, and a directory as a bad certificate)."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot read {option} {path!r}: {exc.strerror or exc}"
        ) from None


class AppLoadError(AppImportError):
    """The user's module raised while loading: the one-line message, and ``details``,
    the traceback of the user's frames, for the log (whoever reports it, once)."""

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details


_OUR_FRAMES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_traceback(exc: BaseException) -> str:
    """The traceback without starman's frames and the import machinery's: the user's
    code is what to read (all of it if nothing else is left)."""
    te = traceback.TracebackException.from_exception(exc)
    theirs = [
        frame
        for frame in te.stack
        if not frame.filename.startswith((_OUR_FRAMES + os.sep, "<frozen "))
    ]
    if theirs:
        te.stack = traceback.StackSummary.from_list(theirs)
    return "".join(te.format())


def load_the_app(s: Settings) -> Callable[..., Any]:
    """Load the app (master with --preload-app, or a worker); raise AppImportError
    (AppLoadError when the user's code raised). Logs nothing: the caller reports."""
    try:
        app = load_app(s.app, s.eval, factory=s.factory)
    except AppImportError:
        raise
    except Exception as exc:
        raise AppLoadError(
            f"cannot import app {s.app or s.eval or 'app.py'!r}: it raised {type(exc).__name__}: {exc}",
            _user_traceback(exc),
        ) from None
    if s.env == "development" and s.default_middleware:
        from wsgiref.validate import validator

        app = validator(app)
    return app

"""``starman`` command line: the only place that prints errors and picks exit codes.

0 OK, 1 runtime failure, 2 usage or configuration, 4 the app could not be loaded.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from collections.abc import Sequence

from starman import __version__
from starman.access import AccessLogFormatter
from starman.config import USAGE, make_parser
from starman.configload import load_settings
from starman.master.arbiter import run_master
from starman.master.listeners import ListenerError
from starman.master.logs import (
    ReopeningFileHandler,
    StderrHandler,
    console_write,
    open_error_log,
)
from starman.master.process import MasterError
from starman.wsgi.appload import AppImportError
from start_server.common.options import ConfigError, UsageError

__all__ = ["main"]

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_APP_LOAD = 4

_LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


def _error(message: str) -> None:
    line = f"starman: error: {message}\n"
    sys.stderr.write(line)
    sys.stderr.flush()
    console_write(line)  # also where starman was started, when --error-log took fd 2


def _version() -> str:
    try:
        import httptools

        ht = getattr(httptools, "__version__", "?")
    except ImportError:
        ht = "missing"
    return f"starman {__version__} (Python {platform.python_version()}, httptools {ht})"


def setup_logging(
    level: str,
    error_log: str | None,
    access_log: str | None,
    development: bool,
    access_log_format: str = "combined",
) -> None:
    """Root logger to stderr (re-pointable at --error-log); ``starman.access`` to its file
    (``-``: standard output)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = StderrHandler(error_log)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    access = logging.getLogger("starman.access")
    access.propagate = False
    access.setLevel(logging.INFO)
    for h in list(access.handlers):
        access.removeHandler(h)
    access_handler: logging.Handler
    if access_log == "-":
        # gunicorn's spelling for standard output; no file to reopen on USR1.
        access_handler = logging.StreamHandler(sys.stdout)
    elif access_log:
        access_handler = ReopeningFileHandler(access_log, delay=False)
    elif development:
        access_handler = logging.StreamHandler(sys.stderr)
    else:
        return
    access_handler.setFormatter(AccessLogFormatter(access_log_format))
    access.addHandler(access_handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run starman with ``argv`` (default sys.argv[1:]); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(args, os.environ)
    except UsageError as exc:
        _error(str(exc))
        sys.stderr.write(f"usage: {USAGE} (see starman --help)\n")
        return EXIT_USAGE
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_USAGE
    if settings.help:
        sys.stdout.write(make_parser().format_help())
        return EXIT_OK
    if settings.version:
        sys.stdout.write(_version() + "\n")
        return EXIT_OK
    if settings.error_log:
        # Everything after option parsing goes to the error log, start-up lines included.
        try:
            open_error_log(settings.error_log)
        except OSError as exc:
            _error(
                f"cannot open --error-log {settings.error_log!r}: {exc.strerror or exc}"
            )
            return EXIT_USAGE
    try:
        setup_logging(
            settings.log_level,
            settings.error_log,
            settings.access_log,
            settings.env == "development" and settings.default_middleware,
            settings.access_log_format,
        )
    except OSError as exc:
        _error(
            f"cannot open --access-log {settings.access_log!r}: {exc.strerror or exc}"
        )
        return EXIT_USAGE  # as for --error-log: a path given in the configuration
    try:
        return run_master(settings, args)
    except AppImportError as exc:
        _error(str(exc))
        return EXIT_APP_LOAD
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except (ListenerError, MasterError) as exc:
        _error(str(exc))
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:
        logging.getLogger("starman").exception("unexpected error")
        _error(f"{type(exc).__name__}: {exc}")
        return EXIT_RUNTIME

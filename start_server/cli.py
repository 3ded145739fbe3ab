"""``start_server`` command line: the only place that prints errors and picks exit codes.

0 OK, 1 runtime failure, 2 usage. Errors are one line: ``start_server: error: ...``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from start_server import __version__, config
from start_server.options import ConfigError, UsageError
from start_server.proc import PidFileError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _error(message: str) -> None:
    sys.stderr.write(f"start_server: error: {message}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run start_server with ``argv`` (default: sys.argv[1:]); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        settings, command = config.load(args, os.environ)
        if settings.help:
            sys.stdout.write(config.build_parser().format_help())
            return EXIT_OK
        if settings.version:
            sys.stdout.write(f"{__version__}\n")
            return EXIT_OK
        config.check(settings, command)
        if settings.restart or settings.stop:
            # psutil is imported only on this path.
            from start_server import control

            try:
                return (
                    control.restart(settings)
                    if settings.restart
                    else control.stop(settings)
                )
            except control.ControlError as exc:
                _error(str(exc))
                return EXIT_FAILURE
        from start_server import supervisor

        try:
            return supervisor.run(settings, command)
        except supervisor.SupervisorError as exc:
            _error(str(exc))
            return EXIT_FAILURE
    except UsageError as exc:
        _error(str(exc))
        sys.stderr.write(f"usage: {config.USAGE}\n")
        return EXIT_USAGE
    except (ConfigError, PidFileError) as exc:
        _error(str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the top of the program: one line, never a traceback
        _error(f"internal error: {type(exc).__name__}: {exc}")
        return EXIT_FAILURE

"""``start_server`` command line: the only place that prints errors and picks exit codes.

0 OK, 1 runtime failure, 2 usage or configuration (a bad option, environment value or
``--config`` file), as starman. Errors are one line: ``start_server: error: ...``; a
usage error adds the usage line once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from start_server import __version__, config
from start_server.common.options import ConfigError, UsageError
from start_server.common.proc import PidFileError, set_process_name

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _error(message: str) -> None:
    sys.stderr.write(f"start_server: error: {message}\n")
    sys.stderr.flush()


# The supervisor lives as long as the service, so its RSS has a budget (the target and
# the measurements: docs/benchmarks.md, "start_server's own memory"). The interpreter's
# start-up alone is most of it with site (the venv's editable-install finder imports
# pathlib, fnmatch, urllib.parse, ipaddress...), and clearly less without it (``-S``);
# start_server's own modules and what they import come on top. So once the command line is known to start a supervisor, the program replaces
# itself (same pid) with ``python -S``, whose sys.path is the stdlib plus the
# directories below, and parses the same arguments again. The environment is passed
# on untouched, so the children see exactly what they would without the re-exec.
# ``main(argv)`` called with an explicit argv (tests, embedding) never re-execs.
# The boot code gets this package's directories embedded, and the word "start_server"
# as its first argument, so that ps and ``pgrep -f "start_server --port"`` see the
# program name followed by its options, as with Perl's start_server.
_LEAN_BOOT = """\
import sys
if sys.path[:1] == [""]:
    del sys.path[0]  # -c put the current directory first; the script did not
sys.path[:0] = {paths!r}
del sys.argv[1]  # "start_server"
from start_server.cli import main
sys.exit(main())
"""
PROGRAM = "start_server"


def _lean_path() -> list[str]:
    """What the re-exec'd interpreter imports from outside the stdlib: this package,
    and tomli for ``--config`` on Python < 3.11."""
    dirs = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    tomli = sys.modules.get("tomli")
    if tomli is not None and tomli.__file__:
        dirs.append(os.path.dirname(os.path.dirname(tomli.__file__)))
    return dirs


def _reexec_without_site() -> None:
    """Become ``python -S`` (see above); return only if that is not possible."""
    if sys.flags.no_site or not sys.executable:
        return
    import subprocess  # the interpreter flags (-E, -u, -X...) helper multiprocessing uses

    flags = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    boot = _LEAN_BOOT.format(paths=_lean_path())
    argv = [sys.executable, *flags, "-S", "-c", boot, PROGRAM, *sys.argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, argv)
    except OSError:
        return  # supervise from this process: correct, only bigger


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
        if argv is None:
            _reexec_without_site()
            # python3 otherwise, after the re-exec: pgrep -x start_server finds Perl's.
            set_process_name(PROGRAM)
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
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except PidFileError as exc:
        _error(str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the top of the program: one line, never a traceback
        _error(f"internal error: {type(exc).__name__}: {exc}")
        return EXIT_FAILURE

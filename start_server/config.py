"""start_server's option table, its Settings, and how CLI, env vars and TOML combine.

Pure apart from reading the ``--config`` TOML file. Each option is one row of OPTIONS;
``Settings`` mirrors the rows (a unit test checks the names match).
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Mapping, Sequence

from start_server.common.options import (
    Option,
    OptionParser,
    UsageError,
    load_toml_table,
    merge,
    to_log_level,
    to_nonneg_float,
    to_positive_int,
    to_signal,
    to_str,
    values_from_env,
)
from start_server.common.portspec import (
    PortSpec,
    PortSpecError,
    parse_path_spec,
    parse_port_spec,
)
from start_server.common.record import Record
from start_server.generation_records import (
    AUTO_RESTART_KILL_OLD_DELAY,
    DEFAULT_AUTO_RESTART_INTERVAL,
    DEFAULT_INTERVAL,
    DEFAULT_READY_TIMEOUT,
    DEFAULT_SIGNAL,
)

# typing is for mypy only: the long-lived supervisor would keep it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "OPTIONS",
    "TOML_TABLE",
    "Settings",
    "build_parser",
    "check",
    "load",
    "split_command",
]

TOML_TABLE = "start_server"

USAGE = "start_server [options] -- server-prog server-arg1 server-arg2 ..."
DESCRIPTION = (
    "A superdaemon for hot-deploying server programs (a port of Perl's "
    "Server::Starter). It binds the listening sockets, exports them to the server "
    "program in SERVER_STARTER_PORT, and on SIGHUP starts a new generation of the "
    "program before retiring the old one."
)

# Perl's start_server defaults its listen backlog to Socket::SOMAXCONN() (machine-made,
# so the docs show the name).
DEFAULT_BACKLOG = socket.SOMAXCONN
DEFAULT_BACKLOG_TEXT = "SOMAXCONN"

DEFAULT_LOG_LEVEL = "info"

# Server::Starter's compatibility variables: read as their options, and exported to the
# server program when the option is given.
ENV_KILL_OLD_DELAY = "KILL_OLD_DELAY"
ENV_ENVDIR = "ENVDIR"
ENV_ENABLE_AUTO_RESTART = "ENABLE_AUTO_RESTART"
ENV_AUTO_RESTART_INTERVAL = "AUTO_RESTART_INTERVAL"

# The options of Perl's start_server: an abbreviation they alone share means one of them,
# as it did in Perl before we added ours (--re is --restart, not --ready-timeout).
PERL_OPTIONS = frozenset(
    (
        "port path interval log_file pid_file dir signal_on_hup signal_on_term backlog "
        "envdir enable_auto_restart daemonize auto_restart_interval kill_old_delay "
        "status_file restart stop help version"
    ).split()
)

# --restart and --stop give up after this many seconds.
DEFAULT_WAIT_TIMEOUT = 60.0


def _to_positive_float(text: str) -> float:
    """A number of seconds above zero."""
    value = to_nonneg_float(text)
    if value <= 0:
        raise ValueError("expected a number of seconds above 0")
    return value


def _to_port(text: str) -> PortSpec:
    """A --port value (PORT, HOST:PORT, [IPV6]:PORT, u prefix, =FD suffix)."""
    try:
        return parse_port_spec(text)
    except PortSpecError as exc:
        raise ValueError(exc.reason) from None


def _to_path(text: str) -> PortSpec:
    """A --path value (a UNIX socket path)."""
    try:
        return parse_path_spec(text)
    except PortSpecError as exc:
        raise ValueError(exc.reason) from None


OPTIONS: tuple[Option, ...] = (
    Option(
        "port",
        _to_port,
        [],
        "TCP port to listen to: PORT, HOST:PORT or [IPV6]:PORT; prefix the port with u "
        "for UDP (u53); append =FD to place the socket at that descriptor. Repeatable.",
        metavar="SPEC",
        repeat=True,
    ),
    Option(
        "path",
        _to_path,
        [],
        "UNIX socket path to listen on (a stale socket file there is replaced). Repeatable.",
        metavar="PATH",
        repeat=True,
    ),
    Option(
        "interval",
        to_nonneg_float,
        DEFAULT_INTERVAL,
        "seconds a new generation must stay alive to count as started, unless it "
        "speaks sd_notify within them (as starman does): then its READY=1 decides",
        metavar="SECS",
    ),
    Option(
        "wait_ready",
        to_str,
        False,
        "make READY=1 mandatory: every new generation counts as started only when it "
        "reports READY=1 over the sd_notify protocol (NOTIFY_SOCKET), never by surviving "
        "--interval; one that exits first or is not ready within --ready-timeout is "
        "stopped and the old generation keeps serving. Without it, this holds only for a "
        "generation that sends any message to NOTIFY_SOCKET within --interval (starman "
        "does, before it loads the app); a silent one keeps Perl's --interval rule",
        flag=True,
    ),
    Option(
        "ready_timeout",
        _to_positive_float,
        DEFAULT_READY_TIMEOUT,
        "seconds a new generation held to READY=1 (--wait-ready, or one that spoke "
        "sd_notify within --interval) has to report it",
        metavar="SECS",
    ),
    Option(
        "kill_old_delay",
        to_nonneg_float,
        None,
        "seconds to wait after a new generation started before signalling the old one",
        metavar="SECS",
        env=ENV_KILL_OLD_DELAY,
        # None until given: Perl exports KILL_OLD_DELAY only then.
        doc_default=f"{AUTO_RESTART_KILL_OLD_DELAY:g} with --enable-auto-restart, else 0",
    ),
    Option(
        "signal_on_hup",
        to_signal,
        DEFAULT_SIGNAL,
        "signal sent to old generations after a restart",
        metavar="SIGNAL",
    ),
    Option(
        "signal_on_term",
        to_signal,
        DEFAULT_SIGNAL,
        "signal forwarded to the generations when start_server gets TERM",
        metavar="SIGNAL",
    ),
    Option(
        "status_file",
        to_str,
        None,
        "file holding one GEN:PID line per running generation, replaced atomically",
        metavar="FILE",
    ),
    Option(
        "pid_file",
        to_str,
        None,
        "file holding start_server's pid, locked while it runs, removed at exit",
        metavar="FILE",
    ),
    Option(
        "dir",
        to_str,
        None,
        "directory the server program is started in",
        metavar="DIR",
    ),
    Option(
        "log_file",
        to_str,
        None,
        'append stdout and stderr to FILE, or pipe them to a command with "| CMD"',
        metavar="FILE",
    ),
    Option(
        "log_level",
        to_log_level,
        DEFAULT_LOG_LEVEL,
        "start_server's own messages: debug, info, warning or error",
        metavar="LEVEL",
    ),
    Option(
        "daemonize",
        to_str,
        False,
        "run in the background (fork, setsid, fork); needs --log-file",
        flag=True,
    ),
    Option(
        "envdir",
        to_str,
        None,
        "directory of environment variables (one file per variable, first line is the "
        "value), re-read before each restart",
        metavar="DIR",
        env=ENV_ENVDIR,
    ),
    Option(
        "enable_auto_restart",
        to_str,
        False,
        "restart the server program every --auto-restart-interval seconds",
        flag=True,
        env=ENV_ENABLE_AUTO_RESTART,
    ),
    Option(
        "auto_restart_interval",
        to_nonneg_float,
        None,
        "seconds between automatic restarts",
        metavar="SECS",
        env=ENV_AUTO_RESTART_INTERVAL,
        # None until given: Perl exports AUTO_RESTART_INTERVAL only then.
        doc_default=f"{DEFAULT_AUTO_RESTART_INTERVAL:g}",
    ),
    Option(
        "backlog",
        to_positive_int,
        DEFAULT_BACKLOG,
        "listen backlog",
        metavar="N",
        doc_default=DEFAULT_BACKLOG_TEXT,
    ),
    Option(
        "restart",
        to_str,
        False,
        "send HUP to the running start_server (--pid-file) and wait until the new "
        "generation is the only one (--status-file)",
        flag=True,
        cli_only=True,
    ),
    Option(
        "wait_timeout",
        to_nonneg_float,
        DEFAULT_WAIT_TIMEOUT,
        "with --restart or --stop: give up (exit 1) after this many seconds; 0 waits "
        "forever as Perl does",
        metavar="SECS",
    ),
    Option(
        "stop",
        to_str,
        False,
        "send TERM to the running start_server (--pid-file) and wait until it exited",
        flag=True,
        cli_only=True,
    ),
    Option(
        "config",
        to_str,
        None,
        "read options from the [start_server] table of this TOML file",
        metavar="FILE",
        cli_only=True,
    ),
    Option("help", to_str, False, "print this help and exit", flag=True, cli_only=True),
    Option(
        "version", to_str, False, "print the version and exit", flag=True, cli_only=True
    ),
)


class Settings(Record):
    """Every option's final value (CLI > env var > TOML > default); one field per row.

    ``Settings(name=value, ...)``: a field not given takes its row's default (a
    repeatable option's list becomes a tuple).
    """

    __slots__ = tuple(opt.name for opt in OPTIONS)

    port: tuple[PortSpec, ...]
    path: tuple[PortSpec, ...]
    interval: float
    wait_ready: bool
    ready_timeout: float
    kill_old_delay: float | None
    signal_on_hup: signal.Signals
    signal_on_term: signal.Signals
    status_file: str | None
    pid_file: str | None
    dir: str | None
    log_file: str | None
    log_level: str
    daemonize: bool
    envdir: str | None
    enable_auto_restart: bool
    auto_restart_interval: float | None
    backlog: int
    restart: bool
    wait_timeout: float
    stop: bool
    config: str | None
    help: bool
    version: bool

    def __init__(self, **values: Any) -> None:
        for opt in OPTIONS:
            default = tuple(opt.default) if opt.repeat else opt.default
            setattr(self, opt.name, values.pop(opt.name, default))
        if values:
            raise TypeError(f"unknown settings: {', '.join(sorted(values))}")

    @property
    def specs(self) -> tuple[PortSpec, ...]:
        """Every socket in SERVER_STARTER_PORT order: all --port, then all --path."""
        return self.port + self.path


def build_parser() -> OptionParser:
    """The argparse front end made from OPTIONS."""
    return OptionParser(
        "start_server",
        OPTIONS,
        usage=USAGE,
        description=DESCRIPTION,
        positionals=[("command", "...", "the server program and its arguments")],
        getopt_long=True,
        prefer=PERL_OPTIONS,
    )


def split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split at the first ``--``: (start_server's words, the command after it)."""
    words = list(argv)
    if "--" in words:
        i = words.index("--")
        return words[:i], words[i + 1 :]
    return words, []


def load(
    argv: Sequence[str], environ: Mapping[str, str]
) -> tuple[Settings, tuple[str, ...]]:
    """Parse argv (options, then the command) and merge env vars and ``--config``.

    Without ``--``, the first word that is not an option starts the command and the rest
    goes to it unparsed (Perl would parse options after it as its own). Raises
    UsageError or ConfigError.
    """
    before, after = split_command(argv)
    parser = build_parser()
    cli, positionals = parser.parse(before)
    command = list(positionals.get("command") or [])
    if command and after:
        command += ["--", *after]
    elif after:
        command = after
    toml: dict[str, Any] = {}
    if cli.get("config"):
        toml = load_toml_table(cli["config"], TOML_TABLE, OPTIONS)
    env = values_from_env(OPTIONS, environ)
    values = merge(OPTIONS, cli, env, toml)
    values["port"] = tuple(values["port"])
    values["path"] = tuple(values["path"])
    return Settings(**values), tuple(command)


def check(settings: Settings, command: Sequence[str]) -> None:
    """The cross-option rules of Perl's start_server script; raise UsageError."""
    if settings.restart and settings.stop:
        raise UsageError("--restart and --stop cannot be used together")
    if settings.restart:
        if not (settings.pid_file and settings.status_file):
            raise UsageError(
                "--restart option requires --pid-file and --status-file to be set as well"
            )
        return
    if settings.stop:
        if not settings.pid_file:
            raise UsageError("--stop option requires --pid-file to be set as well")
        return
    if settings.daemonize and not settings.log_file:
        raise UsageError("--daemonize requires --log-file")
    if not command:
        # The CLI prints the usage line after every UsageError: not here too.
        raise UsageError("server program not specified")

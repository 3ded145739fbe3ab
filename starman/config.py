"""The starman OPTIONS table: one row per option gives the parser, --help, TOML keys and Settings.

Pure: no sockets, no processes. The converters live in ``starman.optionvalues``;
``starman.configload`` builds a Settings from argv, the environment and --config.
"""

from __future__ import annotations

from typing import Any

from starman.access import ACCESS_LOG_DIRECTIVES, parse_access_log_format
from starman.optionvalues import (
    DEFAULT_PORT,
    ListenSpec,
    parse_listen,
    to_ip_list,
    to_loader,
    to_mount_path,
    to_port,
    to_server,
)
from starman.pooloptions import POOL_OPTIONS
from start_server.common.options import (
    Option,
    OptionParser,
    to_log_level,
    to_nonneg_float,
    to_nonneg_int,
    to_octal,
    to_positive_int,
    to_size,
    to_str,
)
from start_server.common.record import Record

__all__ = [
    "DEFAULT_PORT",
    "DESCRIPTION",
    "OPTIONS",
    "TOML_TABLE",
    "USAGE",
    "ListenSpec",
    "Settings",
    "make_parser",
    "parse_listen",
    "tuple_if_list",
]

TOML_TABLE = "starman"


# --------------------------------------------------------------------------- the table

OPTIONS: tuple[Option, ...] = (
    # -- the application
    Option(
        "app",
        to_str,
        None,
        "the app: path/to/app.py, pkg.mod:attr, pkg.mod (its application, else its app)"
        " or 'pkg.mod:create_app()' (a factory call)",
        metavar="APP",
        short=("-a",),
        doc_default="./app.py",  # None in Settings: -e EXPR alone needs no file
    ),
    Option(
        "eval",
        to_str,
        None,
        "a Python expression giving the app; with APP, a middleware f(app) -> app",
        metavar="EXPR",
        short=("-e",),
    ),
    Option(
        "factory",
        to_str,
        False,
        "APP names a factory: call it with no arguments to get the app (or write APP as"
        " 'pkg.mod:create_app()')",
        flag=True,
    ),
    Option(
        "include",
        to_str,
        [],
        "add DIR to sys.path before loading anything (repeatable)",
        metavar="DIR",
        repeat=True,
        short=("-I",),
    ),
    Option(
        "module",
        to_str,
        [],
        "import MODULE in the master before forking (repeatable; MOD=a,b lists are ignored)",
        metavar="MODULE",
        repeat=True,
        short=("-M",),
    ),
    Option(
        "preload_app",
        to_str,
        False,
        "load the app in the master before forking (copy-on-write; HUP does not reload code)",
        flag=True,
        aliases=("--preload",),  # gunicorn's
    ),
    Option(
        "loader",
        to_loader,
        "Delayed",
        "Perl's -L: Delayed or Plack::Loader (= --preload-app)",
        metavar="NAME",
        short=("-L",),
    ),
    Option(
        "env",
        to_str,
        "deployment",
        "sets STARMAN_ENV; 'development' adds validation, tracebacks and an access log",
        metavar="NAME",
        short=("-E",),
        env="STARMAN_ENV",
    ),
    Option(
        "default_middleware",
        to_str,
        True,
        "enable the development middleware when --env is development",
        flag=True,
        negatable=True,
    ),
    Option(
        "path",
        to_mount_path,
        None,
        "mount the app under /PREFIX (others get 404)",
        metavar="/PREFIX",
    ),
    # -- where to listen
    Option(
        "listen",
        parse_listen,
        [],
        "HOST:PORT, :PORT, [IPV6]:PORT, unix:PATH or PATH (repeatable)",
        metavar="SPEC",
        repeat=True,
        aliases=("--bind",),  # gunicorn's spellings
        short=("-l", "-b"),
        # Empty in Settings: --host/--port and --socket are used when --listen is not.
        doc_default=f":{DEFAULT_PORT}",
    ),
    Option(
        "host",
        to_str,
        None,
        "host to bind, combined with --port",
        metavar="HOST",
        short=("-o",),
    ),
    Option(
        "port",
        to_port,
        None,
        "TCP port to bind",
        metavar="PORT",
        short=("-p",),
        doc_default=str(DEFAULT_PORT),  # None in Settings: --listen wins when given
    ),
    Option(
        "socket",
        to_str,
        None,
        "UNIX socket path to bind",
        metavar="PATH",
        short=("-S",),
    ),
    Option(
        "backlog", to_positive_int, 1024, "listen(2) backlog for sockets starman binds"
    ),
    Option(
        "socket_mode",
        to_octal,
        None,
        "permissions of UNIX sockets starman binds, e.g. 660",
        metavar="OCTAL",
        doc_default="from the umask",
    ),
    Option(
        "reuse_port",
        to_str,
        False,
        "set SO_REUSEPORT on sockets starman binds",
        flag=True,
    ),
    Option(
        "defer_accept",
        to_nonneg_float,
        0.0,
        "TCP_DEFER_ACCEPT seconds on sockets starman binds (0 = off)",
        metavar="S",
    ),
    Option(
        "server",
        to_server,
        "Starman",
        "server class (only Starman)",
        metavar="NAME",
        short=("-s",),
    ),
    Option(
        "ssl",
        to_str,
        False,
        "TLS on every TCP listener (--enable-ssl; :ssl in --listen enables one)",
        flag=True,
        negatable=True,
    ),
    Option(
        "ssl_cert",
        to_str,
        None,
        "TLS certificate chain file (PEM), needed for TLS",
        metavar="FILE",
    ),
    Option(
        "ssl_key",
        to_str,
        None,
        "TLS private key file (PEM)",
        metavar="FILE",
        doc_default="the key in --ssl-cert",
    ),
    *POOL_OPTIONS,  # the process pool (starman.pooloptions)
    # -- HTTP
    Option(
        "keepalive",
        to_str,
        True,
        "persistent connections (--disable-keepalive turns them off)",
        flag=True,
        negatable=True,
    ),
    Option(
        "keepalive_timeout",
        to_nonneg_float,
        1.0,
        "seconds to wait for the next request on a persistent connection",
        metavar="S",
    ),
    Option(
        "max_keepalive_reqs", to_nonneg_int, 0, "requests per connection (0 = no limit)"
    ),
    Option(
        "read_timeout",
        to_nonneg_float,
        5.0,
        "seconds to receive a whole request head",
        metavar="S",
    ),
    Option(
        "body_timeout",
        to_nonneg_float,
        30.0,
        "inactivity limit while receiving a request body",
        metavar="S",
    ),
    Option(
        "write_timeout",
        to_nonneg_float,
        30.0,
        "inactivity limit while writing a response",
        metavar="S",
    ),
    Option(
        "max_request_body",
        to_size,
        1 << 30,
        "larger request bodies get 413",
        metavar="BYTES",
    ),
    Option(
        "body_buffer_size",
        to_size,
        1 << 20,
        "request bodies above this spill to a temp file",
        metavar="BYTES",
    ),
    Option(
        "tmp_dir",
        to_str,
        None,
        "directory for spilled request bodies",
        metavar="DIR",
        doc_default="$TMPDIR, else /tmp",
    ),
    Option("limit_request_line", to_positive_int, 8190, "longer request lines get 414"),
    Option("limit_request_fields", to_positive_int, 100, "more header fields get 431"),
    Option(
        "limit_request_field_size",
        to_positive_int,
        8190,
        "a longer header line gets 431",
    ),
    Option(
        "max_connections_per_worker",
        to_positive_int,
        256,
        "open connections per worker",
    ),
    Option(
        "forwarded_allow_ips",
        to_ip_list,
        (),
        "comma-separated peers trusted for X-Forwarded-Proto",
        metavar="LIST",
    ),
    # -- process environment
    Option(
        "daemonize",
        to_str,
        False,
        "detach: double fork, setsid, stdio to /dev/null",
        flag=True,
        short=("-D",),
    ),
    Option("user", to_str, None, "switch to USER after binding", metavar="USER"),
    Option("group", to_str, None, "switch to GROUP after binding", metavar="GROUP"),
    Option(
        "pid",
        to_str,
        None,
        "write the master pid to FILE (removed on exit)",
        metavar="FILE",
    ),
    Option(
        "error_log",
        to_str,
        None,
        "append stderr of master and workers to FILE (reopened on USR1)",
        metavar="FILE",
    ),
    Option(
        "access_log",
        to_str,
        None,
        "append an Apache combined line per request to FILE (reopened on USR1; - for"
        " standard output)",
        metavar="FILE",
    ),
    Option(
        "access_log_format",
        parse_access_log_format,
        "combined",
        "access log line: 'combined', 'common' or a format of "
        + " ".join("%" + d for d in ACCESS_LOG_DIRECTIVES),
        metavar="FORMAT",
    ),
    Option(
        "log_level",
        to_log_level,
        "info",
        "error log threshold: debug, info, warning or error (STARMAN_DEBUG=1 means debug)",
        metavar="LEVEL",
    ),
    Option(
        "proctitle",
        to_str,
        True,
        "set process titles (--disable-proctitle keeps the command line)",
        flag=True,
        negatable=True,
    ),
    # -- unsupported Perl options, kept so their error is helpful
    Option(
        "reload",
        to_str,
        False,
        "not supported: use kill -HUP",
        flag=True,
        short=("-r",),
    ),
    Option(
        "reload_dirs",
        to_str,
        None,
        "not supported: use kill -HUP",
        metavar="DIRS",
        aliases=("--Reload",),
        short=("-R",),
    ),
    # -- this program
    Option(
        "config",
        to_str,
        None,
        "read options from the [starman] table of FILE.toml",
        metavar="FILE.toml",
        cli_only=True,
    ),
    Option(
        "help",
        to_str,
        False,
        "show this help and exit",
        flag=True,
        short=("-h",),
        cli_only=True,
    ),
    Option(
        "version",
        to_str,
        False,
        "show the version and exit",
        flag=True,
        short=("-v",),
        cli_only=True,
    ),
)


class Settings(Record):
    """Every starman option after merging CLI > env > TOML > default (fields = OPTIONS names).

    ``Settings(name=value, ...)``: a field not given takes its row's default (a repeatable
    option's list becomes a tuple). Values are never changed in place: ``replace()``.
    """

    __slots__ = tuple(opt.name for opt in OPTIONS)

    app: str | None
    eval: str | None
    factory: bool
    include: tuple[str, ...]
    module: tuple[str, ...]
    preload_app: bool
    loader: str
    env: str
    default_middleware: bool
    path: str | None
    listen: tuple[ListenSpec, ...]
    host: str | None
    port: int | None
    socket: str | None
    backlog: int
    socket_mode: int | None
    reuse_port: bool
    defer_accept: float
    server: str
    ssl: bool
    ssl_cert: str | None
    ssl_key: str | None
    workers: int
    max_requests: int
    max_requests_jitter: int
    max_worker_memory: float | None
    max_worker_lifetime: float | None
    graceful_timeout: float
    timeout: float
    spawn_interval: float
    term_immediate: bool
    status_file: str | None
    keepalive: bool
    keepalive_timeout: float
    max_keepalive_reqs: int
    read_timeout: float
    body_timeout: float
    write_timeout: float
    max_request_body: int
    body_buffer_size: int
    tmp_dir: str | None
    limit_request_line: int
    limit_request_fields: int
    limit_request_field_size: int
    max_connections_per_worker: int
    forwarded_allow_ips: tuple[str, ...]
    daemonize: bool
    user: str | None
    group: str | None
    pid: str | None
    error_log: str | None
    access_log: str | None
    access_log_format: str
    log_level: str
    proctitle: bool
    reload: bool
    reload_dirs: str | None
    config: str | None
    help: bool
    version: bool

    def __init__(self, **values: Any) -> None:
        for opt in OPTIONS:
            setattr(self, opt.name, values.pop(opt.name, tuple_if_list(opt.default)))
        if values:
            raise TypeError(f"unknown settings: {', '.join(sorted(values))}")

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied."""
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return Settings(**values)

    def listen_specs(self) -> tuple[ListenSpec, ...]:
        """The sockets to bind when none are inherited: --listen, then --host/--port, --socket."""
        specs = list(self.listen)
        if self.host is not None or self.port is not None:
            port = DEFAULT_PORT if self.port is None else self.port
            specs.append(ListenSpec(host=self.host or None, port=port))
        if self.socket is not None:
            specs.append(ListenSpec(path=self.socket))
        if not specs:
            specs.append(ListenSpec(host=None, port=DEFAULT_PORT))
        return tuple(specs)


USAGE = "starman [options] [APP]"
DESCRIPTION = (
    "A preforking WSGI HTTP/1.1 server. APP is path/to/app.py, pkg.mod:attr or pkg.mod (default ./app.py). "
    "Listening sockets come from SERVER_STARTER_PORT (start_server), then LISTEN_FDS (systemd), then --listen."
)


def make_parser() -> OptionParser:
    """The command-line parser built from OPTIONS."""
    return OptionParser(
        "starman",
        OPTIONS,
        usage=USAGE,
        description=DESCRIPTION,
        positionals=[("APP", "?", "the app, as --app")],
    )


def tuple_if_list(value: Any) -> Any:
    """A repeatable option's list as a tuple (Settings values are never changed in place)."""
    return tuple(value) if isinstance(value, list) else value

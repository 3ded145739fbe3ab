"""Build the starman Settings from argv, the environment and --config FILE.toml.

Check the words (one APP; an unknown option, Perl's or gunicorn's, gets a hint naming only
what works), parse, merge (CLI > env > TOML > default) and validate. Raises UsageError or
ConfigError; prints nothing (cli.py does).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from starman.config import OPTIONS, TOML_TABLE, Settings, make_parser, tuple_if_list
from start_server.common.options import (
    ConfigError,
    UsageError,
    load_toml_table,
    merge,
    to_bool,
    values_from_env,
)

__all__ = ["ConfigError", "UsageError", "debug_enabled", "load_settings"]


# Perl spellings that have no meaning here: reject with a hint rather than "unknown option".
_POOL_KEYS = (
    "--min-servers",
    "--max-servers",
    "--min-spare-servers",
    "--max-spare-servers",
)
_NET_SERVER_HINTS = {
    "log_file": "--error-log",
    "log_level": "--log-level",
    "pid_file": "--pid",
    "user": "--user",
    "group": "--group",
    "background": "--daemonize",
    "setsid": "--daemonize",
    "max_requests": "--max-requests",
    "max_servers": "--workers",
    "min_servers": "--workers",
}
# gunicorn spellings that are not ours (the ones that are, -b/--bind, -w and --preload,
# are aliases in the option table): what to write instead (docs/migrating.md).
_GUNICORN_HINTS = {
    "--access-logfile": "use --access-log (- for standard output)",
    "--access-logformat": "use --access-log-format (Apache directives such as %h, not %(h)s)",
    "--error-logfile": "use --error-log",
    "--log-file": "use --error-log",
    "--daemon": "use --daemonize",
    "--keep-alive": "use --keepalive-timeout",
    "--certfile": "use --ssl-cert",
    "--keyfile": "use --ssl-key",
    "--worker-connections": "use --max-connections-per-worker",
    "--limit-request-field_size": "use --limit-request-field-size",
    "--pythonpath": "use -I/--include DIR, once per directory",
    "--chdir": "use start_server --dir, or systemd's WorkingDirectory=",
    "--worker-class": "not supported: every worker runs one event loop",
    "-k": "not supported: every worker runs one event loop",
    "--threads": "not supported: every worker runs one event loop",
    "-c": "use --config FILE.toml (a [starman] table, not Python)",
    "-t": "use --timeout",
    "-u": "use --user",
    "-g": "use --group",
}
# Rows kept only so that their error is helpful: never suggested.
_UNSUPPORTED_ROWS = ("reload", "reload_dirs")
# gunicorn's -e KEY=VALUE: never a Python expression (that would need :=).
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=[^=].*|[A-Za-z_][A-Za-z0-9_]*=")
_NEGATIVE_NUMBER = re.compile(r"-[0-9]+(\.[0-9]*)?")


def _unknown(name: str) -> UsageError:
    if name in _POOL_KEYS:
        return UsageError(
            f"{name} is not supported (the pool is fixed): use --workers / TTIN / TTOU"
        )
    if name.startswith("--net-server-"):
        key = name[len("--net-server-") :].replace("-", "_")
        hint = _NET_SERVER_HINTS.get(key)
        extra = f": use {hint}" if hint else ""
        return UsageError(f"{name} is not supported (no Net::Server here){extra}")
    hint = _GUNICORN_HINTS.get(name)
    if hint is not None:
        return UsageError(f"unknown option {name!r} (gunicorn's): {hint}")
    if name.startswith("--"):
        import difflib  # only for this error

        working = [
            spelling
            for opt in OPTIONS
            if opt.name not in _UNSUPPORTED_ROWS
            for spelling in opt.spellings
            if spelling.startswith("--")
        ]
        close = difflib.get_close_matches(name, working, n=1, cutoff=0.6)
        if close:
            return UsageError(f"unknown option {name!r} (did you mean {close[0]}?)")
    return UsageError(f"unknown option {name!r}")


def _check_words(argv: Sequence[str]) -> None:
    """Walk argv as the parser will: raise UsageError for an unknown option (with a hint
    that names only what works) and for more than one APP."""
    by_spelling = {s: opt for opt in OPTIONS for s in opt.spellings}
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positionals += argv[i:]
            break
        if not arg.startswith("-") or arg == "-" or _NEGATIVE_NUMBER.fullmatch(arg):
            positionals.append(arg)
            continue
        name, eq, _value = (
            arg.partition("=") if arg.startswith("--") else (arg[:2], "", "")
        )
        opt = by_spelling.get(name)
        if opt is None:
            raise _unknown(name)
        if not opt.flag and not eq and len(arg) == len(name):
            i += 1  # its value, in the next word
    if len(positionals) > 1:
        listed = ", ".join(repr(p) for p in positionals)
        raise UsageError(f"one APP only, got {len(positionals)}: {listed}")


def _check_toml_keys(path: str) -> None:
    """An unknown key of the [starman] table, with a hint that names only a working key
    (gunicorn's ``bind`` and ``preload`` included). Unreadable files are left to
    load_toml_table, which says why."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on old Pythons only
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            section = tomllib.load(f).get(TOML_TABLE)
    except (OSError, tomllib.TOMLDecodeError):
        return
    if not isinstance(section, dict):
        return
    working = {
        o.name: o for o in OPTIONS if not o.cli_only and o.name not in _UNSUPPORTED_ROWS
    }
    aliases = {
        a[2:].replace("-", "_"): o.name
        for o in working.values()
        for a in o.aliases
        if a.startswith("--")
    }
    for key in section:
        name = key.replace("-", "_")
        if name in working or name in _UNSUPPORTED_ROWS:
            continue  # the unsupported ones get their own error, after loading
        close = [aliases[name]] if name in aliases else []
        if not close:
            import difflib  # only for this error

            close = difflib.get_close_matches(name, list(working), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0].replace('_', '-')!r}?)" if close else ""
        raise ConfigError(f"{path}: unknown key {key!r} in [{TOML_TABLE}]{hint}")


def load_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Parse argv (and --config FILE.toml); raise UsageError or ConfigError."""
    _check_words(argv)
    cli, positionals = make_parser().parse(argv)
    toml: dict[str, Any] = {}
    config_path = cli.get("config")
    if config_path and config_path.endswith(".py"):
        raise UsageError(
            f"--config {config_path!r}: expected a TOML file with a [starman] table"
            " (gunicorn's Python config files are not read)"
        )
    if config_path:
        _check_toml_keys(config_path)
        toml = load_toml_table(config_path, TOML_TABLE, OPTIONS)
    env = values_from_env(OPTIONS, environ)
    if debug_enabled(environ):
        env["log_level"] = "debug"
    values = merge(OPTIONS, cli, env, toml)
    positional_app = positionals.get("APP")
    if positional_app is not None:
        if cli.get("app") is not None:
            raise UsageError("give the app either as APP or with --app, not both")
        values["app"] = positional_app
    settings = Settings(**{k: tuple_if_list(v) for k, v in values.items()})
    _validate(settings)
    if settings.loader == "Plack::Loader" and not settings.preload_app:
        settings = settings.replace(preload_app=True)
    return settings


def _validate(s: Settings) -> None:
    if s.help or s.version:
        return
    if s.reload or s.reload_dirs is not None:
        raise UsageError(
            "-r/--reload and -R/--Reload are not supported: reload gracefully with kill -HUP <master pid>"
        )
    if (s.ssl or any(spec.ssl for spec in s.listen)) and not s.ssl_cert:
        raise UsageError("TLS (--enable-ssl or :ssl) needs --ssl-cert (and --ssl-key)")
    if s.eval is not None and _ASSIGNMENT.fullmatch(s.eval):
        raise UsageError(
            f"-e {s.eval!r}: -e is Perl's, a Python expression giving the app; to set an"
            " environment variable (gunicorn's -e KEY=VALUE), export it before starting"
        )
    if "=" in s.env:
        raise UsageError(
            f"--env {s.env!r}: --env names the environment (sets STARMAN_ENV, Perl's -E);"
            " to set a variable (gunicorn's --env KEY=VALUE), export it before starting"
        )
    if s.app is not None and s.app.strip() == "":
        raise UsageError("APP is empty: expected path/to/app.py or pkg.mod:attr")


def debug_enabled(environ: Mapping[str, str]) -> bool:
    """True when STARMAN_DEBUG asks for DEBUG logging."""
    raw = environ.get("STARMAN_DEBUG", "")
    try:
        return to_bool(raw)
    except ValueError:
        return True

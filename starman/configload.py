"""Build the starman Settings from argv, the environment and --config FILE.toml.

Parse, merge (CLI > env > TOML > default), validate, and reject Perl-only spellings with a
hint. Raises UsageError or ConfigError; prints nothing (cli.py does).
"""

from __future__ import annotations

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


def _reject_perl_only(argv: Sequence[str]) -> None:
    for arg in argv:
        if arg == "--":
            return
        name = arg.split("=", 1)[0]
        if name in _POOL_KEYS:
            raise UsageError(
                f"{name} is not supported (the pool is fixed): use --workers / TTIN / TTOU"
            )
        if name.startswith("--net-server-"):
            key = name[len("--net-server-") :].replace("-", "_")
            hint = _NET_SERVER_HINTS.get(key)
            extra = f": use {hint}" if hint else ""
            raise UsageError(f"{name} is not supported (no Net::Server here){extra}")


def load_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Parse argv (and --config FILE.toml); raise UsageError or ConfigError."""
    _reject_perl_only(argv)
    cli, positionals = make_parser().parse(argv)
    toml: dict[str, Any] = {}
    config_path = cli.get("config")
    if config_path:
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
    if s.app is not None and s.app.strip() == "":
        raise UsageError("APP is empty: expected path/to/app.py or pkg.mod:attr")


def debug_enabled(environ: Mapping[str, str]) -> bool:
    """True when STARMAN_DEBUG asks for DEBUG logging."""
    raw = environ.get("STARMAN_DEBUG", "")
    try:
        return to_bool(raw)
    except ValueError:
        return True

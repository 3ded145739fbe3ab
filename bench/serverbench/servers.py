"""The servers compared: how each is started for a scenario, and whether it can run here."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .places import APPS, HOST, NGINX, PERL_STARMAN
from .scenarios import Scenario


@dataclass
class Ctx:
    port: int
    workers: int
    scenario: Scenario
    tmpdir: str
    args: argparse.Namespace

    @property
    def module_app(self) -> str:
        return f"{self.scenario.module}:app"

    @property
    def app_file(self) -> str:
        return os.path.join(APPS, self.scenario.module + ".py")


@dataclass
class Server:
    name: str
    argv: Callable[[Ctx], list[str]]
    how: str
    available: Callable[[argparse.Namespace], str | None]
    runs: Callable[[Scenario, argparse.Namespace], str | None] = lambda sc, a: None
    setup: Callable[[Ctx], None] | None = None
    stop_signal: int = signal.SIGTERM


def exe_missing(path: str) -> str | None:
    return None if os.access(path, os.X_OK) else f"{path} not found"


_import_cache: dict[tuple[str, str], str | None] = {}


def _can_import(python: str, module: str) -> str | None:
    key = (python, module)
    if key not in _import_cache:
        try:
            r = subprocess.run(
                [python, "-c", f"import {module}"],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=APPS,
            )
            err = (r.stderr.strip().splitlines() or ["?"])[-1]
            _import_cache[key] = None if r.returncode == 0 else f"{python}: {err}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            _import_cache[key] = f"{python}: {exc}"
    return _import_cache[key]


def _flask_with(
    python: Callable[[argparse.Namespace], str],
) -> Callable[[Scenario, argparse.Namespace], str | None]:
    def runs(sc: Scenario, a: argparse.Namespace) -> str | None:
        return _can_import(python(a), "flask") if sc.name == "flask" else None

    return runs


def _ours_python(a: argparse.Namespace) -> str:
    return str(a.ours_python)


def peer_python(a: argparse.Namespace) -> str:
    return os.path.join(a.peer_bin, "python")


def _template(
    tmpl: str, ctx: Ctx, extra: Sequence[str], python: str | None = None
) -> list[str]:
    return shlex.split(
        tmpl.format(
            python=shlex.quote(python or ctx.args.ours_python),
            workers=ctx.workers,
            host=HOST,
            port=ctx.port,
            app=ctx.module_app,
            app_file=shlex.quote(ctx.app_file),
            module=ctx.scenario.module,
            extra=shlex.join(extra),
        )
    )


def _ours_extra(ctx: Ctx) -> list[str]:
    return shlex.split(ctx.args.ours_extra)


def _nginx_setup(ctx: Ctx) -> None:
    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(ctx.tmpdir, d), exist_ok=True)
    t = ctx.tmpdir
    conf = f"""# written by bench/bench.py: no application at all, the ceiling
worker_processes {ctx.workers};
daemon off;
master_process on;
pid {t}/nginx.pid;
error_log {t}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {t}/client_body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    server {{
        listen {HOST}:{ctx.port};
        location / {{ default_type text/plain; return 200 'Hello World'; }}
    }}
}}
"""
    with open(os.path.join(t, "nginx.conf"), "w") as f:
        f.write(conf)


def _only(*names: str) -> Callable[[Scenario, argparse.Namespace], str | None]:
    def runs(sc: Scenario, a: argparse.Namespace) -> str | None:
        return None if sc.name in names else f"runs only {', '.join(names)}"

    return runs


def _perl_runs(sc: Scenario, a: argparse.Namespace) -> str | None:
    return None if sc.psgi else "no .psgi twin (Python-only app)"


def _ours_available(a: argparse.Namespace) -> str | None:
    return None if a.ours_cmd else _can_import(a.ours_python, "starman")


def _alt_python(a: argparse.Namespace) -> str:
    return str(a.alt_python)


def _alt_available(a: argparse.Namespace) -> str | None:
    if not a.alt_python:
        return "no --alt-python given"
    return _can_import(a.alt_python, "starman")


def servers() -> list[Server]:
    def pb(a: argparse.Namespace, exe: str) -> str:
        return os.path.join(a.peer_bin, exe)

    return [
        Server(
            "ours",
            lambda c: _template(c.args.ours_cmd or OURS_CMD, c, _ours_extra(c)),
            "python -m starman (or --ours-cmd), --ours-extra appended",
            _ours_available,
            _flask_with(_ours_python),
        ),
        Server(
            "ours-ss",
            lambda c: _template(c.args.ours_ss_cmd, c, _ours_extra(c)),
            "ours under python -m start_server (start_server RSS column)",
            lambda a: _can_import(a.ours_python, "start_server") or _ours_available(a),
            _only("hello"),
        ),
        Server(
            "ours-preload",
            lambda c: _template(
                c.args.ours_cmd or OURS_CMD, c, ["--preload-app", *_ours_extra(c)]
            ),
            "ours with --preload-app",
            _ours_available,
            _only("ab"),
        ),
        Server(
            "ours-norecycle",
            lambda c: _template(
                c.args.ours_cmd or OURS_CMD, c, ["--max-requests", "0", *_ours_extra(c)]
            ),
            "ours with --max-requests 0: no recycling, as granian, bjoern and gunicorn",
            _ours_available,
            _only("hello"),
        ),
        Server(
            "ours-alt",
            lambda c: _template(OURS_CMD, c, _ours_extra(c), c.args.alt_python),
            "ours on --alt-python (another CPython), --ours-extra appended",
            _alt_available,
            _flask_with(_alt_python),
        ),
        Server(
            "ours-preload-alt",
            lambda c: _template(
                OURS_CMD, c, ["--preload-app", *_ours_extra(c)], c.args.alt_python
            ),
            "ours with --preload-app on --alt-python",
            _alt_available,
            _only("ab"),
        ),
        Server(
            "gunicorn-sync",
            lambda c: [
                pb(c.args, "gunicorn"),
                *("-w", str(c.workers), "-b", f"{HOST}:{c.port}", "--chdir", APPS),
                c.module_app,
            ],
            "gunicorn sync worker (no keep-alive by design)",
            lambda a: exe_missing(pb(a, "gunicorn")),
            _flask_with(peer_python),
        ),
        Server(
            "gunicorn-gthread",
            lambda c: [
                pb(c.args, "gunicorn"),
                *("-k", "gthread", "--threads", str(c.args.threads)),
                *("-w", str(c.workers), "-b", f"{HOST}:{c.port}", "--chdir", APPS),
                c.module_app,
            ],
            "gunicorn gthread worker, --threads per worker",
            lambda a: exe_missing(pb(a, "gunicorn")),
            _flask_with(peer_python),
        ),
        Server(
            "granian-wsgi",
            lambda c: [
                pb(c.args, "granian"),
                *("--interface", "wsgi", "--workers", str(c.workers)),
                *("--host", HOST, "--port", str(c.port), "--no-access-log"),
                *("--working-dir", APPS, c.module_app),
            ],
            "granian --interface wsgi, defaults otherwise",
            lambda a: exe_missing(pb(a, "granian")),
            _flask_with(peer_python),
        ),
        Server(
            "bjoern",
            lambda c: [
                pb(c.args, "python"),
                os.path.join(APPS, "bjoern_prefork.py"),
                *(str(c.port), str(c.workers), c.module_app),
            ],
            "bjoern (C): bound once, N forked processes each running its loop",
            lambda a: _can_import(pb(a, "python"), "bjoern"),
            _only("hello"),
        ),
        Server(
            "starman-perl",
            lambda c: [
                PERL_STARMAN,
                *("--workers", str(c.workers), "--listen", f"{HOST}:{c.port}"),
                os.path.join(APPS, c.scenario.psgi or "-"),
            ],
            "Perl Starman defaults (keep-alive, --max-requests 1000, app loaded per child)",
            lambda a: exe_missing(PERL_STARMAN),
            _perl_runs,
        ),
        Server(
            "nginx-return",
            lambda c: [
                *(NGINX, "-p", c.tmpdir, "-e", f"{c.tmpdir}/error.log"),
                *("-c", f"{c.tmpdir}/nginx.conf"),
            ],
            "nginx 'return 200': worker_processes N, access_log off",
            lambda a: exe_missing(NGINX),
            _only("hello", "ab"),
            setup=_nginx_setup,
        ),
    ]


OURS_CMD = (
    "{python} -m starman --workers {workers} --listen {host}:{port} {extra} {app_file}"
)


OURS_SS_CMD = (
    "{python} -m start_server --port {host}:{port} -- "
    "{python} -m starman --workers {workers} {extra} {app_file}"
)

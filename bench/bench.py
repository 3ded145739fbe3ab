#!/usr/bin/env python3
"""Throughput, latency, CPU and memory of ours beside gunicorn, granian, Perl Starman and nginx.

Runs with any python that has psutil (the repo venv, or the peers' venv)::

    python bench/bench.py --quick --servers gunicorn-sync,nginx-return        # smoke run, ~1 min
    python bench/bench.py --out /tmp/bench.json                               # everything, 3 rounds
    python bench/bench.py --servers ours --ours-extra='--max-requests 0' --out /tmp/o.json
    python bench/bench.py --report /tmp/peers.json /tmp/o.json --svg /tmp/b.svg  # merged table

Servers (``--list`` shows which are available here): ``ours`` (``{python} -m starman``, or
``--ours-cmd``), ``ours-ss`` (ours under ``python -m start_server``: its own RSS is the
``start_server RSS`` column), ``ours-norecycle`` (ours with ``--max-requests 0``, hello only:
the cost of the default recycling, in the same run), ``ours-preload`` (ours with
``--preload-app``, ab scenario only),
``ours-alt`` and ``ours-preload-alt`` (the same two on ``--alt-python``, a second interpreter
with starman installed, e.g. a CPython 3.13 venv: both interpreters in one interleaved run),
``gunicorn-sync``, ``gunicorn-gthread``, ``granian-wsgi``, ``bjoern``, ``starman-perl`` (/usr/bin/starman
with ``.psgi`` twins of the apps) and ``nginx-return`` (``return 200``: the ceiling, hello only).

Scenarios (apps in bench/apps/): ``hello`` (wrk keep-alive c10, ``Connection: close`` c10,
keep-alive c100, then the conns-served probe: 10 and 100 closed-loop keep-alive connections,
how many got at least one answer), ``big`` (1 MB response), ``post`` (100 KB POST body, a wrk
lua script), ``file`` (``wsgi.file_wrapper`` of a 1 MB file), ``flask`` (a Flask hello) and
``ab`` (the seed's ``ab -c 10 -t 1 -k`` against ``--ab-workers`` 10 workers, then a
``--warm-requests`` pass, after which worker USS and tree PSS are sampled).

Per pass, server CPU is the sum of user+system (+reaped children) over the server's whole
process tree (psutil) before and after, divided by the requests answered. Memory: psutil
``memory_full_info`` of every process in the tree (master = parent of the workers, workers =
leaves, tree PSS = sum). Servers run in interleaved rounds (every server once per scenario,
then again); the table shows per-metric medians. Results go to JSON after every run.

Only 127.0.0.1 is contacted. Servers are started in their own session, stopped by signalling
their pid and then SIGKILL to their process group. Every wait and subprocess is bounded.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import platform
import re
import resource
import selectors
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional
from xml.sax.saxutils import escape

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
APPS = os.path.join(HERE, "apps")
HOST = "127.0.0.1"
WRK = "/usr/bin/wrk"
AB = "/usr/bin/ab"
PERL_STARMAN = "/usr/bin/starman"
NGINX = "/usr/sbin/nginx"
HELLO = b"Hello World"
BIG = 1 << 20
POST_SIZE = 100 * 1024
READY_TIMEOUT_S = 30.0
SETTLE_MAX_S = 10.0
STOP_TIMEOUT_S = 10.0

Metrics = dict[str, Optional[float]]

# --------------------------------------------------------------------------- parsing (pure)

_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def duration_ms(text: str) -> float | None:
    """wrk's latency strings ('812.00us', '1.50ms', '2.01s', '1.00m') in milliseconds."""
    m = re.fullmatch(r"\s*([\d.]+)\s*(us|ms|s|m|h)\s*", text)
    if not m:
        return None
    return float(m.group(1)) * _TIME_UNITS_MS[m.group(2)]


def parse_wrk(out: str) -> Metrics:
    """The figures of one ``wrk --latency`` run. Missing figures are None, error counts 0."""
    r: Metrics = {
        "rps": None,
        "requests": None,
        "avg_ms": None,
        "max_ms": None,
        "p50_ms": None,
        "p90_ms": None,
        "p99_ms": None,
    }
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"^\s*(\d+) requests in ", out, re.M)
    if m:
        r["requests"] = float(m.group(1))
    m = re.search(r"^\s+Latency\s+(\S+)\s+\S+\s+(\S+)", out, re.M)
    if m:
        r["avg_ms"], r["max_ms"] = duration_ms(m.group(1)), duration_ms(m.group(2))
    for pct, val in re.findall(r"^\s+(50|90|99)(?:\.0+)?%\s+(\S+)", out, re.M):
        r[f"p{pct}_ms"] = duration_ms(val)
    errs = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    m = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if m:
        errs = dict(zip(errs, map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non2xx = int(m.group(1)) if m else 0
    for k, v in errs.items():
        r[f"err_{k}"] = float(v)
    r["non_2xx"] = float(non2xx)
    r["errors"] = float(sum(errs.values()) + non2xx)
    return r


def parse_ab(out: str) -> Metrics:
    """The figures of one ``ab`` run (percentiles are whole milliseconds in ab)."""

    def num(pattern: str) -> float | None:
        m = re.search(pattern, out, re.M)
        return float(m.group(1)) if m else None

    r: Metrics = {
        "rps": num(r"^Requests per second:\s+([\d.]+)"),
        "requests": num(r"^Complete requests:\s+(\d+)"),
        "failed": num(r"^Failed requests:\s+(\d+)"),
        "non_2xx": num(r"^Non-2xx responses:\s+(\d+)") or 0.0,
        "keepalive_requests": num(r"^Keep-Alive requests:\s+(\d+)"),
        "time_s": num(r"^Time taken for tests:\s+([\d.]+) seconds"),
        "avg_ms": num(r"^Time per request:\s+([\d.]+) \[ms\] \(mean\)$"),
        "p50_ms": num(r"^\s+50%\s+(\d+)"),
        "p90_ms": num(r"^\s+90%\s+(\d+)"),
        "p99_ms": num(r"^\s+99%\s+(\d+)"),
        "max_ms": num(r"^\s+100%\s+(\d+)"),
    }
    r["errors"] = (r["failed"] or 0.0) + (r["non_2xx"] or 0.0)
    if r["requests"] is None:  # ab gave up (e.g. "apr_socket_recv: Connection reset")
        r["errors"] = None
    return r


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values that are not None (None when there are none)."""
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def median_merge(rounds: Sequence[Mapping[str, float | None]]) -> Metrics:
    """Per-metric medians over rounds: every key seen in any round, Nones ignored."""
    keys: list[str] = []
    for r in rounds:
        keys.extend(k for k in r if k not in keys)
    return {k: median(r.get(k) for r in rounds) for k in keys}


def flatten(run: Mapping[str, Any]) -> Metrics:
    """The scalar metrics of one run as 'section.metric' keys (what gets median-merged)."""
    flat: Metrics = {}
    for pname, p in run.get("passes", {}).items():
        for k, v in p.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                flat[f"{pname}.{k}"] = float(v)
    for cname, probe in run.get("served", {}).items():
        flat[f"served.{cname}"] = float(probe["served"])
        flat[f"served.{cname}.connections"] = float(probe["connections"])
    for k, v in run.get("mem", {}).items():
        if isinstance(v, (int, float)):
            flat[f"mem.{k}"] = float(v)
    if isinstance(run.get("ready_s"), (int, float)):
        flat["ready_s"] = float(run["ready_s"])
    return flat


def summarize(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    s: dict[str, Any] = {
        "rounds": len(runs),
        "rounds_ok": len(ok),
        "errors_seen": [r["error"] for r in runs if "error" in r],
        "metrics": median_merge([flatten(r) for r in ok]),
        "rps_rounds": {},
    }
    for r in ok:
        for pname, p in r.get("passes", {}).items():
            s["rps_rounds"].setdefault(pname, []).append(p.get("rps"))
    if runs:
        s["server"], s["scenario"] = runs[0]["server"], runs[0]["scenario"]
        s["workers"] = runs[0]["workers"]
    return s


def merge_results(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Runs of several result files; a later file replaces an earlier one per server/scenario."""
    runs: dict[str, list[dict[str, Any]]] = {}
    skipped: dict[str, str] = {}
    for d in docs:
        for k, v in d.get("runs", {}).items():
            if v:
                runs.pop(k, None)  # re-insert so the later file's order wins too
                runs[k] = v
        skipped.update(d.get("meta", {}).get("skipped", {}))
    for k in runs:
        skipped.pop(k, None)
    return {"runs": runs, "skipped": skipped}


# --------------------------------------------------------------------------- report (pure)


def fmt(v: float | None, nd: int = 0) -> str:
    return "-" if v is None else f"{v:,.{nd}f}"


TABLE_HEADER = [
    "server",
    "scenario",
    "workers",
    "rps keep-alive",
    "rps close",
    "rps c100",
    "p50 ms",
    "p99 ms (c100)",
    "errors",
    "conns served c10 / c100",
    "server CPU µs/req",
    "close CPU µs/req",
    "master USS MB",
    "mean worker USS MB",
    "tree PSS MB",
    "start_server RSS MB",
    "ka spread",
]


def table_row(s: Mapping[str, Any]) -> list[str]:
    m: Metrics = s["metrics"]
    head = [s["server"], s["scenario"], str(s["workers"])]
    if not s["rounds_ok"]:
        why = "; ".join(s["errors_seen"])[:150].replace("|", "/")
        return head + [f"FAILED: {why}"] + ["-"] * (len(TABLE_HEADER) - 4)
    first = "ab" if "ab.rps" in m else "ka"

    def g(k: str) -> float | None:
        return m.get(k)

    errors = [g(f"{p}.errors") for p in ("ka", "close", "c100", "ab", "warm")]
    served = [
        f"{fmt(g(f'served.{c}'))}/{fmt(g(f'served.{c}.connections'))}"
        for c in ("c10", "c100")
        if g(f"served.{c}") is not None
    ]
    rounds = [v for v in s["rps_rounds"].get(first, []) if v is not None]
    spread = None
    if len(rounds) > 1 and median(rounds):
        spread = 100 * (max(rounds) - min(rounds)) / (median(rounds) or 1.0)
    p99 = fmt(g(f"{first}.p99_ms"), 1)
    if g("c100.p99_ms") is not None:
        p99 += f" ({fmt(g('c100.p99_ms'), 1)})"
    return head + [
        fmt(g(f"{first}.rps")),
        fmt(g("close.rps")),
        fmt(g("c100.rps")),
        fmt(g(f"{first}.p50_ms"), 2),
        p99,
        "-" if all(e is None for e in errors) else fmt(sum(e or 0 for e in errors)),
        " / ".join(served) or "-",
        fmt(g(f"{first}.cpu_us_per_req")),
        fmt(g("close.cpu_us_per_req")),
        fmt(g("mem.master_uss_mb"), 1),
        fmt(g("mem.mean_worker_uss_mb"), 1),
        fmt(g("mem.tree_pss_mb"), 1),
        fmt(g("mem.launcher_rss_mb"), 1),
        "-" if spread is None else f"{spread:.0f}%",
    ]


def render_table(summaries: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|" + "|".join("---" for _ in TABLE_HEADER) + "|",
    ]
    for s in summaries:
        lines.append("| " + " | ".join(table_row(s)) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    nd: int = 0


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** int(f"{v:e}".split("e")[1])
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if v <= step * exp:
            return float(step * exp)
    return float(10 * exp)


def render_svg(
    title: str,
    groups: Sequence[tuple[str, Sequence[float | None]]],
    series: Sequence[Series],
) -> str:
    """Grouped bars: one group per label, one bar per series; each series has its own scale
    (the first on the left axis, the second on the right), and every bar carries its value.
    A label may have a second line after a newline (drawn smaller under the first)."""
    width_per_group, bar_w, left, right, top, plot_h = 110, 34, 70, 70, 60, 260
    width = left + right + max(1, len(groups)) * width_per_group
    height = top + plot_h + 70
    base = top + plot_h
    maxima = [
        _nice_max(max([v[i] or 0.0 for _, v in groups] or [0.0]))
        for i in range(len(series))
    ]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2:.0f}" y="20" text-anchor="middle" font-size="14">'
        f"{escape(title)}</text>",
    ]
    for i, s in enumerate(series):  # legend
        lx = left + i * 230
        out.append(f'<rect x="{lx}" y="32" width="12" height="12" fill="{s.color}"/>')
        out.append(f'<text x="{lx + 16}" y="42">{escape(s.name)}</text>')
    for i in range(len(series[:2])):  # axes with 5 ticks
        ax = left if i == 0 else width - right
        anchor, dx = ("end", -4) if i == 0 else ("start", 4)
        out.append(
            f'<line x1="{ax}" y1="{top}" x2="{ax}" y2="{base}" stroke="{series[i].color}"/>'
        )
        for t in range(6):
            val = maxima[i] * t / 5
            y = base - plot_h * t / 5
            out.append(
                f'<text x="{ax + dx}" y="{y + 4:.1f}" text-anchor="{anchor}" '
                f'fill="{series[i].color}">{fmt(val, series[i].nd)}</text>'
            )
            if i == 0:
                out.append(
                    f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
                    'stroke="#ddd"/>'
                )
    out.append(
        f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="black"/>'
    )
    for g, (label, values) in enumerate(groups):
        gx = left + g * width_per_group + (width_per_group - bar_w * len(series)) / 2
        for i, s in enumerate(series):
            v = values[i] if i < len(values) else None
            x: float = gx + i * bar_w
            if v is None:
                out.append(
                    f'<text x="{x + bar_w / 2:.1f}" y="{base - 4}" text-anchor="middle">'
                    "n/a</text>"
                )
                continue
            h = plot_h * v / maxima[i]
            out.append(
                f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar_w - 4}" '
                f'height="{h:.1f}" fill="{s.color}"><title>{escape(label)}: '
                f"{fmt(v, s.nd)} {escape(s.name)}</title></rect>"
            )
            out.append(
                f'<text x="{x + (bar_w - 4) / 2:.1f}" y="{base - h - 3:.1f}" '
                f'text-anchor="middle" font-size="9">{fmt(v, s.nd)}</text>'
            )
        cx = left + g * width_per_group + width_per_group / 2
        name, _, sub = label.partition("\n")
        out.append(
            f'<text x="{cx:.1f}" y="{base + 16}" text-anchor="middle">{escape(name)}</text>'
        )
        if sub:
            out.append(
                f'<text x="{cx:.1f}" y="{base + 30}" text-anchor="middle" font-size="9" '
                f'fill="#555">{escape(sub)}</text>'
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def svg_from_summaries(summaries: Sequence[Mapping[str, Any]]) -> str:
    groups: list[tuple[str, list[float | None]]] = []
    for s in summaries:
        if s.get("scenario") == "hello" and s.get("rounds_ok"):
            m = s["metrics"]
            served = " ".join(
                f"{fmt(m.get(f'served.{c}'))}/{fmt(m.get(f'served.{c}.connections'))}"
                for c in ("c10", "c100")
                if m.get(f"served.{c}") is not None
            )
            label = s["server"] + (f"\nserved {served}" if served else "")
            groups.append((label, [m.get("ka.rps"), m.get("ka.cpu_us_per_req")]))
    return render_svg(
        "hello world, wrk keep-alive c10 (medians over rounds)",
        groups,
        [
            Series("requests/s keep-alive (left axis)", "#3b6ea8"),
            Series("server CPU µs per request (right axis)", "#d9822b"),
        ],
    )


# --------------------------------------------------------------------------- scenarios and servers


@dataclass(frozen=True)
class Pass:
    name: str
    tool: str  # "wrk" or "ab"
    conns: int
    close: bool = False  # wrk -H 'Connection: close'
    lua: str | None = None  # wrk script body
    requests: int = 0  # ab -n (0: ab -t duration)


POST_LUA = f"""-- written by bench/bench.py: a {POST_SIZE}-byte POST per request
wrk.method = "POST"
wrk.body = string.rep("p", {POST_SIZE})
wrk.headers["Content-Type"] = "application/octet-stream"
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    module: str  # bench/apps/<module>.py
    psgi: str | None  # bench/apps/<psgi> for Perl starman; None: Perl cannot run it
    passes: tuple[Pass, ...]
    expect: Callable[[bytes], bool]
    method: str = "GET"
    body: bytes = b""
    probe: bool = False  # the conns-served probe
    ab_workers: bool = False  # run at --ab-workers instead of --workers
    warm: bool = False  # the --warm-requests pass before the memory sample


def _is_hello(b: bytes) -> bool:
    return b == HELLO


def _is_1mb(b: bytes) -> bool:
    return len(b) == BIG


def _is_post_count(b: bytes) -> bool:
    return b == str(POST_SIZE).encode()


SCENARIOS = [
    Scenario(
        "hello",
        "hello_wsgi",
        "hello.psgi",
        (
            Pass("ka", "wrk", 10),
            Pass("close", "wrk", 10, close=True),
            Pass("c100", "wrk", 100),
        ),
        _is_hello,
        probe=True,
    ),
    Scenario("big", "big", "big.psgi", (Pass("ka", "wrk", 10),), _is_1mb),
    Scenario(
        "post",
        "post",
        "post.psgi",
        (Pass("ka", "wrk", 10, lua=POST_LUA),),
        _is_post_count,
        method="POST",
        body=b"p" * POST_SIZE,
    ),
    Scenario("file", "filewrap", "filewrap.psgi", (Pass("ka", "wrk", 10),), _is_1mb),
    Scenario("flask", "flask_app", None, (Pass("ka", "wrk", 10),), _is_hello),
    Scenario(
        "ab",
        "hello_wsgi",
        "hello.psgi",
        (Pass("ab", "ab", 10),),
        _is_hello,
        ab_workers=True,
        warm=True,
    ),
]


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


def _exe(path: str) -> str | None:
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


def _peer_python(a: argparse.Namespace) -> str:
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
            lambda a: _exe(pb(a, "gunicorn")),
            _flask_with(_peer_python),
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
            lambda a: _exe(pb(a, "gunicorn")),
            _flask_with(_peer_python),
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
            lambda a: _exe(pb(a, "granian")),
            _flask_with(_peer_python),
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
            lambda a: _exe(PERL_STARMAN),
            _perl_runs,
        ),
        Server(
            "nginx-return",
            lambda c: [
                *(NGINX, "-p", c.tmpdir, "-e", f"{c.tmpdir}/error.log"),
                *("-c", f"{c.tmpdir}/nginx.conf"),
            ],
            "nginx 'return 200': worker_processes N, access_log off",
            lambda a: _exe(NGINX),
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

# --------------------------------------------------------------------------- process helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def http_once(
    port: int, method: str = "GET", body: bytes = b"", timeout: float = 2.0
) -> tuple[int, bytes] | None:
    """One request on a fresh connection: (status, body), or None on any failure."""
    head = (
        f"{method} / HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
        if method != "GET"
        else f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
    )
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(head.encode() + body)
            while time.monotonic() < deadline:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
                end = _response_end(buf)
                if end is not None and len(buf) >= end:
                    break
    except OSError:
        return None
    end = _response_end(buf)
    m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
    if m is None or end is None:
        return None
    return int(m.group(1)), buf[buf.index(b"\r\n\r\n") + 4 : end]


_CL_RE = re.compile(rb"(?im)^content-length:[ \t]*(\d+)[ \t]*\r?$")


def _response_end(buf: bytes) -> int | None:
    """Offset just past the first response in buf if its head is complete (CL framing)."""
    h = buf.find(b"\r\n\r\n")
    if h < 0:
        return None
    m = _CL_RE.search(buf, 0, h + 2)
    return h + 4 + int(m.group(1)) if m else len(buf)


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by the tree (reaped children included via children_*)."""
    total = 0.0
    for p in tree(pid):
        try:
            t = p.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def settle(pid: int, want: int) -> int:
    """Wait until the tree has >= want processes and its pid set held still for 1 s."""
    deadline = time.monotonic() + SETTLE_MAX_S
    last: set[int] = set()
    since = time.monotonic()
    while time.monotonic() < deadline:
        now = {p.pid for p in tree(pid)}
        if now != last:
            last, since = now, time.monotonic()
        elif len(now) >= want and time.monotonic() - since >= 1.0:
            break
        time.sleep(0.1)
    return len(last)


def mem_sample(pid: int) -> dict[str, Any]:
    """USS/PSS/RSS of every process; master = parent of the leaves, workers = leaves."""
    procs: list[dict[str, Any]] = []
    for p in tree(pid):
        try:
            mi = p.memory_full_info()
            kids = p.children()
            procs.append(
                {
                    "pid": p.pid,
                    "ppid": p.ppid(),
                    "leaf": not kids,
                    "cmd": " ".join(p.cmdline())[:120],
                    "rss_mb": mi.rss / 2**20,
                    "uss_mb": mi.uss / 2**20,
                    "pss_mb": mi.pss / 2**20,
                }
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    if not procs:
        return {"procs": []}
    root = procs[0]
    workers = [p for p in procs[1:] if p["leaf"]]
    parents = {w["ppid"] for w in workers}
    master = next((p for p in procs if p["pid"] in parents), root)
    return {
        "procs": procs,
        "n_procs": len(procs),
        "n_workers": len(workers),
        "master_uss_mb": master["uss_mb"],
        "master_rss_mb": master["rss_mb"],
        # the process above the master (start_server for ours-ss), if any
        "launcher_rss_mb": root["rss_mb"] if master is not root else None,
        "launcher_uss_mb": root["uss_mb"] if master is not root else None,
        "mean_worker_uss_mb": statistics.mean(w["uss_mb"] for w in workers)
        if workers
        else None,
        "mean_worker_rss_mb": statistics.mean(w["rss_mb"] for w in workers)
        if workers
        else None,
        "tree_pss_mb": sum(p["pss_mb"] for p in procs),
        "tree_uss_mb": sum(p["uss_mb"] for p in procs),
    }


def run_tool(cmd: list[str], timeout: float) -> tuple[str, int, float]:
    """Run wrk/ab: (stdout+stderr, returncode, client CPU seconds)."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired:
        out, rc = f"TIMEOUT after {timeout:.0f}s", -1
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return out, rc, (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)


def run_pass(
    pid: int, port: int, ps: Pass, duration: float, tmpdir: str, keep_raw: bool
) -> dict[str, Any]:
    url = f"http://{HOST}:{port}/"
    if ps.tool == "wrk":
        cmd = [WRK, "-t1", f"-c{ps.conns}", f"-d{duration:g}s", "--timeout", "2s"]
        cmd.append("--latency")
        if ps.close:
            cmd += ["-H", "Connection: close"]
        if ps.lua:
            script = os.path.join(tmpdir, f"{ps.name}.lua")
            with open(script, "w") as f:
                f.write(ps.lua)
            cmd += ["-s", script]
        timeout = duration + 30
    else:
        cmd = [AB, "-q", "-k", "-s", "10", "-c", str(ps.conns)]
        if ps.requests:
            cmd += ["-n", str(ps.requests)]
            timeout = 180.0
        else:
            cmd += ["-t", f"{duration:g}"]
            timeout = duration + 60
    cmd.append(url)
    cpu0, t0 = tree_cpu_s(pid), time.monotonic()
    out, rc, client_cpu = run_tool(cmd, timeout)
    wall, cpu1 = time.monotonic() - t0, tree_cpu_s(pid)
    r: dict[str, Any] = parse_wrk(out) if ps.tool == "wrk" else parse_ab(out)
    reqs = r.get("requests")
    r.update(
        {
            "cmd": shlex.join(cmd),
            "rc": rc,
            "wall_s": wall,
            "connections": ps.conns,
            "server_cpu_s": cpu1 - cpu0,
            "cpu_us_per_req": (cpu1 - cpu0) / reqs * 1e6 if reqs else None,
            "client_cpu_s": client_cpu,
        }
    )
    if rc != 0 or r.get("rps") is None:
        r["tool_output_tail"] = out[-400:]
    if keep_raw:
        r["raw"] = out
    return r


# --------------------------------------------------------------------------- conns-served probe

_REQ = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class _Conn:
    """One closed-loop keep-alive client slot (reconnects when the server closes)."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.buf = b""
        self.answered = 0
        self.reconnects = 0
        self.asked_at = 0.0
        self.first_ms: float | None = None


def served_probe(port: int, conns: int, seconds: float) -> dict[str, Any]:
    """How many of ``conns`` keep-alive connections get at least one answer in ``seconds``.

    wrk says nothing about a connection that never gets answered, so a server that keeps
    one connection per worker busy looks error-free while the other connections starve.
    """
    sel = selectors.DefaultSelector()
    slots = [_Conn() for _ in range(conns)]

    def drop(c: _Conn) -> None:
        if c.sock is not None:
            sel.unregister(c.sock)
            c.sock.close()
            c.sock = None

    def connect(c: _Conn) -> None:
        drop(c)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        if s.connect_ex((HOST, port)) not in (0, errno.EINPROGRESS):
            s.close()
            return
        c.sock, c.buf = s, b""
        sel.register(s, selectors.EVENT_WRITE, c)

    def ask(c: _Conn) -> bool:
        assert c.sock is not None
        try:
            c.sock.send(_REQ)  # 37 bytes: always fits an empty send buffer
        except OSError:
            return False
        if not c.asked_at:
            c.asked_at = time.monotonic()
        sel.modify(c.sock, selectors.EVENT_READ, c)
        return True

    deadline = time.monotonic() + seconds
    for c in slots:
        connect(c)
    try:
        while time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.05):
                c = key.data
                assert isinstance(c, _Conn) and c.sock is not None
                if key.events & selectors.EVENT_WRITE:
                    if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or not ask(
                        c
                    ):
                        c.reconnects += 1
                        connect(c)
                    continue
                try:
                    data = c.sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    c.reconnects += 1
                    connect(c)
                    continue
                c.buf += data
                end = _response_end(c.buf)
                if end is None or len(c.buf) < end:
                    continue
                head = c.buf[: c.buf.index(b"\r\n\r\n")].lower()
                c.answered += 1
                if c.first_ms is None:
                    c.first_ms = (time.monotonic() - c.asked_at) * 1e3
                c.buf = c.buf[end:]
                if b"\nconnection: close" in head or not ask(c):
                    c.reconnects += 1
                    connect(c)
    finally:
        for c in slots:
            drop(c)
        sel.close()
    firsts = [c.first_ms for c in slots if c.first_ms is not None]
    return {
        "connections": conns,
        "seconds": seconds,
        "served": sum(1 for c in slots if c.answered),
        "responses": sum(c.answered for c in slots),
        "reconnects": sum(c.reconnects for c in slots),
        "max_first_response_ms": max(firsts) if firsts else None,
    }


# --------------------------------------------------------------------------- one run


def stop(
    proc: subprocess.Popen[bytes], sig: int, known: list[psutil.Process]
) -> dict[str, Any]:
    """Signal the server's pid, wait, then SIGKILL its process group (its own session)."""
    t0 = time.monotonic()
    how = f"{signal.Signals(sig).name} to {proc.pid}"
    try:
        proc.send_signal(sig)
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        how += f", no exit in {STOP_TIMEOUT_S:g}s"
    deadline = time.monotonic() + 3.0
    for p in known[1:]:  # give the workers a moment to finish their own exit
        while time.monotonic() < deadline:
            try:
                if not p.is_running() or p.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
    leftovers = 0
    for p in known[1:]:
        try:
            leftovers += p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        how += f"; SIGKILL to group {proc.pid}"
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        how += "; still not reaped"
    return {
        "how": how,
        "returncode": proc.returncode,
        "stop_s": time.monotonic() - t0,
        "leftovers_killed": leftovers,
    }


def run_one(
    srv: Server, sc: Scenario, args: argparse.Namespace, logdir: str, bench_file: str
) -> dict[str, Any]:
    workers = args.ab_workers if sc.ab_workers else args.workers
    tmpdir = tempfile.mkdtemp(prefix=f"bench-{srv.name}-", dir="/tmp")
    ctx = Ctx(free_port(), workers, sc, tmpdir, args)
    if srv.setup:
        srv.setup(ctx)
    argv = srv.argv(ctx)
    res: dict[str, Any] = {
        "server": srv.name,
        "scenario": sc.name,
        "workers": workers,
        "argv": argv,
        "port": ctx.port,
    }
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", BENCH_FILE=bench_file)
    env["PYTHONPATH"] = os.pathsep.join(
        x for x in (APPS, REPO, os.environ.get("PYTHONPATH", "")) if x
    )
    logpath = os.path.join(logdir, f"{srv.name}-{sc.name}-{ctx.port}.log")
    t0 = time.monotonic()
    with open(logpath, "wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=APPS,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    known: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            got = http_once(ctx.port, sc.method, sc.body)
            if got is not None and got[0] == 200 and sc.expect(got[1]):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                seen = (
                    "no answer" if got is None else f"status {got[0]}, {len(got[1])}B"
                )
                res["error"] = (
                    f"not ready after {time.monotonic() - t0:.1f}s "
                    f"(exit {proc.poll()}, {seen}); log {logpath}"
                )
                return res
            time.sleep(0.05)
        res["ready_s"] = time.monotonic() - t0
        res["procs_at_start"] = settle(proc.pid, workers + 1)
        res["mem_idle"] = mem_sample(proc.pid)
        if sc.passes[0].tool == "wrk":
            warm = Pass("warmup", "wrk", 10, lua=sc.passes[0].lua)
            run_pass(proc.pid, ctx.port, warm, args.warmup, tmpdir, False)
        passes: dict[str, Any] = {}
        for ps in sc.passes:
            time.sleep(args.pause)
            dur = args.ab_seconds if ps.tool == "ab" else args.duration
            passes[ps.name] = run_pass(
                proc.pid, ctx.port, ps, dur, tmpdir, args.keep_raw
            )
        if sc.warm and args.warm_requests > 0:
            ps = Pass("warm", "ab", 10, requests=args.warm_requests)
            passes["warm"] = run_pass(proc.pid, ctx.port, ps, 0, tmpdir, args.keep_raw)
        res["passes"] = passes
        if sc.probe and args.probe_seconds > 0:
            res["served"] = {}
            for n in (10, 100):
                time.sleep(args.pause)
                res["served"][f"c{n}"] = served_probe(ctx.port, n, args.probe_seconds)
        known = tree(proc.pid)
        res["mem"] = mem_sample(proc.pid)
        if proc.poll() is not None:
            res["error"] = (
                f"server exited ({proc.returncode}) during the run; log {logpath}"
            )
    except Exception as exc:  # one broken run must not end the whole benchmark
        res["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if not known:
            known = tree(proc.pid)
        res["stop"] = stop(proc, srv.stop_signal, known)
        shutil.rmtree(tmpdir, ignore_errors=True)
    return res


# --------------------------------------------------------------------------- main


def versions(args: argparse.Namespace) -> dict[str, Any]:
    def first_line(argv: list[str]) -> str | None:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        lines = (r.stdout + r.stderr).strip().splitlines()
        return lines[0] if lines else None

    peer_py = _peer_python(args)
    code = (
        "import importlib.metadata as m\n"
        "for p in ('gunicorn', 'granian', 'flask'):\n"
        "    try: print(p, m.version(p))\n"
        "    except Exception: print(p, None)"
    )
    peer_versions = None
    try:
        r = subprocess.run(
            [peer_py, "-c", code], capture_output=True, text=True, timeout=30
        )
        peer_versions = r.stdout.strip().replace("\n", ", ")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {
        "python": sys.version.split()[0],
        "ours_python": first_line([args.ours_python, "--version"]),
        "alt_python": first_line([args.alt_python, "--version"])
        if args.alt_python
        else None,
        "peer_python": first_line([peer_py, "--version"]),
        "peer_versions": peer_versions,
        "perl_starman": first_line([PERL_STARMAN, "--version"]),
        "nginx": first_line([NGINX, "-v"]),
        "wrk": first_line([WRK, "-v"]),
        "platform": platform.platform(),
        "cpus": psutil.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
    }


def estimate_s(sc: Scenario, args: argparse.Namespace) -> float:
    """Rough wall time of one run: start and settle, passes, probes, warm pass, stop."""
    t = 2.5 + float(args.warmup)
    for ps in sc.passes:
        t += args.pause + (args.ab_seconds if ps.tool == "ab" else args.duration)
    if sc.probe:
        t += 2 * (args.pause + args.probe_seconds)
    if sc.warm:
        t += args.warm_requests / 5000
    return t


def default_ours_python() -> str:
    venv = os.path.join(REPO, ".venv", "bin", "python")
    return venv if os.access(venv, os.X_OK) else sys.executable


def default_peer_bin() -> str:
    here = os.path.dirname(sys.executable)
    return (
        here
        if os.access(os.path.join(here, "gunicorn"), os.X_OK)
        else "/tmp/benchenv/bin"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        epilog="\n\n".join(doc.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    names = [s.name for s in servers()]
    ap.add_argument("--out", help="JSON results (default /tmp/bench-<time>.json)")
    ap.add_argument("--svg", help="SVG plot (default: --out with .svg)")
    ap.add_argument(
        "--report",
        nargs="+",
        metavar="JSON",
        help="print the table of earlier runs (merged; later files win per server/scenario)",
    )
    ap.add_argument("--servers", default="", help=f"comma list of {', '.join(names)}")
    ap.add_argument(
        "--scenarios",
        default="",
        help=f"comma list of {', '.join(s.name for s in SCENARIOS)}",
    )
    ap.add_argument("--list", action="store_true", help="show servers and availability")
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round, short passes"
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="workers for wrk scenarios")
    ap.add_argument(
        "--ab-workers", type=int, default=10, help="workers for the ab scenario"
    )
    ap.add_argument("--threads", type=int, default=4, help="gunicorn gthread threads")
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per wrk pass")
    ap.add_argument(
        "--ab-seconds", type=float, default=1.0, help="ab -t (the seed's 1 s)"
    )
    ap.add_argument("--warmup", type=float, default=0.5, help="unrecorded wrk seconds")
    ap.add_argument("--pause", type=float, default=0.2, help="seconds between passes")
    ap.add_argument(
        "--probe-seconds", type=float, default=2.0, help="conns-served probe"
    )
    ap.add_argument(
        "--warm-requests", type=int, default=10000, help="ab -n pass before memory (ab)"
    )
    ap.add_argument("--ours-python", default=default_ours_python())
    ap.add_argument(
        "--alt-python",
        default="",
        help="a second interpreter with starman installed: the ours-alt and "
        "ours-preload-alt rows (e.g. a CPython 3.13 venv)",
    )
    ap.add_argument(
        "--peer-bin", default=default_peer_bin(), help="gunicorn, granian here"
    )
    ap.add_argument(
        "--ours-cmd",
        default="",
        help="template for ours; placeholders {python} {workers} {host} {port} {app} "
        "(module:app) {app_file} (path) {module} {extra}; default: " + OURS_CMD,
    )
    ap.add_argument("--ours-ss-cmd", default=OURS_SS_CMD, help="template for ours-ss")
    ap.add_argument(
        "--ours-extra", default="", help="extra args for ours, e.g. '--max-requests 0'"
    )
    ap.add_argument(
        "--keep-raw", action="store_true", help="keep wrk/ab output in JSON"
    )
    ap.add_argument(
        "--logdir", default="", help="server logs (default /tmp/bench-logs-*)"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds = 1
        args.duration = 1.0
        args.warmup = 0.3
        args.probe_seconds = 1.0
        args.pause = 0.1
        args.warm_requests = min(args.warm_requests, 2000)
    if not 1 <= args.rounds <= 20:
        ap.error("--rounds must be 1..20")
    unknown = {n for n in args.servers.split(",") if n} - set(names)
    unknown |= {n for n in args.scenarios.split(",") if n} - {s.name for s in SCENARIOS}
    if unknown:
        ap.error(f"unknown server or scenario: {sorted(unknown)}")
    return args


def report(paths: Sequence[str], out: str | None, svg: str | None) -> int:
    docs = []
    for path in paths:
        with open(path) as f:
            docs.append(json.load(f))
    merged = merge_results(docs)
    summaries = [summarize(v) for v in merged["runs"].values()]
    emit(summaries, merged["skipped"], svg)
    if out:
        with open(out, "w") as f:
            meta = {"merged_from": list(paths), "skipped": merged["skipped"]}
            json.dump({"meta": meta, "runs": merged["runs"]}, f, indent=1)
    return 0


def table_order(summaries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows grouped by scenario (SCENARIOS order), servers in servers() order, unknowns last."""
    sc_rank = {sc.name: i for i, sc in enumerate(SCENARIOS)}
    srv_rank = {srv.name: i for i, srv in enumerate(servers())}

    def key(s: Mapping[str, Any]) -> tuple[int, int, str]:
        return (
            sc_rank.get(s.get("scenario", ""), 99),
            srv_rank.get(s.get("server", ""), 99),
            str(s.get("server", "")),
        )

    return sorted(summaries, key=key)


def emit(
    summaries: Sequence[Mapping[str, Any]], skipped: Mapping[str, str], svg: str | None
) -> None:
    summaries = table_order(summaries)
    print(render_table(summaries))
    for key, why in skipped.items():
        print(f"\nskipped {key}: {why}", end="")
    print()
    if svg:
        with open(svg, "w") as f:
            f.write(svg_from_summaries(summaries))
        print(f"\nplot: {svg}")


def compile_ours(python: str) -> None:
    """Write our packages' bytecode caches, as ``pip install`` does for the peers.

    The servers run with PYTHONDONTWRITEBYTECODE (nothing else written into the repo), so
    a missing or stale ``.pyc`` would be compiled from source at every start: slower
    starts and a master heap left fragmented by the compiler (~4 MB more tree PSS at 10
    workers), which is not how an installed server runs.
    """
    pkgs = [os.path.join(REPO, p) for p in ("starman", "start_server")]
    subprocess.run(
        [python, "-m", "compileall", "-q", *pkgs],
        stdout=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def _warn_if_editable(python: str) -> None:
    """An editable install loads setuptools' finder (pathlib and more) into every process."""
    probe = (
        "import glob, os, sys\n"
        "print(any(glob.glob(os.path.join(p, '__editable__*.pth')) for p in sys.path))"
    )
    try:
        out = subprocess.run(
            [python, "-c", probe], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return
    if out.strip() == "True":
        print(
            f"# note: {python} has an editable install of ours: every one of our "
            "processes also loads setuptools' editable finder (about 0.4 MB more heap in "
            "the master here). "
            "For figures as a pip-installed server runs, use a venv made with "
            "`pip install .` (--ours-python / --alt-python).",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        return report(args.report, args.out, args.svg)
    wanted = [n for n in args.servers.split(",") if n]
    wanted_sc = [n for n in args.scenarios.split(",") if n]
    chosen = [s for s in servers() if not wanted or s.name in wanted]
    scenarios = [s for s in SCENARIOS if not wanted_sc or s.name in wanted_sc]
    skipped: dict[str, str] = {}
    runnable: list[Server] = []
    for srv in chosen:
        why = srv.available(args)
        if why:
            skipped[srv.name] = why
        else:
            runnable.append(srv)
    combos: list[tuple[Server, Scenario]] = []
    for sc in scenarios:  # scenario-major, servers interleaved within each round
        for srv in runnable:
            why = srv.runs(sc, args)
            if why:
                skipped[f"{srv.name}/{sc.name}"] = why
            else:
                combos.append((srv, sc))
    if args.list:
        for srv in servers():
            print(f"{srv.name:18} {srv.available(args) or 'available'}: {srv.how}")
        return 0
    for tool in (WRK, AB):
        if _exe(tool):
            print(f"bench: {tool} is missing", file=sys.stderr)
            return 2
    if any(s.name.startswith("ours") for s in runnable):
        compile_ours(args.ours_python)
        _warn_if_editable(args.ours_python)
    if any(s.name.endswith("-alt") for s in runnable):
        compile_ours(args.alt_python)
        _warn_if_editable(args.alt_python)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or f"/tmp/bench-{stamp}.json"
    svg = args.svg or os.path.splitext(out)[0] + ".svg"
    logdir = args.logdir or tempfile.mkdtemp(prefix="bench-logs-", dir="/tmp")
    os.makedirs(logdir, exist_ok=True)
    bench_file = os.path.join(logdir, "file-1m.bin")
    with open(bench_file, "wb") as f:
        f.write(b"f" * BIG)
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
        "args": {k: v for k, v in vars(args).items()},
        "versions": versions(args),
        "skipped": skipped,
        "how": {s.name: s.how for s in runnable},
        "logdir": logdir,
    }
    for key, why in skipped.items():
        print(f"# skipped {key}: {why}", file=sys.stderr)
    eta = args.rounds * sum(estimate_s(sc, args) for _, sc in combos)
    print(
        f"# {len(combos)} runs x {args.rounds} rounds, about {eta / 60:.1f} min; "
        f"logs {logdir}; results {out}",
        file=sys.stderr,
    )
    runs: dict[str, list[dict[str, Any]]] = {
        f"{s.name}/{c.name}": [] for s, c in combos
    }
    t_start = time.monotonic()
    for rnd in range(args.rounds):
        for srv, sc in combos:
            r = run_one(srv, sc, args, logdir, bench_file)
            r["round"] = rnd
            runs[f"{srv.name}/{sc.name}"].append(r)
            first: dict[str, Any] = next(iter(r.get("passes", {}).values()), {})
            print(
                f"# [{time.monotonic() - t_start:5.0f}s] round {rnd + 1} {srv.name}/{sc.name}: "
                f"{fmt(first.get('rps'))} rps, {fmt(first.get('cpu_us_per_req'))} µs/req"
                + (f"  ERROR {r['error']}" if "error" in r else ""),
                file=sys.stderr,
                flush=True,
            )
            with open(out, "w") as f:  # partial results survive an interruption
                json.dump({"meta": meta, "runs": runs}, f, indent=1)
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    meta["elapsed_s"] = time.monotonic() - t_start
    summaries = table_order([summarize(v) for v in runs.values() if v])
    table = render_table(summaries)
    with open(out, "w") as f:
        json.dump(
            {"meta": meta, "runs": runs, "summary": summaries, "table_md": table},
            f,
            indent=1,
        )
    emit(summaries, skipped, svg)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The command line of bench/bench.py: options, the interleaved rounds, and the --report mode."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import psutil

from .places import AB, NGINX, PERL_STARMAN, REPO, WRK
from .report import emit, fmt, render_table, table_order
from .results import merge_results, summarize
from .run import run_one
from .scenarios import BIG, SCENARIOS, Scenario
from .servers import OURS_CMD, OURS_SS_CMD, Server, exe_missing, peer_python, servers

USAGE = """Throughput, latency, CPU and memory of ours beside gunicorn, granian, Perl Starman and nginx.

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
``ab`` (the reference ``ab -c 10 -t 1 -k`` against ``--ab-workers`` 10 workers, then a
``--warm-requests`` pass, after which worker USS and tree PSS are sampled).

Per pass, server CPU is the sum of user+system (+reaped children) over the server's whole
process tree (psutil) before and after, divided by the requests answered. Memory: psutil
``memory_full_info`` of every process in the tree (master = parent of the workers, workers =
leaves, tree PSS = sum). Servers run in interleaved rounds (every server once per scenario,
then again); the table shows per-metric medians. Results go to JSON after every run.

Only 127.0.0.1 is contacted. Servers are started in their own session, stopped by signalling
their pid and then SIGKILL to their process group. Every wait and subprocess is bounded.
"""


def versions(args: argparse.Namespace) -> dict[str, Any]:
    def first_line(argv: list[str]) -> str | None:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        lines = (r.stdout + r.stderr).strip().splitlines()
        return lines[0] if lines else None

    peer_py = peer_python(args)
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
    doc = USAGE
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
        "--ab-seconds", type=float, default=1.0, help="ab -t (the reference 1 s)"
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


def compile_ours(python: str) -> None:
    """Write our packages' bytecode caches, as ``pip install`` does for the peers.

    The servers run with PYTHONDONTWRITEBYTECODE (nothing else written into the repo), so
    a missing or stale ``.pyc`` would be compiled from source at every start: slower
    starts and a master heap left fragmented by the compiler (more tree PSS), which is not
    how an installed server runs.
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
        if exe_missing(tool):
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

"""The load generators: one wrk or ab pass against a server, and the figures read from their output."""

from __future__ import annotations

import os
import re
import resource
import shlex
import subprocess
import time
from typing import Any, Optional

from .places import AB, HOST, WRK
from .proctree import tree_cpu_s
from .scenarios import Pass

Metrics = dict[str, Optional[float]]


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

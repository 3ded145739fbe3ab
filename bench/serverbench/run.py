"""One run: start a server for a scenario, wait until it answers, drive its passes, stop it."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any

import psutil

from .client import http_once, served_probe
from .loadgen import run_pass
from .places import APPS, HOST, REPO
from .proctree import mem_sample, settle, tree
from .scenarios import Pass, Scenario
from .servers import Ctx, Server

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


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

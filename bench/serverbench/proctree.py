"""A server's process tree through psutil: its CPU time, when it has settled, its memory."""

from __future__ import annotations

import statistics
import time
from typing import Any

import psutil

SETTLE_MAX_S = 10.0


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

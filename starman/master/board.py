"""What the master reads in the workers' scoreboard: the pool's events (readiness, draining,
--timeout) and the --status-file document: checked at start, rewritten while the master
runs, removed when it exits."""

from __future__ import annotations

import json
import logging
import os
import time

from starman.master import pool
from starman.master.pool import PoolState
from starman.worker.scoreboard import Scoreboard, SlotInfo, SlotState
from start_server.common.options import ConfigError
from start_server.common.proc import atomic_write, status_file_error

__all__ = [
    "busy_slots",
    "check_status_file",
    "live_slots",
    "remove_status_file",
    "scan_board",
    "status_document",
    "write_status_file",
]

log = logging.getLogger("starman.master")


def scan_board(
    state: PoolState, board: Scoreboard, timeout: float, now: float
) -> tuple[list[pool.Event], float | None]:
    """Readiness and --timeout from the workers' slots; and when to look again for
    --timeout (None when it is off)."""
    events: list[pool.Event] = []
    limit_ns = int(timeout * 1e9)
    now_ns = time.monotonic_ns()
    next_check_ns = now_ns + limit_ns
    for w, info in live_slots(state, board):
        if w.state is pool.WorkerState.BOOTING and info.state in (
            SlotState.READY,
            SlotState.IN_APP,
            SlotState.DRAINING,
        ):
            events.append(pool.SlotReady(w.slot))
        elif info.draining and (
            w.state is pool.WorkerState.READY or w.state is pool.WorkerState.RETIRING
        ):
            # max-requests, harakiri: start the replacement before this one leaves.
            events.append(pool.SlotDraining(w.slot))
        elif info.retiring and w.state is pool.WorkerState.READY:
            events.append(pool.SlotRetiring(w.slot))
        if limit_ns and info.state is SlotState.IN_APP and info.request_start_ns:
            due = info.request_start_ns + limit_ns
            if due <= now_ns:
                events.append(pool.RequestTooLong(w.slot))
            else:
                next_check_ns = min(next_check_ns, due)
    if not limit_ns:
        return events, None
    # A request that starts after this scan is due no earlier than now + limit.
    return events, now + (next_check_ns - now_ns) / 1e9 + 0.001


def live_slots(
    state: PoolState, board: Scoreboard
) -> list[tuple[pool.WorkerInfo, SlotInfo]]:
    """Each worker with a pid and the scoreboard slot it has written itself."""
    live = []
    for w in list(state.workers.values()):
        if w.pid is not None:
            info = board.read(w.slot)
            if info.pid == w.pid:
                live.append((w, info))
    return live


def busy_slots(state: PoolState, board: Scoreboard) -> frozenset[int]:
    """Slots whose worker is inside the app now (TTOU retires an idle one)."""
    return frozenset(
        w.slot for w, info in live_slots(state, board) if info.state is SlotState.IN_APP
    )


def status_document(
    state: PoolState, board: Scoreboard, master_pid: int
) -> dict[str, object]:
    """The JSON document for --status-file, as of now."""
    workers = []
    for w in sorted(state.workers.values(), key=lambda x: x.slot):
        entry: dict[str, object] = {"slot": w.slot, "pool_state": w.state.value}
        if w.pid is not None:
            info = board.read(w.slot)
            if info.pid == w.pid:
                entry.update(info.as_json())
            else:
                entry.update({"pid": w.pid, "generation": w.generation})
        workers.append(entry)
    return {
        "master_pid": master_pid,
        "phase": state.phase.value,
        "generation": state.generation,
        "target_workers": state.target,
        "time": time.time(),
        "workers": workers,
    }


def write_status_file(path: str, doc: dict[str, object]) -> None:
    """Replace ``path`` atomically; an error is logged, never raised."""
    try:
        atomic_write(path, json.dumps(doc, indent=1) + "\n")
    except OSError as exc:
        log.error("cannot write --status-file %r: %s", path, exc)


def check_status_file(path: str) -> None:
    """Refuse at start a --status-file that could not be written (ConfigError), rather
    than log an error at every rewrite; start_server refuses with the same words."""
    problem = status_file_error(path)
    if problem is not None:
        raise ConfigError(problem)


def remove_status_file(path: str, master_pid: int) -> None:
    """At exit: remove the file if it still holds this master's document (another
    master given the same path may have rewritten it since)."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        if isinstance(doc, dict) and doc.get("master_pid") == master_pid:
            os.unlink(path)
    except (OSError, ValueError):
        pass

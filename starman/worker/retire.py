"""The recycling policy of a worker: near --max-requests, when to tell the master it leaves
soon and when to look again (pure arithmetic: the loop passes the clock in); and whether it
passed --max-worker-lifetime or --max-worker-memory (``Limits``, looked at once a second:
its one read is /proc/self/statm, never smaps)."""

from __future__ import annotations

import os

# The early "leaving soon" notice comes when, at the rate so far, the worker will reach
# --max-requests within this many seconds: enough for its replacement to boot (even on a
# loaded machine), short enough that the two rarely coexist for long.
RETIRE_LEAD_SECONDS = 0.05
# A worker that gave the notice but has not reached the limit this long after (its
# traffic slowed or stopped) drains anyway: its replacement is already serving.
RETIRE_GRACE_SECONDS = 2.0
# "Never look": a request count no worker reaches.
NO_CHECK = 1 << 62


def retire_due(limit: int, served: int, elapsed: float) -> bool:
    """At the rate so far (``served`` requests in ``elapsed`` seconds), will the worker
    reach ``limit`` within RETIRE_LEAD_SECONDS?"""
    left = limit - served
    return left <= 0 or left * elapsed <= RETIRE_LEAD_SECONDS * served


def next_retire_check(limit: int, served: int) -> int:
    """The request count at which to look again: ever closer as the limit approaches
    (about eight looks per life)."""
    return served + max(1, (limit - served) // 8)


def first_retire_check(max_requests: int) -> int:
    """The request count of the first look: the first request when there is a limit."""
    return 1 if max_requests else NO_CHECK


# A worker past --max-worker-lifetime or --max-worker-memory tells the master at once, and
# hands its connections over this long after: time for the replacement to be forked.
LIMIT_LEAD_SECONDS = 0.2
_PAGE = os.sysconf("SC_PAGE_SIZE")


class Limits:
    """A worker's --max-worker-lifetime and --max-worker-memory, with its jitter applied."""

    __slots__ = ("leave_at", "memory")

    def __init__(self, started: float, lifetime: float, memory: int) -> None:
        self.leave_at = started + lifetime if lifetime else float("inf")
        self.memory = memory  # bytes; 0 = no limit

    def passed(self, now: float) -> str | None:
        """Which limit the worker has passed ("lifetime", "memory"), or None."""
        if now >= self.leave_at:
            return "lifetime"
        if self.memory and private_memory() > self.memory:
            return "memory"
        return None


def private_memory() -> int:
    """This process's resident memory not shared with others (bytes): resident minus
    shared pages of /proc/self/statm (0 when it cannot be read)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            fields = f.read().split()
        return (int(fields[1]) - int(fields[2])) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0

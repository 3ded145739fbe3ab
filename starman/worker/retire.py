"""The recycling policy of a worker near --max-requests: when to tell the master it leaves
soon, and when to look again. Pure arithmetic: no clock, no I/O (the loop passes both in)."""

from __future__ import annotations

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

"""The option rows of the process pool (workers, recycling, stopping), spliced into
``starman.config.OPTIONS``: kept apart so that the table stays one screenful per subject.

Pure, like starman.config: the rows only.
"""

from __future__ import annotations

from starman.optionvalues import to_positive_float
from start_server.common.options import (
    Option,
    to_nonneg_float,
    to_nonneg_int,
    to_positive_int,
    to_str,
)

__all__ = ["POOL_OPTIONS"]

POOL_OPTIONS: tuple[Option, ...] = (
    Option(
        "workers",
        to_positive_int,
        5,
        "number of worker processes",
        short=("-w",),  # gunicorn's
    ),
    Option(
        "max_requests",
        to_nonneg_int,
        1000,
        "recycle a worker after N requests (0 = never); its replacement boots"
        " shortly before, so no capacity is lost",
    ),
    Option(
        "max_requests_jitter",
        to_nonneg_int,
        0,
        "add 0..N to each worker's --max-requests, and stretch its --max-worker-memory"
        " and --max-worker-lifetime by the same fraction of --max-requests",
    ),
    Option(
        "max_worker_memory",
        to_positive_float,
        None,
        "recycle a worker whose private memory (resident, not shared) passes MB"
        " megabytes, looked at once a second",
        metavar="MB",
        doc_default="off",
    ),
    Option(
        "max_worker_lifetime",
        to_positive_float,
        None,
        "recycle a worker after S seconds",
        metavar="S",
        doc_default="off",
    ),
    Option(
        "graceful_timeout",
        to_nonneg_float,
        30.0,
        "seconds to drain on TERM/QUIT/HUP before SIGKILL",
        metavar="S",
    ),
    Option(
        "timeout",
        to_nonneg_float,
        0.0,
        "kill a worker in the app for longer than S seconds (0 = off)",
        metavar="S",
    ),
    Option(
        "spawn_interval",
        to_nonneg_float,
        0.0,
        "seconds between forks during a HUP",
        metavar="S",
    ),
    Option(
        "term_immediate",
        to_str,
        False,
        "TERM stops at once (Perl Starman's TERM) instead of draining",
        flag=True,
    ),
    Option(
        "status_file",
        to_str,
        None,
        "write a JSON scoreboard to FILE once a second",
        metavar="FILE",
    ),
)

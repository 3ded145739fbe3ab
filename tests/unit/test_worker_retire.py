"""When a worker near --max-requests tells the master it leaves soon (worker.retire_due)."""

from __future__ import annotations

import pytest

from starman.worker.retire import (
    NO_CHECK,
    RETIRE_LEAD_SECONDS,
    first_retire_check,
    next_retire_check,
    retire_due,
)


@pytest.mark.parametrize(
    ("limit", "served", "elapsed", "due"),
    [
        # 10,000 requests/s: the last 500 requests are within 50 ms.
        (1000, 400, 0.04, False),
        (1000, 600, 0.06, True),
        # 100 requests/s: only the last 5 requests are within 50 ms.
        (1000, 990, 9.9, False),
        (1000, 996, 9.96, True),
        # At or past the limit, always.
        (10, 10, 100.0, True),
        (10, 12, 100.0, True),
    ],
)
def test_retire_due(limit: int, served: int, elapsed: float, due: bool) -> None:
    assert RETIRE_LEAD_SECONDS == 0.05
    assert retire_due(limit, served, elapsed) is due


def test_first_look_is_the_first_request_only_with_a_limit() -> None:
    assert first_retire_check(1000) == 1
    assert first_retire_check(0) == NO_CHECK


@pytest.mark.parametrize(
    ("limit", "served", "next_at"),
    [
        (1000, 1, 125),  # an eighth of what is left
        (1000, 992, 993),  # never fewer than one request ahead
        (1000, 999, 1000),
    ],
)
def test_next_look_comes_closer_as_the_limit_nears(
    limit: int, served: int, next_at: int
) -> None:
    assert next_retire_check(limit, served) == next_at

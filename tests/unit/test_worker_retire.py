"""When a worker near --max-requests tells the master it leaves soon (worker.retire_due)."""

from __future__ import annotations

import pytest

from starman.worker.retire import RETIRE_LEAD_SECONDS, retire_due


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

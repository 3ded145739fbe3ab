"""--max-worker-memory and --max-worker-lifetime: their values, the jitter's stretch, and
the worker's once-a-second look (starman.worker.retire.Limits)."""

from __future__ import annotations

import pytest

from starman.config import Settings
from starman.optionvalues import to_positive_float
from starman.worker.config import in_process_config, worker_config
from starman.worker.retire import Limits, private_memory


@pytest.mark.parametrize("text", ["0", "-1", "abc", "", "inf", "nan", "1e3"])
def test_a_limit_that_is_not_a_positive_number_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        to_positive_float(text)


@pytest.mark.parametrize(("text", "value"), [("1", 1.0), ("0.5", 0.5), ("512", 512.0)])
def test_a_positive_number_is_taken(text: str, value: float) -> None:
    assert to_positive_float(text) == value


def _config(stretch: float = 0.0, **options: object) -> tuple[float, int]:
    config = worker_config(
        Settings(**options),
        parent_pid=None,
        generation=None,
        ssl_context=None,
        tls_fds=frozenset(),
        max_requests=0,
        stretch=stretch,
    )
    return config.max_worker_lifetime, config.max_worker_memory


def test_the_limits_are_off_by_default() -> None:
    assert _config() == (0.0, 0)


def test_the_jitter_stretches_both_limits_by_its_fraction() -> None:
    assert _config(max_worker_lifetime=100.0, max_worker_memory=10.0) == (
        100.0,
        10 * 1024 * 1024,
    )
    lifetime, memory = _config(0.1, max_worker_lifetime=100.0, max_worker_memory=10.0)
    assert lifetime == pytest.approx(110.0)
    assert memory == int(11 * 1024 * 1024)


def test_an_in_process_worker_has_no_limits() -> None:
    config = in_process_config(Settings(max_worker_lifetime=1.0, max_worker_memory=1.0))
    assert (config.max_worker_lifetime, config.max_worker_memory) == (0.0, 0)


def test_lifetime_passes_at_its_second() -> None:
    limits = Limits(10.0, 5.0, 0)
    assert limits.passed(14.9) is None
    assert limits.passed(15.0) == "lifetime"


def test_memory_passes_when_private_memory_is_over() -> None:
    assert private_memory() > 0
    assert Limits(0.0, 0.0, 1).passed(1.0) == "memory"
    assert Limits(0.0, 0.0, 1 << 50).passed(1.0) is None

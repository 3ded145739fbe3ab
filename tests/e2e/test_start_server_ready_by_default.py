"""start_server's defaults (no --wait-ready): our starman announces itself early, so a new
generation counts as started on its READY=1; a child that says nothing (Perl starman)
keeps Perl's --interval rule. See docs/hot-deploy.md §1.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.process import FIXTURES, PY, wait_for
from tests.harness.rawhttp import http_get, response_body
from tests.harness.start_server_program import START_SERVER, Run, start_on_free_ports

SLOW_APP = os.path.join(FIXTURES, "apps", "slow_boot.py")
PERL_STARMAN = "/usr/bin/starman"
CLIENTS = 4
PACE = 0.05  # seconds between two requests of one client


@pytest.fixture
def wd() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rd", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Load:
    """CLIENTS threads, each a loop of one request per connection, PACE apart: every
    failure, the generations that answered, and the slowest request."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.served: Counter[str] = Counter()
        self.failures: list[str] = []
        self.max_latency = 0.0
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)
        ]
        for t in self.threads:
            t.start()

    def _client(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                raw = http_get(self.address, timeout=15)
            except OSError as exc:
                self.failures.append(repr(exc))
                continue
            took = time.monotonic() - began
            self.max_latency = max(self.max_latency, took)
            if not raw.startswith(b"HTTP/1.1 200"):
                self.failures.append(raw[:60].decode(errors="replace"))
                continue
            self.served[response_body(raw).decode().split(":")[-1]] += 1
            # Paced: no worker reaches --max-requests (1000) during the test, so every
            # stall measured is the deploy's (a recycled worker's replacement imports
            # the app for 3 s too).
            self.stop.wait(PACE)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(20)


def test_slow_import_under_defaults_loses_no_request_and_stalls_none(wd: Path) -> None:
    """`start_server --port P -- starman --workers 2 app.py`, nothing else: the app takes
    3 s to import, yet two HUPs under load fail no request and delay none."""
    env = {"SLOW_BOOT": "3"}

    def started(run: Run) -> bool:
        return "starting new worker" in run.text()

    run, (port,) = start_on_free_ports(
        lambda p: [*START_SERVER, "--port", f"127.0.0.1:{p[0]}", "--",
                   PY, "-m", "starman", "--workers", "2", SLOW_APP],
        wd, started, env=env,
    )  # fmt: skip
    address = ("127.0.0.1", port)
    load: Load | None = None
    try:
        wait_for(lambda: http_get(address, timeout=10).startswith(b"HTTP/1.1 200"), 30)
        load = Load(address)
        wait_for(lambda: load is not None and load.served["1"] > 10, 10)
        for generation, hups in ((2, 1), (3, 2)):
            os.kill(run.proc.pid, signal.SIGHUP)
            # The previous generation is gone only after the new one took over.
            run.wait_text("old worker", timeout=40, count=hups)
            wait_for(lambda g=generation: load.served[str(g)] > 10, 10)  # type: ignore[union-attr]
    finally:
        if load is not None:
            load.finish()
        run.kill()
    text = run.text()
    print(
        f"max latency {load.max_latency:.3f}s, {len(load.failures)} failures, "
        f"{sum(load.served.values())} requests"
    )
    assert load.failures == [], load.failures[:5]
    # Promoted on READY=1, once the 3 s import was done, not after --interval's 1 s.
    assert text.count("is ready (READY=1 after") == 3, text
    assert "seems to have failed" not in text
    assert load.max_latency < 0.5, f"max latency {load.max_latency:.2f}s"


@pytest.mark.skipif(not os.path.exists(PERL_STARMAN), reason="Perl starman missing")
def test_perl_starman_keeps_the_interval_rule(wd: Path) -> None:
    """Perl starman never speaks sd_notify: it gets a NOTIFY_SOCKET now, ignores it, and
    each generation counts as started after --interval, as with Perl's start_server."""
    status = wd / "status"
    app = os.path.join(FIXTURES, "hello.psgi")

    def ready(run: Run) -> bool:
        return bool(status.exists() and status.read_text().startswith("1:"))

    run, (port,) = start_on_free_ports(
        lambda p: [*START_SERVER, "--port", f"127.0.0.1:{p[0]}",
                   "--status-file", str(status), "--signal-on-hup", "QUIT",
                   "--signal-on-term", "QUIT", "--",
                   PERL_STARMAN, "--workers", "2", app],
        wd, ready,
    )  # fmt: skip
    address = ("127.0.0.1", port)
    try:

        def body() -> bytes:
            return response_body(http_get(address, timeout=5))

        assert wait_for(lambda: body().endswith(b"generation 1\n"), 20)
        os.kill(run.proc.pid, signal.SIGHUP)
        text = run.wait_text("new worker is now running", timeout=20)
        assert wait_for(lambda: body().endswith(b"generation 2\n"), 20)
    finally:
        run.kill()
    assert "READY=1" not in text
    assert "announced itself" not in text
    assert "rolled back" not in text

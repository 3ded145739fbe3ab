"""systemd/start_server-notify-reload.conf: start_server.service as Type=notify-reload.

systemd 253+ sends ReloadSignal= (SIGHUP) itself and waits for RELOADING=1 with a
MONOTONIC_USEC= no older than its signal, then READY=1. The test plays systemd as
tests/e2e/test_systemd_units.py does: a datagram socket as NOTIFY_SOCKET, the signal
sent to the main pid. Verified by systemd-analyze only where systemd knows the type.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.e2e.test_systemd_units import (
    ANALYZE,
    HELLO,
    UNITS,
    Notify,
    Unit,
    body_of,
    free_port,
    load_unit,
    localise,
    one,
    parse_unit,
)
from tests.harness.process import kill_group, spawn, wait_for

DROP_IN = "start_server-notify-reload.conf"


def systemd_version() -> int:
    if ANALYZE is None:
        return 0
    out = subprocess.run(
        [ANALYZE, "--version"], capture_output=True, text=True, timeout=10
    ).stdout
    found = re.match(r"systemd (\d+)", out)
    return int(found.group(1)) if found else 0


def with_drop_in(unit: Unit, root: str) -> Unit:
    """The unit as systemd reads it with the drop-in: an empty value resets a list
    (ExecReload=), any other replaces the single value (Type=)."""
    with open(os.path.join(UNITS, DROP_IN), encoding="utf-8") as f:
        drop = parse_unit(localise(f.read(), root))
    merged = {section: dict(keys) for section, keys in unit.items()}
    for section, keys in drop.items():
        target = merged.setdefault(section, {})
        for key, values in keys.items():
            for value in values:
                if value == "":
                    target.pop(key, None)
                else:
                    target[key] = [value]
    return merged


@pytest.fixture
def root() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="nr", dir="/tmp")  # AF_UNIX paths: keep it short
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_drop_in_makes_the_service_notify_reload_without_its_exec_reload(
    root: str,
) -> None:
    for name in ("start_server.service", "start_server-activated.service"):
        base = load_unit(name, root)
        assert one(base, "Service", "Type") == "notify"
        assert "kill -HUP" in one(base, "Service", "ExecReload")
        unit = with_drop_in(base, root)
        assert one(unit, "Service", "Type") == "notify-reload"
        assert "ExecReload" not in unit["Service"]  # systemd's own HUP is the reload
        assert "ReloadSignal" not in unit["Service"]  # the default: SIGHUP


@pytest.mark.skipif(
    systemd_version() < 253, reason="systemd before 253 knows no Type=notify-reload"
)
def test_systemd_analyze_verify_is_silent_with_the_drop_in(root: str) -> None:
    assert ANALYZE is not None
    os.makedirs(os.path.join(root, "srv", "app"))
    unit_dir = os.path.join(root, "units")
    os.makedirs(os.path.join(unit_dir, "start_server.service.d"))
    for name, target in (
        ("start_server.service", "start_server.service"),
        (DROP_IN, os.path.join("start_server.service.d", "notify-reload.conf")),
    ):
        with open(os.path.join(UNITS, name), encoding="utf-8") as f:
            text = localise(f.read(), root)
        with open(os.path.join(unit_dir, target), "w", encoding="utf-8") as f:
            f.write(text)
    proc = subprocess.run(
        [ANALYZE, "verify", os.path.join(unit_dir, "start_server.service")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=unit_dir,
    )
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _reload(notify: Notify, unit: Unit, main_pid: int) -> tuple[list[str], int]:
    """What systemd does on `systemctl reload` of a notify-reload unit: ReloadSignal=
    to the main process, then wait for RELOADING=1 and READY=1. Returns the messages
    and the signal's time (CLOCK_MONOTONIC, µs)."""
    sig = signal.Signals[unit["Service"].get("ReloadSignal", ["SIGHUP"])[0]]
    sent = _monotonic_usec()
    os.kill(main_pid, sig)
    return notify.expect("READY=1", timeout=40), sent


def _check_reloading(got: list[str], sent: int) -> None:
    first = got[0].split("\n")
    assert first[0] == "RELOADING=1", got
    (stamp,) = [f for f in first if f.startswith("MONOTONIC_USEC=")]
    # systemd ignores a RELOADING=1 stamped before its signal.
    assert sent <= int(stamp.split("=")[1]) <= _monotonic_usec()


def test_reload_as_notify_reload_reports_the_deploy_and_its_rollback(
    root: str,
) -> None:
    app_dir = os.path.join(root, "srv", "app")
    os.makedirs(app_dir)
    os.makedirs(os.path.join(root, "run", "app"))  # RuntimeDirectory=app
    shutil.copy(HELLO, os.path.join(app_dir, "app.py"))
    path = os.path.join(root, "notify")
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sink.bind(path)
    notify = Notify(path, sink)
    log_path = os.path.join(root, "start_server.log")
    proc: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(5):
            port = free_port()
            unit = with_drop_in(
                load_unit("start_server.service", root, port=port), root
            )
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                proc = spawn(
                    shlex.split(one(unit, "Service", "ExecStart")),
                    env={"NOTIFY_SOCKET": path},
                    cwd=app_dir,
                    stdout=fd,
                    stderr=fd,
                )
            finally:
                os.close(fd)
            notify.main_pid = proc.pid
            try:
                notify.expect("READY=1", timeout=20)
                break
            except TimeoutError:
                kill_group(proc)
                with open(log_path, encoding="utf-8") as f:
                    assert "Address already in use" in f.read()
        else:
            raise AssertionError("no free port in 5 attempts")
        address = ("127.0.0.1", port)
        assert body_of(address).endswith("(generation 1)\n")

        got, sent = _reload(notify, unit, proc.pid)
        _check_reloading(got, sent)
        assert "STATUS=generation 2 serving" in got[-1].split("\n"), got
        wait_for(lambda: body_of(address).endswith("(generation 2)\n"), timeout=10)

        # A deploy that cannot start: the reload still ends, with READY=1 naming it.
        with open(os.path.join(app_dir, "app.py"), "w", encoding="utf-8") as f:
            f.write("raise RuntimeError('broken deploy')\n")
        got, sent = _reload(notify, unit, proc.pid)
        _check_reloading(got, sent)
        status = [f for f in got[-1].split("\n") if f.startswith("STATUS=")]
        assert status, got
        assert re.fullmatch(
            r"STATUS=generation 3 failed to start \(.+\); generation 2 \(pid \d+\) serving",
            status[0],
        ), status
        assert body_of(address).endswith("(generation 2)\n")
        assert notify.ignored == []
    finally:
        if proc is not None:
            kill_group(proc)
        sink.close()

"""Files, sockets and logs that must not leak: socket modes, secrets kept out of the logs.

(--user/--group before the app loads: test_starman_process.py; pid and status file modes:
tests/unit/test_proc_files.py.)
"""

from __future__ import annotations

import os
import stat

import pytest

from tests.harness.process import FIXTURES, wait_for
from tests.harness.rawhttp import http_request
from tests.harness.starman_program import Launcher, launcher

__all__ = ["launcher"]  # the fixture, shared from the harness

APP = os.path.join(FIXTURES, "apps", "fault_app.py")


@pytest.mark.parametrize("mode", [0o600, 0o660])
def test_socket_mode_sets_the_unix_socket_permissions(
    launcher: Launcher, mode: int
) -> None:
    path = os.path.join(launcher.tmpdir, f"m{mode:o}.sock")
    server = launcher.run(
        [
            "--workers",
            "1",
            "--listen",
            f"unix:{path}",
            "--socket-mode",
            f"{mode:o}",
            APP,
        ]
    )
    server.wait_log("all 1 workers ready", timeout=20)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    raw = http_request(path, b"GET / HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200")


def test_secrets_in_the_environment_and_headers_stay_out_of_the_logs(
    launcher: Launcher,
) -> None:
    access = os.path.join(launcher.tmpdir, "access.log")
    server = launcher.inherited(
        "--log-level",
        "debug",
        "--access-log",
        access,
        APP,
        workers=1,
        env={"HX_SECRET": "env-secret-123", "DATABASE_URL": "postgres://u:pw-456@h/db"},
    )
    assert isinstance(server.address, str)
    for path in ("/", "/boom?token=q-000"):
        http_request(
            server.address,
            f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
            "Authorization: Bearer hdr-secret-789\r\nCookie: s=cookie-secret-000\r\n"
            "\r\n".encode(),
        )
    server.wait_log("the app failed")  # the app's traceback is in the error log
    wait_for(lambda: os.path.exists(access) and os.path.getsize(access) > 0)
    logs = server.log()
    with open(access, encoding="utf-8") as f:
        logs += f.read()
    for secret in ("env-secret-123", "pw-456", "hdr-secret-789", "cookie-secret-000"):
        assert secret not in logs
    assert "HX_SECRET" not in logs and "DATABASE_URL" not in logs

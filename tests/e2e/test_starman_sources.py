"""Where starman's sockets come from: start_server (ours and Perl's), systemd, --listen."""

from __future__ import annotations

import os
import shutil
import signal

import psutil
import pytest

from tests.harness.process import PERL_START_SERVER, PY, wait_for
from tests.harness.rawhttp import http_get, response_body
from tests.harness.starman_program import (
    APP,
    Launcher,
    Server,
    launcher,
    listening_address,
)

__all__ = ["launcher"]


def test_listen_on_tcp_ipv6_loopback_and_unix(launcher: Launcher) -> None:
    path = os.path.join(launcher.tmpdir, "own.sock")
    server = launcher.run(
        [
            "--workers",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "[::1]:0",
            "--listen",
            f"unix:{path}",
            APP,
        ]
    )
    server.wait_log("all 1 workers ready")
    for address in (
        listening_address(server, r"127\.0\.0\.1"),
        listening_address(server, r"::1"),
        path,
    ):
        raw = http_get(address)
        assert raw.startswith(b"HTTP/1.1 200"), (address, raw)
        assert response_body(raw).endswith(b":1:v1")
    server.signal(signal.SIGQUIT)
    assert server.proc.wait(timeout=10) == 0
    assert not os.path.exists(path)  # we bound it, so we remove it


def test_inherited_unix_socket_is_never_unlinked_and_listen_is_ignored(
    launcher: Launcher,
) -> None:
    server = launcher.inherited("--listen", "127.0.0.1:1", APP, workers=1)
    assert server.body().endswith(":1:v1")
    assert "--listen/--host/--port/--socket are ignored" in server.log()
    server.signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 0
    assert isinstance(server.address, str) and os.path.exists(server.address)


def _generation_swap(server: Server, sock_path: str, hup_target: int) -> None:
    def first_pid() -> str:
        raw = http_get(sock_path)
        return (
            raw.startswith(b"HTTP/1.1 200")
            and response_body(raw).decode().split(":")[0]
        )  # type: ignore[return-value]  # falsy while not up

    pid = wait_for(first_pid, timeout=15)
    os.kill(hup_target, signal.SIGHUP)
    new = wait_for(lambda: (p := first_pid()) and p != pid and p, timeout=20)
    assert new != pid

    # The old generation's worker is gone (reaped or at least a zombie).
    def gone() -> bool:
        try:
            return psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(gone, timeout=10)


def test_under_our_start_server_hup_swaps_generations(launcher: Launcher) -> None:
    sock_path = os.path.join(launcher.tmpdir, "ss.sock")
    server = launcher.run(
        ["--path", sock_path, "--", PY, "-m", "starman", "--workers", "1", APP],
        argv0=(PY, "-m", "start_server"),
    )
    _generation_swap(server, sock_path, server.pid)


@pytest.mark.perl
@pytest.mark.skipif(
    not os.path.exists(PERL_START_SERVER), reason="Perl start_server missing"
)
def test_under_perl_start_server_hup_swaps_generations(launcher: Launcher) -> None:
    sock_path = os.path.join(launcher.tmpdir, "ps.sock")
    server = launcher.run(
        ["--path", sock_path, "--", PY, "-m", "starman", "--workers", "1", APP],
        argv0=(PERL_START_SERVER,),
    )
    _generation_swap(server, sock_path, server.pid)


@pytest.mark.skipif(
    shutil.which("systemd-socket-activate") is None, reason="no systemd-socket-activate"
)
def test_systemd_socket_activation_and_workers_do_not_see_listen_fds(
    launcher: Launcher,
) -> None:
    sock_path = os.path.join(launcher.tmpdir, "sd.sock")
    server = launcher.run(
        ["-l", sock_path, PY, "-m", "starman", "--workers", "1", APP],
        argv0=(str(shutil.which("systemd-socket-activate")),),
    )
    wait_for(lambda: os.path.exists(sock_path))
    # The first connection makes systemd-socket-activate exec starman with LISTEN_FDS.
    raw = http_get(sock_path, timeout=15)
    assert raw.startswith(b"HTTP/1.1 200"), raw
    assert "(systemd, fd 3)" in server.log()
    names = set(response_body(http_get(sock_path, "/env")).decode().split())
    assert "PATH" in names
    assert not {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} & names


def test_listen_pid_of_another_process_is_ignored(launcher: Launcher) -> None:
    path = os.path.join(launcher.tmpdir, "own2.sock")
    server = launcher.run(
        ["--workers", "1", "--listen", path, APP],
        env={"LISTEN_FDS": "1", "LISTEN_PID": "1"},
    )
    server.wait_log("all 1 workers ready")
    assert f"unix:{path} (bound" in server.log()
    assert http_get(path).startswith(b"HTTP/1.1 200")

"""start_server black-box: generations, signals, files and options (docs/server-starter-compat.md)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness.process import PY, wait_for
from tests.harness.start_server_program import (
    ECHOD,
    START_SERVER,
    Run,
    ask,
    ask_udp,
    only_generation,
    read_dump,
    read_status,
    start_on_free_ports,
    wait_status,
)

RunFactory = Callable[..., Run]


@pytest.fixture
def wd() -> Iterator[Path]:
    """A short working directory (AF_UNIX paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="ss", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def runs(wd: Path) -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.kill()


@pytest.fixture
def start(wd: Path, runs: list[Run]) -> RunFactory:
    """start(*options, cmd=ECHOD, env=None): run start_server with echod by default."""

    def _start(
        *options: str,
        cmd: list[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Run:
        run = Run(
            [*START_SERVER, *options, "--", *(cmd or ECHOD)], wd, env=env, cwd=cwd
        )
        runs.append(run)
        return run

    return _start


def test_hup_swaps_generation_and_signals_old_only_after_interval(
    start: RunFactory, wd: Path
) -> None:
    sock, status = str(wd / "s"), wd / "status"
    run = start("--path", sock, "--interval", "1", "--status-file", str(status))
    (gen1,) = wait_status(status, only_generation(1))
    assert ask(sock) == f"{gen1[1]}:1"
    hup_at = time.monotonic()
    os.kill(run.proc.pid, signal.SIGHUP)
    run.wait_text("received HUP, spawning a new worker")
    # During the interval the old generation is untouched and serving.
    run.wait_text("generation 2 ready")
    assert f"echod {gen1[1]} got" not in run.text()
    assert ask(sock).endswith((":1", ":2"))
    run.wait_text(f"echod {gen1[1]} got SIGTERM")
    assert time.monotonic() - hup_at >= 1.0
    text = run.text()
    assert f"new worker is now running, sending TERM to old workers:{gen1[1]}" in text
    (gen2,) = wait_status(status, only_generation(2))
    assert ask(sock) == f"{gen2[1]}:2"
    assert f"old worker {gen1[1]} died, status:0" in run.text()


def test_signal_on_hup_and_kill_old_delay(start: RunFactory, wd: Path) -> None:
    sock, status = str(wd / "s"), wd / "status"
    run = start(
        "--path", sock, "--interval", "0", "--status-file", str(status),
        "--signal-on-hup", "usr1", "--kill-old-delay", "1",
    )  # fmt: skip
    (gen1,) = wait_status(status, only_generation(1))
    run.wait_text(f"echod {gen1[1]} generation 1 ready")
    os.kill(run.proc.pid, signal.SIGHUP)
    run.wait_text("sleeping 1 secs before killing old workers")
    slept_at = time.monotonic()
    run.wait_text(f"echod {gen1[1]} got SIGUSR1")
    assert time.monotonic() - slept_at >= 0.9
    wait_status(status, only_generation(2))


def test_new_generation_failing_at_start_is_retried_while_old_serves(
    start: RunFactory, wd: Path
) -> None:
    sock, status, envdir = str(wd / "s"), wd / "status", wd / "env"
    envdir.mkdir()
    run = start(
        "--path", sock, "--interval", "0.3", "--status-file", str(status),
        "--envdir", str(envdir),
    )  # fmt: skip
    (gen1,) = wait_status(status, only_generation(1))
    (envdir / "ECHOD_EXIT").write_text("3\n")
    os.kill(run.proc.pid, signal.SIGHUP)
    run.wait_text("seems to have failed to start, exit status:768", count=2)
    assert ask(sock) == f"{gen1[1]}:1"
    assert read_status(status) == [gen1]
    (envdir / "ECHOD_EXIT").unlink()
    entries = wait_status(status, lambda st: len(st) == 1 and st[0][0] >= 4)
    gen, pid = entries[0]
    assert ask(sock) == f"{pid}:{gen}"
    assert f"echod {gen1[1]} got SIGTERM" in run.text()


def test_current_generation_killed_is_restarted_with_next_number(
    start: RunFactory, wd: Path
) -> None:
    sock, status = str(wd / "s"), wd / "status"
    run = start("--path", sock, "--interval", "0", "--status-file", str(status))
    (gen1,) = wait_status(status, only_generation(1))
    os.kill(gen1[1], signal.SIGKILL)
    (gen2,) = wait_status(status, only_generation(2))
    run.wait_text(f"worker {gen1[1]} died unexpectedly with status:9, restarting")
    assert ask(sock) == f"{gen2[1]}:2"


@pytest.mark.parametrize(
    ("sig", "options", "forwarded"),
    [
        (signal.SIGTERM, ["--signal-on-term", "USR2"], "SIGUSR2"),
        (signal.SIGTERM, [], "SIGTERM"),
        (signal.SIGINT, ["--signal-on-term", "USR2"], "SIGTERM"),
        (signal.SIGQUIT, [], "SIGTERM"),
    ],
)
def test_stop_signal_forwards_and_exits_after_children(
    start: RunFactory,
    wd: Path,
    sig: signal.Signals,
    options: list[str],
    forwarded: str,
) -> None:
    sock, status, pidfile = wd / "s", wd / "status", wd / "pid"
    run = start(
        "--path", str(sock), "--interval", "0", "--status-file", str(status),
        "--pid-file", str(pidfile), *options,
    )  # fmt: skip
    (gen1,) = wait_status(status, only_generation(1))
    assert pidfile.read_text().strip() == str(run.proc.pid)
    run.wait_text(f"echod {gen1[1]} generation 1 ready")
    os.kill(run.proc.pid, sig)
    assert run.wait_exit() == 0
    text = run.text()
    assert f"echod {gen1[1]} got {forwarded}" in text
    assert text.rstrip().endswith("exiting")
    assert not pidfile.exists() and not status.exists() and not sock.exists()


def test_status_file_during_overlap(start: RunFactory, wd: Path) -> None:
    sock, status = str(wd / "s"), wd / "status"
    run = start(
        "--path", sock, "--interval", "0", "--status-file", str(status),
        "--kill-old-delay", "1",
    )  # fmt: skip
    (gen1,) = wait_status(status, only_generation(1))
    assert status.read_text() == f"1:{gen1[1]}\n"
    os.kill(run.proc.pid, signal.SIGHUP)
    both = wait_status(status, lambda st: len(st) == 2)
    assert both[0] == gen1 and both[1][0] == 2
    assert status.read_text() == f"1:{gen1[1]}\n2:{both[1][1]}\n"
    assert wait_status(status, only_generation(2)) == [both[1]]
    assert stat.S_IMODE(status.stat().st_mode) == 0o644


def test_restart_client_waits_for_swap_and_stop_waits_for_exit(
    start: RunFactory, wd: Path
) -> None:
    sock, status, pidfile = str(wd / "s"), wd / "status", wd / "pid"
    run = start(
        "--path", sock, "--interval", "0.2", "--status-file", str(status),
        "--pid-file", str(pidfile),
    )  # fmt: skip
    wait_status(status, only_generation(1))
    files = ["--pid-file", str(pidfile), "--status-file", str(status)]
    res = subprocess.run(
        [*START_SERVER, "--restart", *files], capture_output=True, timeout=30
    )
    assert res.returncode == 0, res.stderr
    assert [g for g, _ in read_status(status)] == [2]
    res = subprocess.run(
        [*START_SERVER, "--stop", "--pid-file", str(pidfile)],
        capture_output=True,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    assert f"stopping now (pid:{run.proc.pid})" in res.stderr.decode()
    # --stop returned: start_server has exited (reap it without waiting).
    assert run.wait_exit(timeout=1) == 0
    assert not pidfile.exists()


def test_restart_gives_up_with_reason_when_new_generation_keeps_failing(
    start: RunFactory, wd: Path
) -> None:
    sock, status, pidfile, envdir = str(wd / "s"), wd / "status", wd / "pid", wd / "e"
    envdir.mkdir()
    start(
        "--path", sock, "--interval", "0.2", "--status-file", str(status),
        "--pid-file", str(pidfile), "--envdir", str(envdir),
    )  # fmt: skip
    wait_status(status, only_generation(1))
    (envdir / "ECHOD_EXIT").write_text("1")
    res = subprocess.run(
        [*START_SERVER, "--restart", "--pid-file", str(pidfile), "--status-file",
         str(status), "--wait-timeout", "1"],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 1
    err = res.stderr.decode()
    assert err.startswith("start_server: error: restart did not complete within 1s")
    assert err.count("\n") == 1


def test_envdir_is_visible_and_reread_on_hup(start: RunFactory, wd: Path) -> None:
    sock, status, envdir, dump = str(wd / "s"), wd / "status", wd / "e", wd / "d"
    envdir.mkdir()
    (envdir / "GREETING").write_text("hello\nignored second line\n")
    (envdir / ".hidden").write_text("x")
    run = start(
        "--path", sock, "--interval", "0", "--status-file", str(status),
        "--envdir", str(envdir), env={"ECHOD_DUMP": str(dump)},
    )  # fmt: skip
    env1 = read_dump(dump, 1)["env"]
    assert isinstance(env1, dict)
    assert env1["GREETING"] == "hello" and ".hidden" not in env1
    assert env1["ENVDIR"] == str(envdir)
    (envdir / "GREETING").write_text("bonjour\n")
    os.kill(run.proc.pid, signal.SIGHUP)
    env2 = read_dump(dump, 2)["env"]
    assert isinstance(env2, dict)
    assert env2["GREETING"] == "bonjour"
    assert env2["SERVER_STARTER_GENERATION"] == "2"


def test_auto_restart_makes_new_generations(start: RunFactory, wd: Path) -> None:
    sock, status = str(wd / "s"), wd / "status"
    run = start(
        "--path", sock, "--interval", "0", "--status-file", str(status),
        "--enable-auto-restart", "--auto-restart-interval", "1", "--kill-old-delay", "0",
    )  # fmt: skip
    wait_status(status, only_generation(1))
    t0 = time.monotonic()
    wait_status(status, only_generation(3), timeout=10)
    assert time.monotonic() - t0 >= 1.5
    assert "autorestart triggered (interval=1)" in run.text()


def test_auto_restart_from_environment(start: RunFactory, wd: Path) -> None:
    sock, status, dump = str(wd / "s"), wd / "status", wd / "d"
    start(
        "--path", sock, "--interval", "0", "--status-file", str(status),
        env={"ENABLE_AUTO_RESTART": "1", "AUTO_RESTART_INTERVAL": "1",
             "KILL_OLD_DELAY": "0", "ECHOD_DUMP": str(dump)},
    )  # fmt: skip
    wait_status(status, only_generation(2), timeout=10)
    env = read_dump(dump, 1)["env"]
    assert isinstance(env, dict)
    assert env["AUTO_RESTART_INTERVAL"] == "1" and env["KILL_OLD_DELAY"] == "0"


@pytest.mark.parametrize("piped", [False, True])
def test_log_file_collects_server_and_child_output(
    start: RunFactory, wd: Path, piped: bool
) -> None:
    sock, status, logf = str(wd / "s"), wd / "status", wd / "log"
    target = f"| cat >> {logf}" if piped else str(logf)
    run = start(
        "--path", sock, "--interval", "0", "--status-file", str(status),
        "--log-file", target,
    )  # fmt: skip
    (gen1,) = wait_status(status, only_generation(1))
    wait_for(lambda: f"echod {gen1[1]} generation 1 ready" in logf.read_text())
    os.kill(run.proc.pid, signal.SIGTERM)
    assert run.wait_exit() == 0
    text = wait_for(lambda: logf.read_text() if "exiting" in logf.read_text() else "")
    assert "starting new worker" in text and f"echod {gen1[1]} got SIGTERM" in text
    # Only the banner (before redirection) reaches the original stderr.
    assert "starting new worker" not in run.text()


def test_daemonize_returns_at_once_and_keeps_serving(wd: Path, runs: list[Run]) -> None:
    sock, status, pidfile, logf = str(wd / "s"), wd / "status", wd / "pid", wd / "log"
    run = Run(
        [*START_SERVER, "--path", sock, "--interval", "0", "--daemonize",
         "--log-file", str(logf), "--status-file", str(status),
         "--pid-file", str(pidfile), "--", *ECHOD],
        wd,
    )  # fmt: skip
    runs.append(run)
    assert run.wait_exit(timeout=10) == 0
    (gen1,) = wait_status(status, only_generation(1))
    daemon = int(wait_for(lambda: pidfile.read_text().strip()))
    assert daemon != run.proc.pid
    assert ask(sock) == f"{gen1[1]}:1"
    res = subprocess.run(
        [*START_SERVER, "--stop", "--pid-file", str(pidfile)],
        capture_output=True,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    assert not pidfile.exists()
    assert "exiting" in logf.read_text()


def test_dir_sets_child_cwd(start: RunFactory, wd: Path) -> None:
    sock, dump = str(wd / "s"), wd / "d"
    child_dir = wd / "child"
    child_dir.mkdir()
    start("--path", sock, "--interval", "0", "--dir", str(child_dir),
          env={"ECHOD_DUMP": str(dump)})  # fmt: skip
    assert read_dump(dump, 1)["cwd"] == str(child_dir)


def test_fixed_fd_port_and_udp_and_tcp(wd: Path, runs: list[Run]) -> None:
    dump = wd / "d"

    def ready(run: Run) -> bool:
        return Path(f"{dump}.1").exists()

    run, (tcp, udp) = start_on_free_ports(
        lambda p: [*START_SERVER, "--port", f"127.0.0.1:{p[0]}=5", "--port",
                   f"u{p[1]}", "--interval", "0", "--", *ECHOD],
        wd, ready, nports=2, env={"ECHOD_DUMP": str(dump)},
    )  # fmt: skip
    runs.append(run)
    data = read_dump(dump, 1)
    env = data["env"]
    assert isinstance(env, dict)
    key_tcp, key_udp = env["SERVER_STARTER_PORT"].split(";")
    assert key_tcp == f"127.0.0.1:{tcp}=5"
    assert key_udp.startswith(f"{udp}=")
    fds = data["fds"]
    assert isinstance(fds, list)
    assert fds[0] == {
        "key": f"127.0.0.1:{tcp}", "fd": 5, "family": "AF_INET",
        "type": "SOCK_STREAM", "address": ["127.0.0.1", tcp],
    }  # fmt: skip
    assert fds[1]["type"] == "SOCK_DGRAM" and fds[1]["address"] == ["0.0.0.0", udp]
    pid = run.text().split("starting new worker ")[1].split()[0]
    assert ask(("127.0.0.1", tcp)) == f"{pid}:1"
    assert ask_udp(("127.0.0.1", udp)) == f"{pid}:1"
    assert "socket is duplicated to file descriptor 5" in run.text()


def test_stale_unix_socket_is_replaced_and_removed_at_exit(
    start: RunFactory, wd: Path
) -> None:
    path = wd / "s"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    status = wd / "status"
    run = start("--path", str(path), "--interval", "0", "--status-file", str(status))
    (gen1,) = wait_status(status, only_generation(1))
    assert ask(str(path)) == f"{gen1[1]}:1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o777
    assert "removing existing socket file" in run.text()
    os.kill(run.proc.pid, signal.SIGTERM)
    assert run.wait_exit() == 0
    assert not path.exists()


def test_backlog_is_applied(start: RunFactory, wd: Path) -> None:
    if shutil.which("ss") is None:
        pytest.skip("ss(8) not installed")
    path, status = wd / "s", wd / "status"
    start("--path", str(path), "--interval", "0", "--backlog", "7",
          "--status-file", str(status))  # fmt: skip
    wait_status(status, only_generation(1))
    out = subprocess.run(
        ["ss", "-xlnH", "src", str(path)], capture_output=True, text=True, timeout=10
    ).stdout
    # For a listening socket, ss reports the backlog in the Send-Q column.
    assert out.split()[3] == "7", out


def test_second_server_with_same_pid_file_is_refused(
    start: RunFactory, wd: Path
) -> None:
    status, pidfile = wd / "status", wd / "pid"
    first = start("--path", str(wd / "a"), "--interval", "0", "--status-file",
                  str(status), "--pid-file", str(pidfile))  # fmt: skip
    wait_status(status, only_generation(1))
    second = start(
        "--path", str(wd / "b"), "--interval", "0", "--pid-file", str(pidfile)
    )
    assert second.wait_exit() == 1
    assert f"locked by a running server (pid {first.proc.pid})" in second.text()
    assert pidfile.read_text().strip() == str(first.proc.pid)


def test_child_side_library_adopts_sockets(start: RunFactory, wd: Path) -> None:
    out = wd / "out"
    script = (
        "import start_server,sys;"
        "p=start_server.server_ports();s=start_server.listen_all();"
        "open(sys.argv[1],'w').write(repr((p,[(k,x.family.name,x.type.name) for k,x in s])))"
    )
    start("--path", str(wd / "s"), "--interval", "0", cmd=[PY, "-c", script, str(out)])
    text = wait_for(lambda: out.exists() and out.read_text())
    assert text.startswith("({'" + str(wd / "s") + "': ")
    assert "AF_UNIX', 'SOCK_STREAM')]" in text


def test_normal_path_imports_no_psutil_or_httptools() -> None:
    code = (
        "import sys, start_server.cli, start_server.supervisor, start_server.common.listen;"
        "bad=[m for m in ('psutil','httptools') if m in sys.modules];"
        "sys.exit(repr(bad) if bad else 0)"
    )
    res = subprocess.run([PY, "-c", code], capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr


def test_example_echo_server_serves_under_start_server(
    start: RunFactory, wd: Path
) -> None:
    from tests.harness.process import REPO
    from tests.harness.rawhttp import http_get, response_body

    sock, status = str(wd / "s"), wd / "status"
    example = os.path.join(REPO, "docs", "examples", "echo_server.py")
    start("--path", sock, "--interval", "0", "--status-file", str(status),
          cmd=[PY, example])  # fmt: skip
    (gen1,) = wait_status(status, only_generation(1))
    body = wait_for(lambda: response_body(http_get(sock)))
    assert body == f"hello from pid {gen1[1]}, generation 1\n".encode()

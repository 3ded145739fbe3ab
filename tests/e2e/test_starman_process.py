"""The starman master as a black box: worker count, signals, reloads, recycling, preload."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

import psutil
import pytest

from starman.master import immortal
from tests.harness.process import wait_for
from tests.harness.rawhttp import response_body
from tests.harness.starman_program import BROKEN_APP, Launcher, Server, launcher

__all__ = ["launcher"]

APP = os.path.join(os.path.dirname(__file__), "..", "fixtures", "apps", "master_app.py")


def test_ttin_ttou_change_the_worker_count_never_below_one(launcher: Launcher) -> None:
    server = launcher.inherited(APP, workers=1)
    assert len(server.workers()) == 1
    server.signal(signal.SIGTTOU)
    server.wait_log("already at 1 worker")
    assert len(server.workers()) == 1
    server.signal(signal.SIGTTIN)
    wait_for(lambda: len(server.workers()) == 2)
    server.signal(signal.SIGTTIN)
    wait_for(lambda: len(server.workers()) == 3)
    server.signal(signal.SIGTTOU)
    wait_for(lambda: len(server.workers()) == 2)
    assert server.body().endswith(":1:v1")


def test_ttou_retires_a_worker_that_is_not_inside_the_app(launcher: Launcher) -> None:
    # A short request then a long one, so that when TTOU comes the worker still in the
    # app is (as the kernel hands out connections) the newer one, which a "newest slot"
    # rule would retire. The status file is written once a second: the sleeps leave
    # room for that.
    status = os.path.join(launcher.tmpdir, "status.json")
    server = launcher.inherited(APP, "--status-file", status, workers=2)
    results: list[bytes] = []

    def in_app() -> set[int]:
        with open(status) as f:
            doc = json.load(f)
        return {w["pid"] for w in doc["workers"] if w.get("state") == "in_app"}

    short = threading.Thread(target=lambda: results.append(server.get("/sleep?s=2.5")))
    long = threading.Thread(
        target=lambda: results.append(server.get("/sleep?s=6", timeout=15))
    )
    short.start()
    wait_for(lambda: len(in_app()) == 1)
    long.start()
    try:
        wait_for(lambda: len(in_app()) == 2)
        short.join(timeout=10)
        (busy,) = wait_for(lambda: in_app() if len(in_app()) == 1 else None)
        server.signal(signal.SIGTTOU)
        wait_for(lambda: server.workers() == {busy})
    finally:
        short.join(timeout=10)
        long.join(timeout=10)
    assert len(results) == 2
    assert response_body(results[1]).decode().startswith(f"{busy}:")


def test_killed_worker_is_replaced_and_serves(launcher: Launcher) -> None:
    server = launcher.inherited(APP, workers=2)
    before = server.workers()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(server.workers()) == 2 and victim not in server.workers())
    server.wait_log(f"worker {victim} killed by SIGKILL")
    assert server.body().endswith(":1:v1")


def test_hup_replaces_every_worker_without_a_failed_request(launcher: Launcher) -> None:
    server = launcher.inherited(APP, workers=2)
    old = server.workers()
    errors: list[str] = []
    bodies: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                raw = server.get()
            except OSError as exc:
                errors.append(repr(exc))
                continue
            if not raw.startswith(b"HTTP/1.1 200"):
                errors.append(repr(raw[:100]))
            bodies.append(response_body(raw).decode())

    slow: list[bytes] = []
    slow_thread = threading.Thread(
        target=lambda: slow.append(server.get("/sleep?s=1.5"))
    )
    slow_thread.start()
    client = threading.Thread(target=loop)
    client.start()
    try:
        wait_for(lambda: len(bodies) >= 5)
        server.signal(signal.SIGHUP)
        wait_for(
            lambda: len(server.workers()) == 2 and not server.workers() & old,
            timeout=10,
        )
        n = len(bodies)
        wait_for(lambda: len(bodies) >= n + 5)
    finally:
        stop.set()
        client.join(timeout=10)
        slow_thread.join(timeout=10)
    assert errors == []
    assert slow and slow[0].startswith(b"HTTP/1.1 200"), slow
    assert any(b.endswith(":2:v1") for b in bodies)
    assert bodies[-1].endswith(":2:v1")


def test_term_lets_a_slow_request_finish_then_exits_0(launcher: Launcher) -> None:
    status = os.path.join(launcher.tmpdir, "status.json")
    server = launcher.inherited(APP, "--status-file", status, workers=1)
    result: list[bytes] = []
    thread = threading.Thread(target=lambda: result.append(server.get("/sleep?s=1.5")))
    thread.start()

    def in_app() -> bool:
        with open(status) as f:
            doc = json.load(f)
        return any(w.get("state") == "in_app" for w in doc["workers"])

    try:
        wait_for(in_app)
        server.signal(signal.SIGTERM)
        assert server.proc.wait(timeout=10) == 0
    finally:
        thread.join(timeout=10)
    assert result and result[0].startswith(b"HTTP/1.1 200"), result


def _keepalive_get(sock: socket.socket) -> tuple[bytes, str]:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(4096)
    return head, body.decode()


def test_max_requests_recycles_the_worker_after_n_requests(launcher: Launcher) -> None:
    server = launcher.inherited(APP, "--max-requests", "3", workers=1)
    assert isinstance(server.address, str)
    pids = []
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(server.address)
        for _ in range(3):
            head, body = _keepalive_get(sock)
            pids.append(body.split(":")[0])
            # The limiting answer keeps the connection too: it moves to a live worker
            # (seamless recycling, docs/architecture.md §2).
            assert b"connection: close" not in head.lower(), head
    assert len(set(pids)) == 1
    wait_for(lambda: server.workers() and str(min(server.workers())) != pids[0])
    assert server.body().split(":")[0] != pids[0]


def _near_the_limit(
    server: Server, sock: socket.socket, requests: int
) -> tuple[int, int]:
    """Send ``requests`` keep-alive requests (all answered by the one worker), then wait
    for the replacement its leaving-soon notice boots: (old pid, new pid)."""
    assert isinstance(server.address, str)
    (old,) = server.workers()
    sock.settimeout(5)
    sock.connect(server.address)
    for _ in range(requests):
        head, body = _keepalive_get(sock)
        assert body.split(":")[0] == str(old)
    wait_for(lambda: len(server.workers()) == 2)
    (new,) = server.workers() - {old}
    return old, new


def test_near_max_requests_the_replacement_boots_before_the_worker_leaves(
    launcher: Launcher,
) -> None:
    # --max-requests 40 on one keep-alive connection: well before the 40th request the
    # replacement is up, while the old worker still answers with keep-alive.
    server = launcher.inherited(APP, "--max-requests", "40", workers=1)
    with socket.socket(socket.AF_UNIX) as sock:
        old, new = _near_the_limit(server, sock, 30)
        for i in range(31, 41):
            head, body = _keepalive_get(sock)
            assert body.split(":")[0] == str(old)
            # Not even the 40th says close: the connection moves (seamless recycling).
            assert b"connection: close" not in head.lower(), (i, head)
    wait_for(lambda: server.workers() == {new})
    assert server.body().split(":")[0] == str(new)


def test_a_worker_that_gave_notice_then_went_quiet_retires_anyway(
    launcher: Launcher,
) -> None:
    # Near the limit, then no more traffic: the notice has booted a replacement, so the
    # old worker does not linger beside it (RETIRE_GRACE_SECONDS, 2 s).
    server = launcher.inherited(APP, "--max-requests", "40", workers=1)
    with socket.socket(socket.AF_UNIX) as sock:
        _old, new = _near_the_limit(server, sock, 38)
        wait_for(lambda: server.workers() == {new}, timeout=10)
    assert server.body().split(":")[0] == str(new)


def test_preload_app_imports_once_in_the_master(launcher: Launcher) -> None:
    record = os.path.join(launcher.tmpdir, "imports.txt")
    env = {"MASTER_APP_IMPORT_LOG": record}
    server = launcher.inherited(APP, "--preload-app", workers=3, env=env)
    with open(record) as f:
        assert f.read().split() == [str(server.pid)]
    server.signal(signal.SIGHUP)
    server.wait_log("code is NOT reloaded")
    server.wait_log("generation 2 ready")
    with open(record) as f:
        assert f.read().split() == [str(server.pid)]


@pytest.mark.skipif(
    not immortal.supported(), reason="immortal objects need CPython 3.12 or 3.13"
)
def test_preload_app_workers_inherit_the_program_immortal(launcher: Launcher) -> None:
    server = launcher.inherited(APP, "--preload-app", "--log-level", "debug")
    server.wait_log("objects of the program immortal before forking")
    function, instance = (int(n) for n in server.body("/refcount").split())
    assert function == immortal.IMMORTAL_REFCNT
    assert instance < 100  # instances stay mortal: they must still be freed


@pytest.mark.skipif(
    not immortal.supported(), reason="immortal objects need CPython 3.12 or 3.13"
)
def test_immortal_walk_leaves_an_unconfigured_django_alone(launcher: Launcher) -> None:
    # -M django.conf: Django's settings is a lazy proxy that raises when asked anything
    # before it is configured (here: never, in the master). The walk must not ask.
    pytest.importorskip("django")
    server = launcher.inherited(APP, "-M", "django.conf", "--log-level", "debug")
    server.wait_log("objects of the program immortal before forking")
    assert server.body().endswith(":1:v1")


def test_without_preload_each_worker_imports_the_app(launcher: Launcher) -> None:
    record = os.path.join(launcher.tmpdir, "imports.txt")
    server = launcher.inherited(APP, workers=2, env={"MASTER_APP_IMPORT_LOG": record})
    with open(record) as f:
        assert sorted(f.read().split()) == sorted(str(p) for p in server.workers())


def test_app_raising_at_import_halts_with_4_and_shows_the_traceback(
    launcher: Launcher,
) -> None:
    server = launcher.inherited(BROKEN_APP, workers=2, wait_ready=False)
    started = time.monotonic()
    assert server.proc.wait(timeout=10) == 4
    assert time.monotonic() - started < 5
    log = server.log()
    assert "RuntimeError: master_broken fixture fails at import" in log
    assert "Traceback" in log
    assert log.count("starman: error:") == 1


def test_workers_exit_when_the_master_is_killed(launcher: Launcher) -> None:
    server = launcher.inherited(APP, workers=2)
    workers = server.workers()
    server.signal(signal.SIGKILL)
    server.proc.wait(timeout=5)

    def gone() -> bool:
        for pid in workers:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    return False
            except psutil.NoSuchProcess:
                pass
        return True

    wait_for(gone, timeout=5)


def test_hup_with_a_broken_app_keeps_the_old_workers(launcher: Launcher) -> None:
    import shutil

    app = os.path.join(launcher.tmpdir, "editable.py")
    shutil.copy(APP, app)
    server = launcher.inherited(app, workers=1)
    old = server.workers()
    with open(app, "a") as f:
        f.write("\nthis is not python\n")
    server.signal(signal.SIGHUP)
    server.wait_log("reload failed")
    assert server.workers() == old
    assert server.body().endswith(":1:v1")
    assert server.proc.poll() is None


def test_hup_serves_edited_code_without_preload(launcher: Launcher) -> None:
    import shutil

    app = os.path.join(launcher.tmpdir, "editable2.py")
    shutil.copy(APP, app)
    server = launcher.inherited(app, workers=1)
    assert server.body().endswith(":1:v1")
    with open(app) as f:
        text = f.read()
    with open(app, "w") as f:
        f.write(
            text.replace('"MASTER_APP_VERSION", "v1"', '"MASTER_APP_VERSION", "v2"')
        )
    server.signal(signal.SIGHUP)
    server.wait_log("generation 2 ready")
    wait_for(lambda: server.body().endswith(":2:v2"))


def test_process_titles(launcher: Launcher) -> None:
    server = launcher.inherited(APP, workers=1)
    assert psutil.Process(server.pid).name() == "starman"
    (worker,) = server.workers()
    assert psutil.Process(worker).name() == "starman-worker"
    plain = launcher.inherited("--disable-proctitle", APP, workers=1)
    assert "starman" not in psutil.Process(plain.pid).name()
    assert "-m starman" in " ".join(psutil.Process(plain.pid).cmdline())


def _world_readable_stdlib() -> bool:
    path = os.path.dirname(os.__file__)
    while path != "/":
        if not os.stat(path).st_mode & 0o005 == 0o005:
            return False
        path = os.path.dirname(path)
    return True


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
@pytest.mark.skipif(
    not _world_readable_stdlib(),
    reason="this Python's stdlib is not readable by nobody",
)
def test_user_and_group_are_dropped_after_binding(launcher: Launcher) -> None:
    import grp
    import pwd

    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    os.chmod(launcher.tmpdir, 0o755)
    server = launcher.inherited("--user", "nobody", "--group", group, APP, workers=1)
    for pid in (server.pid, *server.workers()):
        uids = psutil.Process(pid).uids()
        gids = psutil.Process(pid).gids()
        assert (uids.real, uids.effective) == (nobody.pw_uid, nobody.pw_uid)
        assert gids.effective == nobody.pw_gid
    assert server.body().endswith(":1:v1")

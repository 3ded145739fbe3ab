"""The unit files in systemd/, without a running systemd.

``systemd-analyze verify`` checks each unit (in a copy whose /srv and /run paths point into a
temp dir); ``systemd-socket-activate`` plays the .socket units (it binds, then execs the
service's ExecStart with LISTEN_FDS); a datagram socket plays systemd's NOTIFY_SOCKET, so
the tests see READY=1, RELOADING=1 and STOPPING=1 exactly as systemd would, and drive
ExecReload and KillSignal as systemd does. User=/Group= are not applied (the tests run as
whoever runs them).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.harness.process import REPO, kill_group, spawn, wait_for
from tests.harness.rawhttp import http_get, response_body

UNITS = os.path.join(REPO, "systemd")
VENV_BIN = os.path.dirname(sys.executable)
HELLO = os.path.join(REPO, "docs", "examples", "hello.py")
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")
ANALYZE = shutil.which("systemd-analyze")

needs_activate = pytest.mark.skipif(
    SOCKET_ACTIVATE is None, reason="no systemd-socket-activate"
)

Unit = dict[str, dict[str, list[str]]]
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def parse_unit(text: str) -> Unit:
    """[Section] -> key -> values (in order), with backslash continuations joined."""
    unit: Unit = {}
    section: dict[str, list[str]] = {}
    logical: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            logical.append(line[:-1])
            continue
        line = " ".join([*logical, line])
        logical = []
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def localise(text: str, root: str, port: int | None = None) -> str:
    """The unit with its /srv, /run and venv paths (and port 8080) moved under ``root``."""
    text = text.replace("/srv/app/.venv/bin/", VENV_BIN + "/")
    text = text.replace("/srv/%i/.venv/bin/", VENV_BIN + "/")
    text = text.replace("/srv/", root + "/srv/").replace("/run/", root + "/run/")
    if port is not None:
        text = re.sub(r"\b8080\b", str(port), text)
    return text


def load_unit(
    name: str, root: str, instance: str = "", port: int | None = None
) -> Unit:
    with open(os.path.join(UNITS, name), encoding="utf-8") as f:
        text = localise(f.read(), root, port)
    return parse_unit(text.replace("%i", instance))


def one(unit: Unit, section: str, key: str) -> str:
    values = unit[section][key]
    assert len(values) == 1, (section, key, values)
    return values[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- verify


def test_every_unit_file_is_checked_by_these_tests() -> None:
    covered = {
        "starman.socket",
        "starman.service",
        "starman@.socket",
        "starman@.service",
        "start_server.service",
        "start_server-activated.socket",
        "start_server-activated.service",
        # a drop-in, checked by tests/e2e/test_systemd_notify_reload.py
        "start_server-notify-reload.conf",
    }
    assert set(os.listdir(UNITS)) == covered


@pytest.mark.skipif(ANALYZE is None, reason="no systemd-analyze")
@pytest.mark.parametrize(
    "units",
    [
        ["starman.socket", "starman.service"],
        ["starman@blog.socket", "starman@blog.service"],
        ["start_server.service"],
        ["start_server-activated.socket", "start_server-activated.service"],
    ],
)
def test_systemd_analyze_verify_is_silent(units: list[str], tmp_path: object) -> None:
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "srv", "app"))
    os.makedirs(os.path.join(root, "srv", "blog"))
    unit_dir = os.path.join(root, "units")
    os.makedirs(unit_dir)
    for name in os.listdir(UNITS):
        with open(os.path.join(UNITS, name), encoding="utf-8") as f:
            text = localise(f.read(), root)
        with open(os.path.join(unit_dir, name), "w", encoding="utf-8") as f:
            f.write(text)
    assert ANALYZE is not None
    # verify exits 0 on warnings (unknown keys, bad values...), so the output must be empty.
    proc = subprocess.run(
        [ANALYZE, "verify", *(os.path.join(unit_dir, u) for u in units)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=unit_dir,
    )
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


# --------------------------------------------------------------------------- running


@dataclass
class Notify:
    """systemd's side of sd_notify: a datagram socket and every message it got.

    As NotifyAccess=main, only messages sent by ``main_pid`` count (the sender's pid comes
    from SCM_CREDENTIALS); the others are kept in ``ignored``.
    """

    path: str
    sock: socket.socket
    main_pid: int = 0
    seen: list[str] = field(default_factory=list)
    ignored: list[tuple[int, str]] = field(default_factory=list)

    def _recv(self) -> tuple[int, str]:
        data, ancillary, _flags, _addr = self.sock.recvmsg(
            4096, socket.CMSG_SPACE(_UCRED.size)
        )
        pid = -1
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = _UCRED.unpack(payload[: _UCRED.size])[0]
        return pid, data.decode()

    def expect(self, line: str, timeout: float = 30.0) -> list[str]:
        """Read datagrams until one holds ``line``; return the messages read meanwhile."""
        deadline = time.monotonic() + timeout
        got: list[str] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{line!r} not received; got {got}")
            self.sock.settimeout(left)
            try:
                pid, msg = self._recv()
            except socket.timeout:
                continue
            if pid != self.main_pid:
                self.ignored.append((pid, msg))
                continue
            got.append(msg)
            self.seen.append(msg)
            if line in msg.split("\n"):
                return got


@dataclass
class Rig:
    root: str
    notify: Notify
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def log_path(self, name: str) -> str:
        return os.path.join(self.root, name + ".log")

    def log(self, name: str) -> str:
        with open(self.log_path(name), encoding="utf-8", errors="replace") as f:
            return f.read()

    def start(
        self, name: str, argv: list[str], cwd: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        fd = os.open(self.log_path(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            proc = spawn(argv, env=env, cwd=cwd, stdout=fd, stderr=fd)
        finally:
            os.close(fd)
        self.procs.append(proc)
        return proc

    def app_dir(self, name: str) -> str:
        path = os.path.join(self.root, "srv", name)
        os.makedirs(path, exist_ok=True)
        shutil.copy(HELLO, os.path.join(path, "app.py"))
        return path


@pytest.fixture
def rig() -> Iterator[Rig]:
    root = tempfile.mkdtemp(prefix="sd", dir="/tmp")  # AF_UNIX paths: keep it short
    path = os.path.join(root, "notify")
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sink.bind(path)
    r = Rig(root, Notify(path, sink))
    try:
        yield r
    finally:
        for proc in r.procs:
            kill_group(proc)
        sink.close()
        shutil.rmtree(root, ignore_errors=True)


def reload(unit: Unit, main_pid: int) -> None:
    """Run ExecReload as systemd does, with $MAINPID filled in."""
    argv = shlex.split(one(unit, "Service", "ExecReload"))
    argv = [str(main_pid) if a == "$MAINPID" else a for a in argv]
    subprocess.run(argv, check=True, timeout=10)


def stop(unit: Unit, proc: subprocess.Popen[bytes], notify: Notify) -> int:
    """KillSignal= to the main process only (KillMode=mixed), bounded by TimeoutStopSec.

    STOPPING=1 must arrive. The exited process is read before it is reaped: the kernel
    reports a reaped sender's pid as 0, and NotifyAccess=main needs the real one.
    """
    assert one(unit, "Service", "KillMode") == "mixed"
    sig = signal.Signals[one(unit, "Service", "KillSignal")]
    timeout = float(one(unit, "Service", "TimeoutStopSec"))
    os.kill(proc.pid, sig)
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    wait_for(lambda: os.waitid(os.P_PID, proc.pid, flags) is not None, timeout=timeout)
    notify.expect("STOPPING=1", timeout=5)
    return proc.wait(timeout=5)


def body_of(address: str | tuple[str, int]) -> str:
    raw = http_get(address, timeout=20)
    assert raw.startswith(b"HTTP/1.1 200"), raw
    return response_body(raw).decode()


def activate(
    rig: Rig, name: str, socket_unit: Unit, service: Unit, listen: str
) -> subprocess.Popen[bytes]:
    """systemd-socket-activate with the .socket's address and fd name, then ExecStart."""
    assert SOCKET_ACTIVATE is not None
    argv = [
        SOCKET_ACTIVATE,
        "--listen",
        listen,
        "--fdname=" + one(socket_unit, "Socket", "FileDescriptorName"),
        "--setenv=NOTIFY_SOCKET=" + rig.notify.path,
        *shlex.split(one(service, "Service", "ExecStart")),
    ]
    proc = rig.start(name, argv, cwd=one(service, "Service", "WorkingDirectory"))
    wait_for(lambda: "Listening on" in rig.log(name) or proc.poll() is not None)
    return proc


def check_notify_service(service: Unit, socket_name: str) -> None:
    assert one(service, "Service", "Type") == "notify"
    assert one(service, "Service", "NotifyAccess") == "main"
    assert socket_name in one(service, "Unit", "Requires")


@needs_activate
def test_starman_socket_and_service(rig: Rig) -> None:
    app_dir = rig.app_dir("app")
    for _attempt in range(5):
        port = free_port()
        sock_unit = load_unit("starman.socket", rig.root, port=port)
        service = load_unit("starman.service", rig.root, port=port)
        listen = one(sock_unit, "Socket", "ListenStream")
        assert listen == f"127.0.0.1:{port}"
        proc = activate(rig, "starman", sock_unit, service, listen)
        rig.notify.main_pid = proc.pid
        if proc.poll() is None:
            break
        assert "Address already in use" in rig.log("starman"), rig.log("starman")
    check_notify_service(service, "starman.socket")
    assert one(service, "Service", "WorkingDirectory") == app_dir

    # The first connection makes systemd-socket-activate exec starman (same pid).
    first = body_of(("127.0.0.1", port))
    rig.notify.expect("READY=1")
    assert f"MAINPID={proc.pid}" in rig.notify.seen[-1].split("\n")
    assert "listening on http (systemd, fd 3)" in rig.log("starman")
    assert first.startswith("Hello World from pid ")

    reload(service, proc.pid)
    got = rig.notify.expect("READY=1")
    assert got[0] == "RELOADING=1", got
    wait_for(lambda: body_of(("127.0.0.1", port)) != first, timeout=20)

    assert stop(service, proc, rig.notify) == 0


@needs_activate
def test_starman_template_serves_two_apps_with_their_own_toml(rig: Rig) -> None:
    procs = {}
    for instance, workers in (("blog", 1), ("shop", 2)):
        app_dir = rig.app_dir(instance)
        with open(os.path.join(app_dir, "starman.toml"), "w", encoding="utf-8") as f:
            f.write(
                f'[starman]\nworkers = {workers}\naccess-log = "{app_dir}/access.log"\n'
            )
        sock_unit = load_unit("starman@.socket", rig.root, instance)
        service = load_unit("starman@.service", rig.root, instance)
        check_notify_service(service, f"starman@{instance}.socket")
        listen = one(sock_unit, "Socket", "ListenStream")
        assert listen == f"{rig.root}/run/starman/{instance}.sock"
        os.makedirs(os.path.dirname(listen), exist_ok=True)  # DirectoryMode=
        proc = activate(rig, instance, sock_unit, service, listen)
        rig.notify.main_pid = proc.pid
        assert proc.poll() is None, rig.log(instance)
        assert body_of(listen).startswith("Hello World from pid ")
        rig.notify.expect("READY=1")
        assert f"listening on {instance} (systemd, fd 3)" in rig.log(instance)
        access = os.path.join(app_dir, "access.log")

        def logged(access: str = access) -> bool:
            return os.path.getsize(access) > 0

        wait_for(logged)
        procs[instance] = (proc, service, workers)

    import psutil

    for instance, (proc, service, workers) in procs.items():
        assert len(psutil.Process(proc.pid).children()) == workers, instance
        rig.notify.main_pid = proc.pid
        assert stop(service, proc, rig.notify) == 0


def _start_server_direct(rig: Rig) -> tuple[Unit, subprocess.Popen[bytes], int]:
    """start_server.service: start_server binds --port itself (retried if taken)."""
    for _attempt in range(5):
        port = free_port()
        service = load_unit("start_server.service", rig.root, port=port)
        argv = shlex.split(one(service, "Service", "ExecStart"))
        assert f"{port}" in argv
        proc = rig.start(
            "start_server",
            argv,
            cwd=one(service, "Service", "WorkingDirectory"),
            env={"NOTIFY_SOCKET": rig.notify.path},
        )
        rig.notify.main_pid = proc.pid

        def started(proc: subprocess.Popen[bytes] = proc) -> bool:
            return "starting new worker" in rig.log("start_server") or (
                proc.poll() is not None
            )

        wait_for(started, timeout=15)
        if proc.poll() is None:
            return service, proc, port
        assert "Address already in use" in rig.log("start_server")
    raise AssertionError("no free port in 5 attempts")


def _start_server_activated(rig: Rig) -> tuple[Unit, subprocess.Popen[bytes], int]:
    """start_server-activated.{socket,service}: systemd owns the port."""
    for _attempt in range(5):
        port = free_port()
        sock_unit = load_unit("start_server-activated.socket", rig.root, port=port)
        service = load_unit("start_server-activated.service", rig.root, port=port)
        assert "start_server-activated.socket" in one(service, "Unit", "Requires")
        assert "--port" not in one(service, "Service", "ExecStart")
        listen = one(sock_unit, "Socket", "ListenStream")
        assert listen == f"127.0.0.1:{port}"
        proc = activate(rig, "start_server", sock_unit, service, listen)
        rig.notify.main_pid = proc.pid
        if proc.poll() is None:
            return service, proc, port
        assert "Address already in use" in rig.log("start_server")
    raise AssertionError("no free port in 5 attempts")


@pytest.mark.parametrize(
    "variant",
    [
        "start_server.service",
        pytest.param("start_server-activated", marks=needs_activate),
    ],
)
def test_start_server_service_hot_deploys_with_notify(rig: Rig, variant: str) -> None:
    app_dir = rig.app_dir("app")
    os.makedirs(os.path.join(rig.root, "run", "app"))  # RuntimeDirectory=app
    if variant == "start_server.service":
        service, proc, port = _start_server_direct(rig)
    else:
        service, proc, port = _start_server_activated(rig)
    assert one(service, "Service", "Type") == "notify"
    assert one(service, "Service", "NotifyAccess") == "main"
    assert one(service, "Service", "WorkingDirectory") == app_dir
    status = os.path.join(rig.root, "run", "app", "status")

    # (socket activation: this first request is what starts start_server)
    first = body_of(("127.0.0.1", port))
    assert first.endswith("(generation 1)\n")
    ready = rig.notify.expect("READY=1")[-1]
    assert "STATUS=generation 1 serving" in ready.split("\n"), ready
    if variant != "start_server.service":
        assert "adopted socket 3 from systemd as http" in rig.log("start_server")

    reload(service, proc.pid)
    got = rig.notify.expect("READY=1")
    assert got[0].startswith("RELOADING=1\n"), got
    assert "STATUS=generation 2 serving" in got[-1].split("\n"), got
    # starman's own READY=1 went to start_server (--wait-ready), never to "systemd".
    assert rig.notify.ignored == []
    wait_for(lambda: body_of(("127.0.0.1", port)).endswith("(generation 2)\n"))

    def only_generation_2() -> bool:
        with open(status, encoding="utf-8") as f:
            return [line.split(":")[0] for line in f.read().split()] == ["2"]

    wait_for(only_generation_2, timeout=20)

    assert stop(service, proc, rig.notify) == 0
    assert not os.path.exists(os.path.join(rig.root, "run", "app", "pid"))

"""One TOML file drives a whole start_server + starman deployment; bad files fail in one line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import psutil
import pytest

from tests.harness.process import PY, REPO, kill_group, spawn, wait_for
from tests.harness.rawhttp import http_get, response_body

HELLO = os.path.join(REPO, "docs", "examples", "hello.py")


@pytest.fixture
def tmpdir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="tm", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _deploy_toml(tmpdir: str, port: int) -> str:
    path = os.path.join(tmpdir, "deploy.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            f"""\
# The whole deployment: start_server owns the port, starman reads its own table.
[start_server]
port = ["127.0.0.1:{port}"]
status-file = "{tmpdir}/status"
pid-file = "{tmpdir}/pid"
wait-ready = true
interval = 0

[starman]
app = "{HELLO}"
workers = 2
access-log = "{tmpdir}/access.log"
access-log-format = "%h %m %U%q %s %b pid=%P"
log-level = "warning"
"""
        )
    return path


def _run(argv: list[str], cwd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_one_toml_file_drives_start_server_and_starman(tmpdir: str) -> None:
    log_path = os.path.join(tmpdir, "out.log")
    for _attempt in range(5):
        port = _free_port()
        config = _deploy_toml(tmpdir, port)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            proc = spawn(
                [
                    PY,
                    "-m",
                    "start_server",
                    "--config",
                    config,
                    "--",
                    PY,
                    "-m",
                    "starman",
                    "--config",
                    config,
                ],
                cwd=tmpdir,
                stdout=fd,
                stderr=fd,
            )
        finally:
            os.close(fd)

        def log() -> str:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                return f.read()

        def started(proc: subprocess.Popen[bytes] = proc) -> bool:
            return "starting new worker" in log() or proc.poll() is not None

        wait_for(started)
        if proc.poll() is None:
            break
        assert "Address already in use" in log(), log()
    try:
        status = os.path.join(tmpdir, "status")

        def generations() -> list[str]:
            with open(status, encoding="utf-8") as f:
                return [line.split(":")[0] for line in f.read().split()]

        wait_for(lambda: generations() == ["1"], timeout=20)
        raw = http_get(("127.0.0.1", port), "/x?y=1", timeout=10)
        assert raw.startswith(b"HTTP/1.1 200"), raw
        assert response_body(raw).decode().endswith("(generation 1)\n")

        # [starman] workers = 2, under start_server's single child.
        (starman,) = psutil.Process(proc.pid).children()
        wait_for(lambda: len(starman.children()) == 2)
        pids = {p.pid for p in starman.children()}
        # access-log-format from the file; log-level = warning hides INFO lines.
        access = os.path.join(tmpdir, "access.log")

        def read_access() -> str:
            with open(access, encoding="utf-8") as f:
                return f.read()

        line = wait_for(read_access)
        m = re.fullmatch(r"127\.0\.0\.1 GET /x\?y=1 200 (\d+) pid=(\d+)\n", line)
        assert m is not None, line
        assert int(m.group(2)) in pids
        assert "all 2 workers ready" not in log()

        # --restart and --stop find --pid-file and --status-file in the same file.
        done = _run([PY, "-m", "start_server", "--config", config, "--restart"], tmpdir)
        assert done.returncode == 0, done.stderr
        assert generations() == ["2"]
        body = response_body(http_get(("127.0.0.1", port), timeout=10)).decode()
        assert body.endswith("(generation 2)\n")

        done = _run([PY, "-m", "start_server", "--config", config, "--stop"], tmpdir)
        assert done.returncode == 0, done.stderr
        assert proc.wait(timeout=30) == 0
        assert not os.path.exists(os.path.join(tmpdir, "pid"))
    finally:
        kill_group(proc)


@pytest.mark.parametrize(
    ("prog", "code", "body", "message"),
    [
        (
            "starman",
            2,
            "[starman]\nworkers = 2\nworker = 3\n",
            "unknown key 'worker' in [starman] (did you mean 'workers'?)",
        ),
        (
            "start_server",
            2,  # a configuration error: 2 in both programs
            '[start_server]\nport = ["8080"]\npid_fil = "x"\n',
            "unknown key 'pid_fil' in [start_server] (did you mean 'pid-file'?)",
        ),
        (
            "starman",
            2,
            '[starman]\nmax-request-body = "lots"\n',
            "invalid value 'lots' for key 'max-request-body' in [starman]: "
            "expected a size such as 1048576, 512K, 1M or 1G",
        ),
    ],
)
def test_bad_config_file_is_one_line_on_stderr(
    tmpdir: str, prog: str, code: int, body: str, message: str
) -> None:
    path = os.path.join(tmpdir, "bad.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(body)
    done = _run([PY, "-m", prog, "--config", path, "--", "true"], tmpdir)
    assert (done.returncode, done.stdout) == (code, "")
    assert done.stderr.splitlines() == [f"{prog}: error: {path}: {message}"]

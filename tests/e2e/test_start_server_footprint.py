"""start_server's long-lived supervisor stays small (its RSS target: docs/benchmarks.md).

It re-execs itself as ``python -S`` once it knows it will supervise, and imports only
what supervising needs. These tests guard the import set and the re-exec's
transparency (same pid, same environment for the children); the memory figures
themselves are in docs/benchmarks.md, "start_server's own memory".
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.harness.process import PY, REPO, wait_for

# Each would stay loaded for the supervisor's whole life (what each costs:
# docs/benchmarks.md): only start-up errors, --config, --wait-ready, a piped log or the
# --restart/--stop client may import them.
HEAVY = (
    "dataclasses",
    "inspect",
    "typing",
    "logging",
    "tempfile",
    "shutil",
    "subprocess",
    "threading",
    "difflib",
    "tomllib",
    "pathlib",
    "unicodedata",
    "psutil",
    "httptools",
)

SUPERVISE_IMPORTS = f"""
import sys
sys.path.insert(0, {REPO!r})
from start_server import cli, config
from start_server.common import listen
settings, command = config.load(["--port", "127.0.0.1:0", "--", "true"], {{}})
config.check(settings, command)
from start_server import supervisor
listen.bind_tcp("localhost", 0, 1).close()  # a name, resolved as --port does
print(" ".join(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""


def test_supervisor_imports_no_heavy_module() -> None:
    res = subprocess.run(
        [PY, "-S", "-c", SUPERVISE_IMPORTS], capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == []


def _console_script() -> str:
    return os.path.join(os.path.dirname(PY), "start_server")


@pytest.mark.parametrize("how", ["module", "console_script"])
def test_reexec_keeps_pid_and_the_childs_environment(how: str, tmp_path: Path) -> None:
    if how == "console_script" and not os.path.exists(_console_script()):
        pytest.skip("start_server console script not installed next to python")
    argv0 = [PY, "-m", "start_server"] if how == "module" else [_console_script()]
    dump = tmp_path / "env"
    sock = str(tmp_path / "s")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
    }
    env["FOOTPRINT_ODD_VALUE"] = "a b\nc=d;e"
    if how == "console_script":
        # python -m puts the current directory on sys.path; the script and the -S
        # re-exec must not, or this would shadow the stdlib's selectors.
        (tmp_path / "selectors.py").write_text("raise SystemExit('shadowed')\n")
    child = (
        "import os, sys; open(sys.argv[1] + '.tmp', 'w').write(repr(sorted(os.environ.items())));"
        "os.rename(sys.argv[1] + '.tmp', sys.argv[1]); import time; time.sleep(60)"
    )
    proc = subprocess.Popen(
        [*argv0, "--path", sock, "--", PY, "-c", child, str(dump)],
        env=env,
        cwd=str(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        seen = wait_for(lambda: dump.read_text() if dump.exists() else "", timeout=10)
        expected = {
            **env,
            "SERVER_STARTER_PORT": f"{sock}=3",
            "SERVER_STARTER_GENERATION": "1",
        }
        got = dict(ast.literal_eval(seen))
        # Each generation's own notify socket (docs/hot-deploy.md §2), by its path.
        assert got.pop("NOTIFY_SOCKET").endswith("/gen1.sock")
        assert got == expected
        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        if cmdline.exists():  # the supervisor is the process we started, now -S
            words = cmdline.read_bytes().split(b"\0")
            assert b"-S" in words
            # ps and pgrep -f see the program name followed by its options.
            assert b" start_server --path " in b" ".join(words)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0

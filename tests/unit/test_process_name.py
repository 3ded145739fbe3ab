"""set_process_name: what ps -o comm and pgrep -x see, as prctl(PR_SET_NAME) sets it."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.harness.process import REPO

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process names are Linux's"
)


def _name_after(code: str) -> str:
    """Run ``code`` in a fresh interpreter (not to rename pytest) and print its comm."""
    script = (
        f"import sys; sys.path.insert(0, {REPO!r})\n"
        "from start_server.common import proc\n"
        f"{code}\n"
        "print(repr(open('/proc/self/comm').read()))\n"
    )
    res = subprocess.run(
        [sys.executable, "-S", "-c", script], capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stderr
    return str(ast.literal_eval(res.stdout)).removesuffix("\n")


def test_unnamed_interpreter_is_python() -> None:
    assert _name_after("pass").startswith("python")


def test_name_is_set() -> None:
    assert _name_after("assert proc.set_process_name('start_server')") == "start_server"


def test_long_name_is_cut_to_15_bytes() -> None:
    assert (
        _name_after("proc.set_process_name('starman worker 12345')")
        == "starman worker "  # 15 bytes
    )


def test_prctl_fallback_without_proc_and_no_ctypes_otherwise() -> None:
    code = (
        "import os\n"
        "real = os.open\n"
        "def no_proc(path, *a, **k):\n"
        "    if str(path).startswith('/proc/thread-self'):\n"
        "        raise FileNotFoundError(path)\n"
        "    return real(path, *a, **k)\n"
        "assert proc.set_process_name('first')\n"
        "assert 'ctypes' not in sys.modules\n"
        "os.open = no_proc\n"
        "assert proc.set_process_name('via-prctl')\n"
        "os.open = real\n"
    )
    assert _name_after(code) == "via-prctl"

"""What the master prepares once for every worker it forks: the Date formatter (no
email.utils), the rehearsal that specialises the request path's bytecode, and the C
heap's free pages given back before the first fork."""

from __future__ import annotations

import calendar
import os
import select
import socket
import subprocess
import sys
import time

import pytest

from starman.master import process
from starman.worker import rehearse as rehearsal
from starman.worker.config import in_process_config
from starman.worker.httpdate import DateCache, imf_fixdate
from starman.worker.loop import Worker
from starman.worker.rehearse import rehearse


@pytest.mark.parametrize(
    ("stamp", "text"),
    [
        (0, b"Thu, 01 Jan 1970 00:00:00 GMT"),
        (784111777, b"Sun, 06 Nov 1994 08:49:37 GMT"),  # RFC 9110's own example
        (951782400, b"Tue, 29 Feb 2000 00:00:00 GMT"),
        (4102444799.9, b"Thu, 31 Dec 2099 23:59:59 GMT"),
    ],
)
def test_imf_fixdate(stamp: float, text: bytes) -> None:
    assert imf_fixdate(stamp) == text
    parsed = time.strptime(text.decode(), "%a, %d %b %Y %H:%M:%S GMT")
    assert calendar.timegm(parsed) == int(stamp)


def test_imf_fixdate_ignores_the_locale() -> None:
    code = (
        "import locale, sys\n"
        "for name in ('de_DE.UTF-8', 'fr_FR.UTF-8', 'C.UTF-8'):\n"
        "    try:\n"
        "        locale.setlocale(locale.LC_ALL, name); break\n"
        "    except locale.Error: pass\n"
        "from starman.worker.httpdate import imf_fixdate\n"
        "sys.stdout.write(imf_fixdate(784111777).decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.stdout == "Sun, 06 Nov 1994 08:49:37 GMT", out.stderr


def test_date_cache_follows_the_clock() -> None:
    cache = DateCache()
    before = int(time.time())
    value = cache()
    after = int(time.time())
    assert value in (imf_fixdate(before), imf_fixdate(after))


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_rehearsal_answers_every_round_and_leaves_nothing_open() -> None:
    before = _open_fds()
    assert rehearse(10) == 10
    assert rehearse(1) == 1
    assert _open_fds() == before


def test_rehearsal_never_calls_a_user_app(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = rehearsal._rehearsal_app

    def spy(environ: dict[str, object], start_response: object) -> list[bytes]:
        calls.append(str(environ["PATH_INFO"]))
        return real(environ, start_response)

    monkeypatch.setattr(rehearsal, "_rehearsal_app", spy)
    assert rehearse(3) == 3
    assert calls == ["/rehearsal"] * 3


def test_rehearsal_without_socketpair_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse() -> object:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(socket, "socketpair", refuse)
    assert rehearse(5) == 0


def test_master_imports_stay_lean() -> None:
    """Modules the master would import only for convenience: every worker shares them
    (tree PSS) and fork copies their page tables. tempfile comes only when a body spills;
    dataclasses (with inspect, ast and dis) never: values are Records."""
    code = (
        "import sys, starman.cli, starman.master.arbiter\n"
        "heavy = ('email.utils', 'tempfile', 'shutil', 'bz2', 'lzma', 'calendar',\n"
        "         'dataclasses', 'inspect', 'ast', 'dis')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_rehearsal_that_cannot_make_its_epoll_leaves_nothing_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse() -> object:
        raise OSError(24, "Too many open files")

    before = _open_fds()
    monkeypatch.setattr(select, "epoll", refuse)
    assert rehearse(5) == 0
    assert _open_fds() == before


def test_per_connection_objects_have_no_instance_dict() -> None:
    # More than 30 attributes overflow CPython 3.11's shared-key instance dicts: each
    # object then builds its own dict and every attribute read takes the slow path.
    from tests.harness.h1_replay import make_conn

    conn = make_conn(lambda: b"date")
    loop = Worker([], lambda env, start: [], in_process_config(), None)
    ours, theirs = socket.socketpair()
    try:
        client = loop.adopt(ours)
        for obj in (conn, loop, client, loop.factory, loop.ctl):
            assert not hasattr(obj, "__dict__"), type(obj).__name__
    finally:
        loop.release()
        theirs.close()


def test_trim_heap_gives_the_free_pages_back(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    class Glibc:
        def malloc_trim(self, pad: int) -> int:
            calls.append(pad)
            return 1

    monkeypatch.setattr(process, "libc", Glibc)
    process.trim_heap()
    assert calls == [0]


@pytest.mark.parametrize("libc", [object, lambda: None], ids=["musl", "no libc"])
def test_trim_heap_without_malloc_trim_is_a_no_op(
    monkeypatch: pytest.MonkeyPatch, libc: object
) -> None:
    monkeypatch.setattr(process, "libc", libc)
    process.trim_heap()  # neither raises

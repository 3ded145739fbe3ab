"""The scenarios: which app each serves, its wrk/ab passes, and what a right answer is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

HELLO = b"Hello World"
BIG = 1 << 20
POST_SIZE = 100 * 1024


@dataclass(frozen=True)
class Pass:
    name: str
    tool: str  # "wrk" or "ab"
    conns: int
    close: bool = False  # wrk -H 'Connection: close'
    lua: str | None = None  # wrk script body
    requests: int = 0  # ab -n (0: ab -t duration)


POST_LUA = f"""-- written by bench/bench.py: a {POST_SIZE}-byte POST per request
wrk.method = "POST"
wrk.body = string.rep("p", {POST_SIZE})
wrk.headers["Content-Type"] = "application/octet-stream"
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    module: str  # bench/apps/<module>.py
    psgi: str | None  # bench/apps/<psgi> for Perl starman; None: Perl cannot run it
    passes: tuple[Pass, ...]
    expect: Callable[[bytes], bool]
    method: str = "GET"
    body: bytes = b""
    probe: bool = False  # the conns-served probe
    ab_workers: bool = False  # run at --ab-workers instead of --workers
    warm: bool = False  # the --warm-requests pass before the memory sample


def _is_hello(b: bytes) -> bool:
    return b == HELLO


def _is_1mb(b: bytes) -> bool:
    return len(b) == BIG


def _is_post_count(b: bytes) -> bool:
    return b == str(POST_SIZE).encode()


SCENARIOS = [
    Scenario(
        "hello",
        "hello_wsgi",
        "hello.psgi",
        (
            Pass("ka", "wrk", 10),
            Pass("close", "wrk", 10, close=True),
            Pass("c100", "wrk", 100),
        ),
        _is_hello,
        probe=True,
    ),
    Scenario("big", "big", "big.psgi", (Pass("ka", "wrk", 10),), _is_1mb),
    Scenario(
        "post",
        "post",
        "post.psgi",
        (Pass("ka", "wrk", 10, lua=POST_LUA),),
        _is_post_count,
        method="POST",
        body=b"p" * POST_SIZE,
    ),
    Scenario("file", "filewrap", "filewrap.psgi", (Pass("ka", "wrk", 10),), _is_1mb),
    Scenario("flask", "flask_app", None, (Pass("ka", "wrk", 10),), _is_hello),
    Scenario(
        "ab",
        "hello_wsgi",
        "hello.psgi",
        (Pass("ab", "ab", 10),),
        _is_hello,
        ab_workers=True,
        warm=True,
    ),
]

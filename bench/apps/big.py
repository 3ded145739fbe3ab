"""1 MB response for bench/bench.py: one bytes object of 1,048,576 ``x`` with Content-Length."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable

BODY = b"x" * (1 << 20)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(BODY))),
        ],
    )
    return [BODY]


application = app

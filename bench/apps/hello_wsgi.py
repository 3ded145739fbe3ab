"""Hello world for bench/bench.py: 200 ``Hello World`` text/plain with Content-Length."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable

BODY = b"Hello World"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]
    )
    return [BODY]


application = app

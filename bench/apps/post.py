"""POST sink for bench/bench.py: reads the whole body in 64 KB reads and answers its length."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    total = 0
    while remaining > 0:
        chunk = stream.read(min(remaining, 65536))
        if not chunk:
            break
        total += len(chunk)
        remaining -= len(chunk)
    body = str(total).encode()
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]


application = app

"""The smallest WSGI app: ``starman docs/examples/hello.py`` serves it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any


def application(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """Answer every request with a greeting naming the worker and its generation."""
    generation = os.environ.get("SERVER_STARTER_GENERATION", "-")
    body = f"Hello World from pid {os.getpid()} (generation {generation})\n".encode()
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]

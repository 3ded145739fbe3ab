"""Replay bytes through starman.http.h1 in a given chunking and summarise what came out."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from starman.config import Settings
from starman.http.events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    ProtocolError,
    Request,
)
from starman.http.h1 import ServerConnection

DATE = b"Thu, 01 Jan 1970 00:00:00 GMT"
CHUNKINGS = ["whole", "bytewise", "random1", "random2", "random3"]


def chunks(data: bytes, how: str) -> Iterator[bytes]:
    """Split ``data``: whole, one byte at a time, or seeded random sizes."""
    if how == "whole":
        yield data
    elif how == "bytewise":
        for i in range(len(data)):
            yield data[i : i + 1]
    else:
        rng = random.Random(how)
        i = 0
        while i < len(data):
            n = rng.randint(1, 40)
            yield data[i : i + n]
            i += n


def option_limits() -> dict[str, int]:
    """ServerConnection's limits as starman's option table sets them by default."""
    settings = Settings()
    return {
        "limit_request_line": settings.limit_request_line,
        "limit_request_fields": settings.limit_request_fields,
        "limit_request_field_size": settings.limit_request_field_size,
        "max_body": settings.max_request_body,
    }


def make_conn(
    date: Callable[[], bytes] = lambda: DATE, **limits: int
) -> ServerConnection:
    """A connection with the default limits of the option table, ``limits`` replacing some."""
    return ServerConnection(date, **{**option_limits(), **limits})


def replay(
    data: bytes, how: str = "whole", **limits: int
) -> tuple[list[tuple[bytes, bytes, bytes, bool]], int | None]:
    """Requests seen as (method, target, body, keep_alive) and the error status (or None).

    Each complete request is answered with an empty 200 and the next cycle started, as a
    worker would; the driver stops at the first close or error.
    """
    conn = make_conn(**limits)
    seen: list[tuple[bytes, bytes, bytes, bool]] = []
    current: Request | None = None
    body = b""
    for piece in [*chunks(data, how), b""]:
        conn.receive_data(piece)
        while True:
            try:
                event = conn.next_event()
            except ProtocolError as exc:
                return seen, exc.status_hint
            if event is NEED_DATA:
                break
            if event is PAUSED:
                assert current is not None
                seen.append((current.method, current.target, body, current.keep_alive))
                conn.send_response(200, b"", content_length=0)
                conn.send_end()
                if not conn.keep_alive:
                    return seen, None
                assert conn.start_next_cycle()
                current, body = None, b""
                continue
            if isinstance(event, Request):
                current = event
            elif isinstance(event, Data):
                body += event.data
            elif isinstance(event, ConnectionClosed):
                return seen, None
            else:
                assert isinstance(event, EndOfMessage)
    return seen, None

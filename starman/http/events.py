"""Values exchanged between the sans-IO HTTP/1.1 core (h1) and its callers.

Rule: this module only defines data (value records, sentinels, the error type); it
imports nothing but the stdlib typing helpers and ``Record``. No socket, clock or
logging here. Records, not dataclasses: see start_server/common/record.py (dataclasses would
bring inspect, ast, dis and tokenize into every process).
"""

from __future__ import annotations

import enum
from typing import Union

from start_server.common.record import Record

__all__ = [
    "ConnectionClosed",
    "Data",
    "END_OF_MESSAGE",
    "EndOfMessage",
    "Event",
    "NEED_DATA",
    "PAUSED",
    "ProtocolError",
    "Request",
    "Sentinel",
]


class Request(Record):
    """A complete, validated request head.

    ``headers`` holds (lower-cased name, value without surrounding OWS) pairs in arrival
    order, including repeated fields; trailers never appear here.
    """

    __slots__ = (
        "method",
        "target",
        "http_version",
        "headers",
        "keep_alive",
        "content_length",
        "chunked",
        "expect_continue",
        "upgrade",
    )

    def __init__(
        self,
        method: bytes,
        target: bytes,
        http_version: bytes,  # b"1.0" or b"1.1"
        headers: tuple[tuple[bytes, bytes], ...],
        keep_alive: bool,  # what the client asked for (Connection tokens and version)
        content_length: int | None,  # declared length; None for chunked or no body
        chunked: bool,
        expect_continue: bool,  # HTTP/1.1 "Expect: 100-continue" with a body to come
        upgrade: bool,  # an Upgrade request, served as plain HTTP then closed
    ) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.chunked = chunked
        self.expect_continue = expect_continue
        self.upgrade = upgrade


class Data(Record):
    """A piece of the (de-chunked) request body."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class EndOfMessage(Record):
    """The current request (head and body) is complete."""

    __slots__ = ()


class ConnectionClosed(Record):
    """The peer closed its side (EOF) with no request in progress or mid-request."""

    __slots__ = ()


class Sentinel(enum.Enum):
    """What ``next_event`` returns when it has no event to give."""

    __hash__ = object.__hash__  # members are singletons; enum's __hash__ is Python code

    NEED_DATA = "NEED_DATA"  # feed more bytes
    PAUSED = "PAUSED"  # a request is complete: answer it, then start_next_cycle()


NEED_DATA = Sentinel.NEED_DATA
PAUSED = Sentinel.PAUSED
# Field-less events are equal to each other: one shared instance of each is enough.
END_OF_MESSAGE = EndOfMessage()

Event = Union[Request, Data, EndOfMessage, ConnectionClosed]


class ProtocolError(Exception):
    """The peer broke HTTP/1.1; ``status_hint`` is the response to send before closing.

    After this error the connection parses nothing more: answer, then lingering close.
    """

    def __init__(self, msg: str, status_hint: int = 400) -> None:
        super().__init__(msg)
        self.status_hint = status_hint

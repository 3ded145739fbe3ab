"""Values exchanged between the sans-IO HTTP/1.1 core (h1) and its callers.

Rule: this module only defines data (frozen dataclasses, sentinels, the error type);
it imports nothing but the stdlib typing helpers. No socket, clock or logging here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Union

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


@dataclass(frozen=True, init=False)
class Request:
    """A complete, validated request head.

    ``headers`` holds (lower-cased name, value without surrounding OWS) pairs in arrival
    order, including repeated fields; trailers never appear here.
    """

    method: bytes
    target: bytes
    http_version: bytes  # b"1.0" or b"1.1"
    headers: tuple[tuple[bytes, bytes], ...]
    keep_alive: bool  # what the client asked for (Connection tokens and version)
    content_length: int | None  # declared length; None for chunked or no body
    chunked: bool
    expect_continue: bool  # HTTP/1.1 "Expect: 100-continue" with a body to come
    upgrade: bool  # an Upgrade request, served as plain HTTP then closed

    def __init__(
        self,
        method: bytes,
        target: bytes,
        http_version: bytes,
        headers: tuple[tuple[bytes, bytes], ...],
        keep_alive: bool,
        content_length: int | None,
        chunked: bool,
        expect_continue: bool,
        upgrade: bool,
    ) -> None:
        # One Request per request: filling __dict__ directly costs 1 us where the
        # generated frozen __init__ (object.__setattr__ per field) costs 2.6 us.
        d = self.__dict__
        d["method"] = method
        d["target"] = target
        d["http_version"] = http_version
        d["headers"] = headers
        d["keep_alive"] = keep_alive
        d["content_length"] = content_length
        d["chunked"] = chunked
        d["expect_continue"] = expect_continue
        d["upgrade"] = upgrade


@dataclass(frozen=True)
class Data:
    """A piece of the (de-chunked) request body."""

    data: bytes


@dataclass(frozen=True)
class EndOfMessage:
    """The current request (head and body) is complete."""


@dataclass(frozen=True)
class ConnectionClosed:
    """The peer closed its side (EOF) with no request in progress or mid-request."""


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

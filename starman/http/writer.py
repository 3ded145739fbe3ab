"""Our side of an HTTP/1.1 connection: response heads, body framing and error responses as bytes.

The status-line table, the framing rules (Content-Length, chunked, close; none for HEAD,
1xx, 204 and 304) and the Date/Connection tails. No parsing, no socket, no clock of its
own: the connection passes in a ``date()`` callable.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Final

from starman.http.events import Request
from starman.http.state import (
    ABORT,
    END,
    ERROR_RESPONSE,
    OUR_TRANSITIONS,
    RESPONSE,
    LocalProtocolError,
    State,
    move,
)

__all__ = [
    "STATUS_LINES",
    "Framing",
    "ResponseWriter",
    "error_body",
    "response_framing",
    "status_line",
]


def _reason(code: int) -> bytes:
    try:
        return HTTPStatus(code).phrase.encode("latin-1")
    except ValueError:
        return b"Unknown"


# uvicorn's STATUS_LINE idea: one bytes object per code, built once.
STATUS_LINES: dict[int, bytes] = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, _reason(code)) for code in range(100, 600)
}


def status_line(code: int, reason: bytes | None = None) -> bytes:
    """The status line for ``code``; the precomputed one unless ``reason`` differs."""
    line = STATUS_LINES[code]
    if reason is None or line[13:-2] == reason:
        return line
    return b"HTTP/1.1 %d %s\r\n" % (code, reason)


def error_body(code: int) -> bytes:
    """The plain-text body of an error response: ``"<code> <Reason>\\n"``."""
    return b"%d %s\n" % (code, _reason(code))


class Framing(enum.Enum):
    """How a response body is delimited."""

    __hash__ = object.__hash__

    NONE = "NONE"  # HEAD, 1xx, 204, 304: no body bytes at all
    LENGTH = "LENGTH"  # Content-Length
    CHUNKED = "CHUNKED"  # Transfer-Encoding: chunked (HTTP/1.1 only)
    CLOSE = "CLOSE"  # HTTP/1.0 without a length: the close ends the body


# The members as module globals for the per-request code below: on CPython 3.11 every
# ``State.IDLE`` goes through EnumType's ``__getattr__`` hook, much slower than a global
# read, and a keep-alive response reads these several times.
_ERROR: Final = State.ERROR
_F_NONE: Final = Framing.NONE
_F_LENGTH: Final = Framing.LENGTH
_F_CHUNKED: Final = Framing.CHUNKED
_F_CLOSE: Final = Framing.CLOSE
# Our side's transitions (state.py), the single-state ones unpacked for the fast paths.
_RESPONSE_FROM, _RESPONSE_TO = move(OUR_TRANSITIONS, RESPONSE)
_END_FROM, _END_TO = move(OUR_TRANSITIONS, END)
# send_complete: the response head, its body and its end in one step.
_WHOLE_FROM, _WHOLE_TO = move(OUR_TRANSITIONS, RESPONSE, END)

_KEEP_TAIL = b"Connection: keep-alive\r\n\r\n"
_CLOSE_TAIL = b"Connection: close\r\n\r\n"


def response_framing(
    method: bytes, status: int, http_version: bytes, content_length: int | None
) -> Framing:
    """Choose the response body framing (the rules are in docs/hardening.md)."""
    if method == b"HEAD" or status < 200 or status == 204 or status == 304:
        return _F_NONE
    if content_length is not None:
        return _F_LENGTH
    if http_version == b"1.1":
        return _F_CHUNKED
    return _F_CLOSE


class ResponseWriter:
    """Our side of one connection: each method returns the bytes to send and moves our
    state by ``OUR_TRANSITIONS``. ``ServerConnection`` (h1.py) is the one subclass: it
    keeps ``request`` and ``their_state``, which the framing decisions read.
    """

    __slots__ = (
        "_cl_left",
        "_continue_sent",
        "_date",
        "_framing",
        "_last_date",
        "_must_close",
        "_tail_close",
        "_tail_keep",
        "body_bytes_sent",
        "discarded_body",
        "our_state",
        "response_status",
    )

    # Kept by the connection.
    request: Request | None
    their_state: State

    def __init__(self, date: Callable[[], bytes]) -> None:
        self._date = date
        self.our_state = State.IDLE
        self._must_close = False
        self._continue_sent = False
        self._framing = _F_NONE
        self._cl_left = 0
        self.response_status = 0
        self.body_bytes_sent = 0
        self.discarded_body = False  # the app produced bytes for a no-body response
        # The Date value last seen and the response tails built from it (the caller's
        # clock; this only avoids rebuilding the same bytes per response).
        self._last_date = b""
        self._tail_keep = b""
        self._tail_close = b""

    def close_after_response(self) -> None:
        """Answer the current (or next) request with ``Connection: close`` and stop."""
        self._must_close = True

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this response."""
        req = self.request
        return (
            req is not None
            and req.keep_alive
            and not self._must_close
            and self.their_state is not _ERROR
            and self._framing is not _F_CLOSE
        )

    def send_continue(self) -> bytes:
        """The interim ``100 Continue`` (once per request)."""
        self._continue_sent = True
        return b"HTTP/1.1 100 Continue\r\n\r\n"

    def send_informational(
        self, status: int, headers: Sequence[tuple[bytes, bytes]]
    ) -> bytes:
        """An interim 1xx (not 101) response; ``b""`` when HTTP/1.0 or too late."""
        req = self.request
        if (
            req is None
            or req.http_version != b"1.1"
            or self.our_state is not _RESPONSE_FROM
            or not 100 <= status < 200
            or status == 101
        ):
            return b""
        parts = [STATUS_LINES[status]]
        parts.extend(name + b": " + value + b"\r\n" for name, value in headers)
        parts.append(b"\r\n")
        return b"".join(parts)

    def send_response(
        self,
        status: int,
        fields: bytes,
        *,
        line: bytes | None = None,
        content_length: int | None = None,
        has_date: bool = False,
    ) -> bytes:
        """The response head: ``fields`` (encoded ``b"Name: value\\r\\n"`` lines) plus the
        framing, ``Date`` and ``Connection`` fields; ``line`` overrides the status line.

        ``fields`` must be free of hop-by-hop fields, ``Content-Length`` (pass it as
        ``content_length``) and ``Transfer-Encoding``; ``has_date``: it holds a ``Date``.
        """
        req = self.request
        if req is None or self.our_state is not _RESPONSE_FROM:
            raise LocalProtocolError("send_response() without a request in hand")
        if status < 200 or status == 204:
            content_length = None  # RFC 9110 §8.6: no Content-Length on 1xx/204
        framing = response_framing(req.method, status, req.http_version, content_length)
        self._framing = framing
        self._cl_left = content_length or 0
        self.response_status = status
        self.our_state = _RESPONSE_TO
        if content_length is not None:
            framing_field = b"Content-Length: %d\r\n" % content_length
        elif framing is _F_CHUNKED:
            framing_field = b"Transfer-Encoding: chunked\r\n"
        else:
            framing_field = b""
        keep = self.keep_alive
        tail = self._head_tail(keep, has_date)
        if not keep:
            self._must_close = True
        return b"".join((line or STATUS_LINES[status], fields, framing_field, tail))

    def _head_tail(self, keep: bool, has_date: bool) -> bytes:
        """The Date line (unless the app set one) and Connection line ending every head.

        Both variants are rebuilt only when the Date string changes (once a second).
        """
        if has_date:
            return _KEEP_TAIL if keep else _CLOSE_TAIL
        date = self._date()
        if date is not self._last_date:
            self._last_date = date
            self._tail_keep = b"Date: " + date + b"\r\n" + _KEEP_TAIL
            self._tail_close = b"Date: " + date + b"\r\n" + _CLOSE_TAIL
        return self._tail_keep if keep else self._tail_close

    def send_complete(
        self,
        status: int,
        line: bytes,
        fields: bytes,
        content_length: int | None,
        has_date: bool,
        body_length: int,
    ) -> bytes | None:
        """The head of a whole response whose ``body_length`` body bytes follow unframed.

        The fast form of ``send_response`` + ``frame_data`` + ``send_end`` for a
        Content-Length response sent in one go: the same two transitions of our side,
        taken at once (afterwards the response is DONE). Returns None (changing nothing)
        unless that framing applies exactly: a HEAD request, a 1xx/204/304 status or a
        declared length other than ``body_length`` take the general path.
        """
        req = self.request
        if req is None or self.our_state is not _WHOLE_FROM:
            raise LocalProtocolError("send_complete() without a request in hand")
        if status < 200 or status == 204 or status == 304 or req.method == b"HEAD":
            return None
        if content_length is None:
            content_length = body_length
        elif content_length != body_length:
            return None
        self._framing = _F_LENGTH
        self._cl_left = 0
        self.response_status = status
        self.body_bytes_sent = body_length
        self.our_state = _WHOLE_TO
        keep = (
            req.keep_alive and not self._must_close and self.their_state is not _ERROR
        )
        tail = self._head_tail(keep, has_date)
        if not keep:
            self._must_close = True
        return b"".join(
            (line, fields, b"Content-Length: %d\r\n" % content_length, tail)
        )

    def frame_data(self, data: bytes) -> list[bytes]:
        """Body bytes framed for the wire (possibly ``[]``); never past Content-Length."""
        framing = self._framing
        if framing is _F_LENGTH:
            left = self._cl_left
            if len(data) > left:
                data = data[:left]
                self._must_close = True  # the app overran its Content-Length
            if not data:
                return []
            self._cl_left = left - len(data)
            self.body_bytes_sent += len(data)
            return [data]
        if not data:
            return []
        if framing is _F_CHUNKED:
            self.body_bytes_sent += len(data)
            return [b"%x\r\n" % len(data), data, b"\r\n"]
        if framing is _F_CLOSE:
            self.body_bytes_sent += len(data)
            return [data]
        self.discarded_body = True
        return []

    def account_sendfile(self, count: int) -> int:
        """How many of ``count`` file bytes may go out (the caller sends them with sendfile)."""
        if self._framing is _F_LENGTH:
            count = min(count, self._cl_left)
            self._cl_left -= count
        elif self._framing is _F_NONE:
            return 0
        self.body_bytes_sent += count
        return count

    def send_end(self) -> bytes:
        """End the response: the chunk terminator, or ``b""``."""
        if self.our_state is not _END_FROM:
            raise LocalProtocolError("send_end() without a response in progress")
        self.our_state = _END_TO
        if self._framing is _F_CHUNKED:
            return b"0\r\n\r\n"
        if self._framing is _F_LENGTH and self._cl_left:
            self._must_close = True  # short body: only a close tells the client
        return b""

    def abort(self) -> None:
        """The response cannot be completed (app error mid-body): close without an end."""
        self.our_state = OUR_TRANSITIONS[(self.our_state, ABORT)]
        self._must_close = True

    def send_error(self, status: int, why: str | None = None) -> bytes:
        """A complete plain-text error response with ``Connection: close`` (``why``, our
        own fixed text, follows the reason phrase)."""
        body = error_body(status)
        if why is not None:
            body = body[:-1] + b": " + why.encode("ascii", "replace") + b"\n"
        self._must_close = True
        self.our_state = OUR_TRANSITIONS[(self.our_state, ERROR_RESPONSE)]
        self.response_status = status
        self.body_bytes_sent = len(body)
        return b"".join(
            (
                STATUS_LINES[status],
                b"Content-Type: text/plain; charset=utf-8\r\n",
                b"Content-Length: %d\r\n" % len(body),
                b"Date: " + self._date() + b"\r\n",
                b"Connection: close\r\n\r\n",
                body,
            )
        )

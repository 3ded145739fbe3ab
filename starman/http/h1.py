"""Sans-IO HTTP/1.1 server connection over httptools: bytes in, events out, responses as bytes.

Rule 1: no socket, selectors, signal, time or logging imports; the caller supplies the clock
(a ``date()`` callable) and does all I/O, so every behaviour is testable with literal bytes.
Rule 2: httptools callbacks only record (append to a deque or set a field); they never raise.
Rule 3: after the first protocol error nothing more is parsed; the error is the last event.
Rule 4: events after a request's EndOfMessage are held (PAUSED) until start_next_cycle().
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Final

import httptools

from starman.http.events import (
    END_OF_MESSAGE,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    ProtocolError,
    Request,
    Sentinel,
)

__all__ = [
    "MAX_HEAD_BYTES",
    "STATUS_LINES",
    "Framing",
    "LocalProtocolError",
    "ServerConnection",
    "State",
    "error_body",
    "keep_alive_wanted",
    "response_framing",
    "status_line",
]

# The whole head (request line, fields and trailers) of one request; waitress uses 256 KiB,
# nginx 8-32 KiB per buffer. 64 KiB is the spec's budget (431 above it).
MAX_HEAD_BYTES = 65536
# A method token longer than this is not worth waiting for before deciding 400 vs 501.
_METHOD_PROBE_MAX = 32


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


class State(enum.Enum):
    """One side of the connection (h11 style: the peer's requests, our responses)."""

    __hash__ = object.__hash__  # members are singletons; enum's __hash__ is Python code

    IDLE = "IDLE"  # waiting for a request head / no response started
    ACTIVE = "ACTIVE"  # request delivered, body in progress / response head sent
    DONE = "DONE"  # EndOfMessage delivered / response ended
    CLOSED = "CLOSED"  # peer sent EOF
    ERROR = "ERROR"  # a ProtocolError was raised; nothing more is parsed


# Everything that moves the peer's state lives in this table (h11 _state.py style).
_THEIR_TRANSITIONS: dict[tuple[State, type], State] = {
    (State.IDLE, Request): State.ACTIVE,
    (State.ACTIVE, Data): State.ACTIVE,
    (State.ACTIVE, EndOfMessage): State.DONE,
    (State.IDLE, ConnectionClosed): State.CLOSED,
    (State.ACTIVE, ConnectionClosed): State.CLOSED,
    (State.CLOSED, ConnectionClosed): State.CLOSED,
}


class Framing(enum.Enum):
    """How a response body is delimited."""

    __hash__ = object.__hash__

    NONE = "NONE"  # HEAD, 1xx, 204, 304: no body bytes at all
    LENGTH = "LENGTH"  # Content-Length
    CHUNKED = "CHUNKED"  # Transfer-Encoding: chunked (HTTP/1.1 only)
    CLOSE = "CLOSE"  # HTTP/1.0 without a length: the close ends the body


# The members as module globals for the per-request code below. On CPython 3.11 every
# ``State.IDLE`` goes through EnumType's ``__getattr__`` hook (about 120 ns, a global costs
# about 5 ns) and a keep-alive request reads these a dozen times.
_IDLE: Final = State.IDLE
_ACTIVE: Final = State.ACTIVE
_DONE: Final = State.DONE
_CLOSED: Final = State.CLOSED
_ERROR: Final = State.ERROR
_F_NONE: Final = Framing.NONE
_F_LENGTH: Final = Framing.LENGTH
_F_CHUNKED: Final = Framing.CHUNKED
_F_CLOSE: Final = Framing.CLOSE


class LocalProtocolError(RuntimeError):
    """The caller used the connection out of order (our bug, not the peer's)."""


def _after_messages(
    data: bytes, count: int, bodies: dict[int, int] | None
) -> int | None:
    """Where the bytes after ``count`` whole requests at the start of ``data`` begin, or
    None if ``data`` holds fewer blank lines.

    Each head ends at its first blank line (llhttp accepted them, so CRLF endings), and
    the ``i``-th is followed by ``bodies[i]`` bytes of Content-Length body (none if
    absent). Chunked framing is not covered: httptools does not report its length.
    """
    pos = 0
    for i in range(count):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            return None
        pos = end + 4
        if bodies:
            pos += bodies.get(i, 0)
    return pos


def keep_alive_wanted(http_version: bytes, connection: bytes | None) -> bool:
    """Whether the client asks to keep the connection open.

    ``connection`` is the comma-joined value of every ``Connection`` field (None if absent).
    HTTP/1.1 persists unless ``close`` is a token; HTTP/1.0 only with ``keep-alive``.
    """
    tokens: set[bytes] = set()
    if connection:
        tokens = {t.strip(b" \t").lower() for t in connection.split(b",")}
    if b"close" in tokens:
        return False
    if http_version == b"1.1":
        return True
    return b"keep-alive" in tokens


def response_framing(
    method: bytes, status: int, http_version: bytes, content_length: int | None
) -> Framing:
    """Choose the response body framing (spec §3.4)."""
    if method == b"HEAD" or status < 200 or status == 204 or status == 304:
        return _F_NONE
    if content_length is not None:
        return _F_LENGTH
    if http_version == b"1.1":
        return _F_CHUNKED
    return _F_CLOSE


_DIGITS = re.compile(rb"[0-9]+")
# RFC 9110 token without lower case and without '#': gunicorn 22's "unknown method" rule.
_METHOD_TOKEN = re.compile(rb"[!$%&'*+\-.^_`|~0-9A-Z]+")
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::[0-9]*)?")
# Host values that passed _HOST (most connections repeat one or two).
_good_hosts: set[bytes] = set()
_KEEP_TAIL = b"Connection: keep-alive\r\n\r\n"
_CLOSE_TAIL = b"Connection: close\r\n\r\n"
_WATCHED = frozenset(
    (b"host", b"content-length", b"transfer-encoding", b"connection", b"expect")
)


class _NoCallbacks:
    """The protocol object of the parser a released connection keeps."""


_RELEASED_PARSER = httptools.HttpRequestParser(_NoCallbacks())


class ServerConnection:
    """HTTP/1.1 server side of one connection. Bytes in, events out; responses out as bytes.

    Methods for the caller: ``receive_data``, ``next_event``, ``send_response``,
    ``frame_data``, ``send_end``, ``send_error``, ``send_continue``,
    ``send_informational``, ``close_after_response``, ``start_next_cycle``.
    The ``on_*`` methods are httptools callbacks, not for callers.
    """

    # Slots: 53 attributes are more than CPython 3.11 shares between instance dicts
    # (30), so without them every connection built and resized its own dict (~1.3 us).
    __slots__ = (
        "_began_here",
        "_begin_mark",
        "_body_seen",
        "_body_total",
        "_chunked",
        "_chunked_in_feed",
        "_cl",
        "_cl_left",
        "_completed_in_feed",
        "_connection",
        "_continue_sent",
        "_cur_cl",
        "_date",
        "_dead",
        "_eof",
        "_err",
        "_events",
        "_expect",
        "_feed_bodies",
        "_feed_body",
        "_framing",
        "_head_bytes",
        "_head_raw",
        "_headers",
        "_host",
        "_in_head",
        "_in_trailers",
        "_last_date",
        "_limit_field_size",
        "_limit_fields",
        "_limit_line",
        "_max_body",
        "_msg_open",
        "_must_close",
        "_ncl",
        "_nhost",
        "_nte",
        "_parser",
        "_prefix",
        "_probe",
        "_raised",
        "_tail_close",
        "_tail_keep",
        "_te",
        "_upgrade",
        "_upgrade_left",
        "_url",
        "body_bytes_sent",
        "discarded_body",
        "our_state",
        "pending",
        "request",
        "response_status",
        "their_state",
    )

    def __init__(
        self,
        date: Callable[[], bytes],
        *,
        limit_request_line: int = 8190,
        limit_request_fields: int = 100,
        limit_request_field_size: int = 8190,
        max_body: int = 1 << 30,
    ) -> None:
        self._date = date
        self._limit_line = limit_request_line
        self._limit_fields = limit_request_fields
        self._limit_field_size = limit_request_field_size
        self._max_body = max_body
        self._parser = httptools.HttpRequestParser(self)
        self._events: deque[Event | ProtocolError] = deque()
        # Read-only for callers: non-empty while parsed events wait (pipelining).
        self.pending = self._events
        self.their_state = _IDLE
        self.our_state = _IDLE
        self.request: Request | None = None
        self._raised: ProtocolError | None = None
        # Input side.
        self._dead = (
            False  # the parser is never fed again (error, upgrade, data after close)
        )
        self._err: ProtocolError | None = None
        self._eof = False
        self._probe: bytes | None = (
            None  # bytes of a rejected method token, to pick 400/501
        )
        self._prefix = (
            b""  # the first bytes of the current message, for the method probe
        )
        # Messages completed by the current feed_data(), and whether one was chunked
        # (framing bytes whose length httptools does not report).
        self._completed_in_feed = 0
        self._chunked_in_feed = False
        # Content-Length body sizes of the messages completed by the current feed, by
        # their index in it (None: none had a body), to find where the next one starts.
        self._feed_bodies: dict[int, int] | None = None
        self._upgrade_left = 0
        self._reset_message()
        self._msg_open = False
        self._head_raw = 0
        self._feed_body = 0
        self._began_here = False
        self._begin_mark = 0
        # Output side.
        self._must_close = False
        self._continue_sent = False
        self._framing = _F_NONE
        self._cl_left = 0
        self.response_status = 0
        self.body_bytes_sent = 0
        self.discarded_body = False  # the app produced bytes for a no-body response
        # The Date value last seen and the response tails built from it (Rule 1: the
        # caller's clock; this only avoids rebuilding the same bytes per response).
        self._last_date = b""
        self._tail_keep = b""
        self._tail_close = b""

    # ------------------------------------------------------------------ input
    def _reset_message(self) -> None:
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._in_head = False
        self._in_trailers = False
        # Framing fields: the first value of each and how many times it came.
        self._host = b""
        self._nhost = 0
        self._cl = b""
        self._ncl = 0
        self._te = b""
        self._nte = 0
        self._connection: bytes | None = None
        self._expect: bytes | None = None
        self._body_total = 0
        self._body_seen = False
        self._chunked = False
        self._upgrade = False
        self._cur_cl: int | None = None

    def _fail(self, msg: str, status: int) -> None:
        if self._err is None:
            self._err = ProtocolError(msg, status)
            self._events.append(self._err)
        self._dead = True

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed its side (EOF)."""
        if not data:
            if self._eof:
                return
            self._eof = True
            if self._probe is not None and self._err is None:
                self._decide_method(self._probe, eof=True)
            if self._err is None:
                self._events.append(ConnectionClosed())
            return
        if self._dead or self._eof:  # (a pending method probe implies _dead)
            if self._eof:
                return
            if self._probe is not None:
                self._decide_method(self._probe + data, eof=False)
                return
            if self._upgrade_left and self._err is None:
                self._upgrade_body(data)
            return
        if not self._url:
            prefix = self._prefix
            if not prefix:
                self._prefix = data[:_METHOD_PROBE_MAX]
            elif len(prefix) < _METHOD_PROBE_MAX:
                self._prefix = prefix + data[:_METHOD_PROBE_MAX]
        self._feed_body = 0
        self._began_here = False
        self._completed_in_feed = 0
        self._chunked_in_feed = False
        self._feed_bodies = None
        open_before = self._msg_open
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._dead = True
            if self._upgrade_left and self._err is None:
                self._upgrade_body(data[int(exc.args[0]) :])
        except httptools.HttpParserInvalidMethodError:
            if self._err is None:
                if not self._completed_in_feed:
                    self._decide_method(self._prefix, eof=False)
                else:
                    # A pipelined request after one that completed in this read: find its
                    # first bytes when every earlier message of the read started in it
                    # and none was chunked.
                    start = (
                        None
                        if open_before or self._chunked_in_feed
                        else _after_messages(
                            data, self._completed_in_feed, self._feed_bodies
                        )
                    )
                    if start is None:
                        self._fail("invalid method", 400)
                    else:
                        self._decide_method(data[start:], eof=False)
        except httptools.HttpParserError as exc:
            if self._err is None:
                if not self._msg_open:
                    # llhttp: "Data after `Connection: close`": the finished request was
                    # the last one; the rest is discarded, never parsed (spec §3.7).
                    self._dead = True
                else:
                    self._fail(str(exc), self._llhttp_status(str(exc)))
        if self._in_head and self._err is None:
            if self._began_here:
                self._head_raw = len(data) - self._begin_mark
            else:
                self._head_raw += len(data)
            if self._head_raw > MAX_HEAD_BYTES:
                self._fail("request head too large", 431)

    def _llhttp_status(self, msg: str) -> int:
        if "Transfer-Encoding" in msg and "header value" in msg and not self._nte:
            # One TE line whose value llhttp refuses while parsing it ("chunked, gzip"):
            # an unsupported coding, not a syntax error. Two TE lines stay 400.
            return 501
        return 400

    def _decide_method(self, candidate: bytes, eof: bool) -> None:
        text = candidate.lstrip(b"\r\n")
        sp = text.find(b" ")
        token = text if sp < 0 else text[:sp]
        is_token = bool(token) and _METHOD_TOKEN.fullmatch(token) is not None
        if sp < 0 and is_token and not eof and len(text) < _METHOD_PROBE_MAX:
            self._probe = candidate
            self._dead = True
            return
        self._probe = None
        self._fail("unknown or invalid method", 501 if is_token else 400)

    def _upgrade_body(self, data: bytes) -> None:
        take = data[: self._upgrade_left]
        if take:
            self._upgrade_left -= len(take)
            self._events.append(Data(take))
        if not self._upgrade_left:
            self._events.append(END_OF_MESSAGE)

    # httptools callbacks: record only (Rule 2).
    def on_message_begin(self) -> None:
        # _reset_message(), inline (once per request).
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._in_trailers = False
        self._nhost = self._ncl = self._nte = 0
        self._connection = None
        self._expect = None
        self._body_total = 0
        self._body_seen = False
        self._chunked = False
        self._upgrade = False
        self._cur_cl = None
        self._msg_open = True
        self._in_head = True
        self._began_here = True
        self._begin_mark = self._feed_body

    def on_url(self, url: bytes) -> None:
        if self._err is not None:
            return
        self._url += url
        self._prefix = b""
        if len(self._url) > self._limit_line:
            self._fail("request line too long", 414)

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        head_bytes = self._head_bytes + size + 4
        self._head_bytes = head_bytes
        headers = self._headers
        if (
            self._err is not None
            or self._in_trailers
            or head_bytes > MAX_HEAD_BYTES
            or size > self._limit_field_size
            or len(headers) >= self._limit_fields
        ):
            self._header_checks(size, head_bytes)
            return
        lname = name.lower()
        value = value.rstrip(b" \t")
        headers.append((lname, value))
        if lname in _WATCHED:
            if lname == b"host":
                if not self._nhost:
                    self._host = value
                self._nhost += 1
            elif lname == b"content-length":
                if not self._ncl:
                    self._cl = value
                self._ncl += 1
            elif lname == b"transfer-encoding":
                if not self._nte:
                    self._te = value
                self._nte += 1
            elif lname == b"connection":
                self._connection = (
                    value
                    if self._connection is None
                    else self._connection + b"," + value
                )
            else:
                self._expect = (
                    value if self._expect is None else self._expect + b"," + value
                )

    def _header_checks(self, size: int, head_bytes: int) -> None:
        """on_header's rare cases, in order: an earlier error, the head budget, a
        trailer (counted, then dropped), too many fields, a field too long."""
        if self._err is not None:
            return
        if head_bytes > MAX_HEAD_BYTES:
            self._fail("request head too large", 431)
        elif self._in_trailers:
            pass  # trailers count toward the head budget, then are discarded
        elif len(self._headers) >= self._limit_fields:
            self._fail("too many header fields", 431)
        elif size > self._limit_field_size:
            self._fail("header field too long", 431)

    def on_headers_complete(self) -> None:
        if self._err is not None:
            return
        self._in_head = False
        self._in_trailers = True
        self._head_bytes += len(self._url)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._fail("request head too large", 431)
            return
        parser = self._parser
        method = parser.get_method()
        version_str = parser.get_http_version()
        if version_str == "1.1":
            version = b"1.1"
        elif version_str == "1.0":
            version = b"1.0"
        elif version_str == "0.9" or not version_str.startswith(("1.", "2.", "3.")):
            self._fail("HTTP/0.9 request", 400)
            return
        else:
            self._fail("unsupported HTTP version", 505)
            return
        url = self._url
        if len(method) + len(url) + 10 > self._limit_line:
            self._fail("request line too long", 414)
            return
        if method == b"CONNECT":
            self._fail("CONNECT is not supported", 501)
            return
        first = url[:1]
        if first == b"/":
            pass
        elif url == b"*":
            if method != b"OPTIONS":
                self._fail("'*' target with a method other than OPTIONS", 400)
                return
        elif url[:7].lower() != b"http://" and url[:8].lower() != b"https://":
            self._fail("invalid request target", 400)
            return
        nhost = self._nhost
        if nhost > 1 or (version == b"1.1" and not nhost):
            self._fail("missing or repeated Host", 400)
            return
        if nhost:
            host = self._host
            if host not in _good_hosts:
                if _HOST.fullmatch(host) is None:
                    self._fail("invalid Host", 400)
                    return
                if len(_good_hosts) >= 256:
                    _good_hosts.clear()
                _good_hosts.add(host)
        content_length: int | None = None
        chunked = False
        if self._nte:
            if self._nte > 1 or version == b"1.0" or self._ncl:
                self._fail("invalid Transfer-Encoding framing", 400)
                return
            codings = [
                c for c in (p.strip(b" \t").lower() for p in self._te.split(b",")) if c
            ]
            if codings != [b"chunked"]:
                self._fail("unsupported Transfer-Encoding", 501)
                return
            chunked = True
        elif self._ncl:
            if self._ncl > 1:
                self._fail("repeated Content-Length", 400)
                return
            raw = self._cl.strip(b" \t")
            if _DIGITS.fullmatch(raw) is None:
                self._fail("invalid Content-Length", 400)
                return
            content_length = int(raw)
        if self._connection is None:
            keep_alive = version == b"1.1"
        else:
            keep_alive = keep_alive_wanted(version, self._connection)
        upgrade = parser.should_upgrade()
        if upgrade:
            keep_alive = False
            if chunked:
                self._fail("chunked body on an Upgrade request", 400)
                return
        expect_continue = False
        if self._expect is not None and version == b"1.1":
            if self._expect.strip(b" \t").lower() != b"100-continue":
                self._fail("unsupported expectation", 417)
                return
            expect_continue = chunked or bool(content_length)
        if content_length is not None and content_length > self._max_body:
            self._fail("request body too large", 413)
            return
        self._chunked = chunked
        self._upgrade = upgrade
        self._cur_cl = content_length
        self._events.append(
            Request(
                method,
                url,
                version,
                tuple(self._headers),
                keep_alive,
                content_length,
                chunked,
                expect_continue,
                upgrade,
            )
        )

    def on_body(self, body: bytes) -> None:
        self._feed_body += len(body)
        if self._err is not None:
            return
        self._body_seen = True
        if self._chunked:
            self._body_total += len(body)
            if self._body_total > self._max_body:
                self._fail("request body too large", 413)
                return
        self._events.append(Data(body))

    def on_message_complete(self) -> None:
        self._msg_open = False
        if self._chunked:
            self._chunked_in_feed = True
        elif self._feed_body != self._begin_mark and self._began_here:
            if self._feed_bodies is None:
                self._feed_bodies = {}
            self._feed_bodies[self._completed_in_feed] = (
                self._feed_body - self._begin_mark
            )
        self._completed_in_feed += 1
        self._prefix = b""
        self._url = b""
        if self._err is not None:
            return
        self._in_trailers = False
        if self._upgrade and self._cur_cl:
            # llhttp skips an Upgrade request's body; we read exactly CL raw bytes.
            self._upgrade_left = self._cur_cl
            return
        self._events.append(END_OF_MESSAGE)

    def next_event(self) -> Event | Sentinel:
        """The next event, ``NEED_DATA`` or ``PAUSED``.

        Raises:
            ProtocolError: the peer broke the protocol; answer ``send_error(status_hint)``.
        """
        if self._raised is not None:
            raise self._raised
        their_state = self.their_state
        if their_state is _DONE:
            return PAUSED
        events = self._events
        if not events:
            return NEED_DATA
        event = events.popleft()
        etype = type(event)
        if etype is ProtocolError:
            self.their_state = _ERROR
            self._raised = event  # type: ignore[assignment]  # checked: ProtocolError
            raise event  # type: ignore[misc]  # checked: ProtocolError
        self.their_state = _THEIR_TRANSITIONS[(their_state, etype)]
        if etype is Request:
            self.request = event  # type: ignore[assignment]  # checked: Request
        return event  # type: ignore[return-value]  # checked: not a ProtocolError

    def take_simple_request(self) -> Request | None:
        """The worker's fast path: a whole bodiless request and nothing else is waiting.

        When the queued events are exactly ``Request`` (no body, no ``Expect``) and
        ``EndOfMessage``, consume both as three ``next_event`` calls would (their side is
        then DONE) and return the request; otherwise change nothing and return None.
        """
        events = self._events
        if (
            len(events) != 2
            or events[1] is not END_OF_MESSAGE
            or self.their_state is not _IDLE
        ):
            return None
        req = events[0]
        if type(req) is not Request or req.chunked or req.content_length:
            return None
        events.clear()
        self.their_state = _DONE
        self.request = req
        return req

    @property
    def has_partial_request(self) -> bool:
        """Some bytes of a not yet complete request arrived (a timeout then sends 408)."""
        return self._msg_open or self._probe is not None or self.their_state is _ACTIVE

    @property
    def client_closes(self) -> bool:
        """The client asked for this to be its last request, which was read to the end,
        and nothing came after it: closing cannot lose unread input (no lingering needed).
        """
        req = self.request
        return (
            req is not None
            and not req.keep_alive
            and self.their_state is _DONE
            and not self._dead
            and not self._msg_open
            and self._probe is None
            and not self._events
        )

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        """Send ``100 Continue`` now if the caller is about to wait for body bytes."""
        req = self.request
        return (
            req is not None
            and req.expect_continue
            and self.their_state is _ACTIVE
            and not self._continue_sent
            and not self._body_seen
            and self._upgrade_left == 0
            and not self._events
        )

    # ----------------------------------------------------------------- output
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
            or self.our_state is not _IDLE
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
        headers: Sequence[tuple[bytes, bytes]],
        *,
        line: bytes | None = None,
        content_length: int | None = None,
        has_date: bool = False,
    ) -> bytes:
        """The response head, framing and ``Connection``/``Date`` fields added.

        ``headers`` must already be free of hop-by-hop fields, ``Content-Length`` (pass it as
        ``content_length``) and ``Transfer-Encoding``; ``line`` overrides the status line.
        """
        return self.send_response_fields(
            status,
            b"".join([name + b": " + value + b"\r\n" for name, value in headers]),
            line=line,
            content_length=content_length,
            has_date=has_date,
        )

    def send_response_fields(
        self,
        status: int,
        fields: bytes,
        *,
        line: bytes | None = None,
        content_length: int | None = None,
        has_date: bool = False,
    ) -> bytes:
        """``send_response`` with the fields already encoded (``b"Name: value\\r\\n"...``)."""
        req = self.request
        if req is None or self.our_state is not _IDLE:
            raise LocalProtocolError("send_response() without a request in hand")
        if status < 200 or status == 204:
            content_length = None  # RFC 9110 §8.6: no Content-Length on 1xx/204
        framing = response_framing(req.method, status, req.http_version, content_length)
        self._framing = framing
        self._cl_left = content_length or 0
        self.response_status = status
        self.our_state = _ACTIVE
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

        The fast path of ``send_response_fields`` + ``frame_data`` + ``send_end`` for a
        Content-Length response sent in one go: afterwards the response is DONE. Returns
        None (changing nothing) unless that framing applies exactly: a HEAD request, a
        1xx/204/304 status or a declared length other than ``body_length`` take the
        general path.
        """
        req = self.request
        if req is None or self.our_state is not _IDLE:
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
        self.our_state = _DONE
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
        if self.our_state is not _ACTIVE:
            raise LocalProtocolError("send_end() without a response in progress")
        self.our_state = _DONE
        if self._framing is _F_CHUNKED:
            return b"0\r\n\r\n"
        if self._framing is _F_LENGTH and self._cl_left:
            self._must_close = True  # short body: only a close tells the client
        return b""

    def abort(self) -> None:
        """The response cannot be completed (app error mid-body): close without an end."""
        self.our_state = _ERROR
        self._must_close = True

    def send_error(self, status: int) -> bytes:
        """A complete plain-text error response with ``Connection: close``."""
        body = error_body(status)
        self._must_close = True
        self.our_state = _DONE
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

    def release(self) -> None:
        """The connection is closed: drop the parser (it holds this object's callbacks,
        a reference cycle) and the last error, so everything is freed at once by reference
        counting instead of by a later gc pass. Nothing is parsed afterwards."""
        # (the error, if any, stays: only its traceback goes)
        self._parser = _RELEASED_PARSER
        self._dead = True
        if self._err is not None:
            self._err.__traceback__ = None  # its frames refer back to this object
        self._events.clear()

    def next_cycle(self) -> bool:
        """After a finished exchange: ``start_next_cycle()`` and True when the connection
        may carry another request, else False (changing nothing)."""
        req = self.request
        if (
            req is None
            or not req.keep_alive
            or self._must_close
            or self.their_state is not _DONE
            or self.our_state is not _DONE
            or self._framing is _F_CLOSE
        ):
            return False
        self._reset_cycle()
        return True

    def start_next_cycle(self) -> None:
        """After a finished keep-alive exchange, make the next pipelined request available."""
        if self.their_state is not _DONE or self.our_state is not _DONE:
            raise LocalProtocolError("start_next_cycle() before the exchange finished")
        if not self.keep_alive:
            raise LocalProtocolError("start_next_cycle() on a closing connection")
        self._reset_cycle()

    def _reset_cycle(self) -> None:
        """Both sides back to IDLE, ready for the next request on this connection."""
        self.their_state = _IDLE
        self.our_state = _IDLE
        self.request = None
        self._framing = _F_NONE
        self._continue_sent = False
        self.response_status = 0
        self.body_bytes_sent = 0
        self.discarded_body = False

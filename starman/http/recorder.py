"""The httptools side of the request reader: its callbacks record each request's parts and
apply the framing checks and limits (docs/hardening.md) as llhttp reports them.

reader.py adds the feeding side (``RequestReader``); nothing else uses this module.
Rule 1: no socket, selectors, signal, time or logging imports.
Rule 2: the httptools callbacks only record (append to a deque or set a field); they never
raise, except to stop llhttp after a chunked head (chunked.py decodes the body).
Rule 3: after the first protocol error nothing more is parsed; the error is the last event.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import httptools

from starman.http.chunked import ChunkedBody
from starman.http.events import (
    END_OF_MESSAGE,
    Data,
    Event,
    ProtocolError,
    Request,
)
from starman.http.fields import (
    HOST_VALUE,
    WATCHED,
    authority,
    body_framing,
    keep_alive_wanted,
)

__all__ = ["MAX_HEAD_BYTES", "MessageRecorder", "Renamed", "new_parser"]

# The whole head (request line, fields and trailers) of one request; waitress allows
# more, nginx less per buffer. Above it: 431.
MAX_HEAD_BYTES: Final = 65536

# Added to the Host count when a single-value field came twice (fields.py).
_REPEATED_SINGLE: Final = 0x10000
# Host values that passed _HOST (most connections repeat one or two).
_good_hosts: set[bytes] = set()


class _HandOver(Exception):
    """Raised by the head callback of a chunked request to stop llhttp there."""


class Renamed:
    """The parser of a request whose method llhttp does not know, fed with a stand-in
    method: ``get_method()`` gives the real one and puts the plain parser back in place
    for the requests after it (so known methods never pass through here)."""

    __slots__ = (
        "_method",
        "_parser",
        "_reader",
        "feed_data",
        "get_http_version",
        "should_upgrade",
    )

    def __init__(self, reader: MessageRecorder, method: bytes) -> None:
        parser = httptools.HttpRequestParser(_Callbacks(reader))
        self._reader = reader
        self._parser = parser
        self._method = method
        self.feed_data = parser.feed_data
        self.get_http_version = parser.get_http_version
        self.should_upgrade = parser.should_upgrade

    def get_method(self) -> bytes:
        self._reader._parser = self._parser
        return self._method


class _Callbacks:
    """What httptools calls: the reader's private ``_on_*`` methods under the names
    httptools looks up (once, when the parser is built)."""

    __slots__ = (
        "on_body",
        "on_header",
        "on_headers_complete",
        "on_message_begin",
        "on_message_complete",
        "on_url",
    )

    def __init__(self, reader: MessageRecorder) -> None:
        self.on_message_begin = reader._on_message_begin
        self.on_url = reader._on_url
        self.on_header = reader._on_header
        self.on_headers_complete = reader._on_headers_complete
        self.on_body = reader._on_body
        self.on_message_complete = reader._on_message_complete


class MessageRecorder:
    """The reader's state and its httptools callbacks (private, see ``_Callbacks``):
    record each request's parts and apply the framing checks and limits, turning them
    into ``events``. ``RequestReader`` adds the feeding side."""

    # Slots: more attributes than CPython 3.11 shares between instance dicts, so without
    # them every reader would build and resize its own dict.
    __slots__ = (
        "_began_here",
        "_begin_mark",
        "_body_seen",
        "_chunk",
        "_cl",
        "_completed_in_feed",
        "_connection",
        "_cur_cl",
        "_dead",
        "_dup",
        "_eof",
        "_err",
        "_expect",
        "_feed_bodies",
        "_feed_body",
        "_head_before",
        "_head_bytes",
        "_head_raw",
        "_headers",
        "_host",
        "_in_head",
        "_in_trailers",
        "_limit_field_size",
        "_limit_fields",
        "_limit_line",
        "_max_body",
        "_msg_open",
        "_ncl",
        "_nhost",
        "_nte",
        "_parser",
        "_prefix",
        "_probe",
        "_singles",
        "_tail",
        "_te",
        "_upgrade",
        "_upgrade_left",
        "_url",
        "events",
    )

    # Positional (a keyword call costs more): one reader per connection.
    def __init__(
        self,
        limit_request_line: int,
        limit_request_fields: int,
        limit_request_field_size: int,
        max_body: int,
    ) -> None:
        self._limit_line = limit_request_line
        self._limit_fields = limit_request_fields
        self._limit_field_size = limit_request_field_size
        self._max_body = max_body
        self._parser: httptools.HttpRequestParser | Renamed = (
            httptools.HttpRequestParser(_Callbacks(self))
        )
        self.events: deque[Event | ProtocolError] = deque()
        # The parser is never fed again (error, upgrade, data after close).
        self._dead = False
        self._err: ProtocolError | None = None
        self._eof = False
        # The first bytes of a request whose method llhttp rejected, while its method
        # token is not complete yet (RequestReader).
        self._probe: bytes | None = None
        # The bytes of the current request so far while a read ended inside its method
        # (None: where it started is not known), for such a rejected method.
        self._prefix: bytes | None = b""
        # Messages completed by the current feed_data().
        self._completed_in_feed = 0
        # Whether the request open when the current read began was in its head.
        self._head_before = False
        # The last bytes of a request head that goes on in the next read (where it ends).
        self._tail = b""
        # The chunked body being decoded (RequestReader), llhttp stopped meanwhile.
        self._chunk: ChunkedBody | None = None
        # Content-Length body sizes of the messages completed by the current feed, by
        # their index in it (None: none had a body), to find where the next one starts.
        self._feed_bodies: dict[int, int] | None = None
        self._upgrade_left = 0
        self._msg_open = False
        self._head_raw = 0
        self._feed_body = 0
        self._began_here = False
        self._begin_mark = 0
        # The current message (reset by _on_message_begin).
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._in_head = False
        self._in_trailers = False
        # Framing fields: the first value of each (every Transfer-Encoding line, joined)
        # and how many times it came.
        self._host = b""
        self._nhost = 0
        self._cl = b""
        self._ncl = 0
        self._te = b""
        self._nte = 0
        self._connection: bytes | None = None
        self._expect: bytes | None = None
        # The single-value fields seen (their bits, fields.py) and the first one repeated.
        self._singles = 0
        self._dup = b""
        self._body_seen = False
        self._upgrade = False
        self._cur_cl: int | None = None

    def _fail(self, msg: str, status: int) -> None:
        if self._err is None:
            self._err = ProtocolError(msg, status)
            self.events.append(self._err)
        self._dead = True

    # ------------------------------------------- httptools callbacks: record only (Rule 2)
    def _on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._in_trailers = False
        self._nhost = self._ncl = self._nte = 0
        self._connection = None
        self._expect = None
        self._singles = 0
        self._body_seen = False
        self._upgrade = False
        self._cur_cl = None
        self._msg_open = True
        self._in_head = True
        self._began_here = True
        self._begin_mark = self._feed_body

    def _on_url(self, url: bytes) -> None:
        if self._err is not None:
            return
        self._url += url
        self._prefix = b""
        if len(self._url) > self._limit_line:
            self._fail("request line too long", 414)

    def _on_header(self, name: bytes, value: bytes) -> None:
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
        if lname in WATCHED:
            code = WATCHED[lname]  # (see fields.py)
            if code == -1:
                if not self._nhost:
                    self._host = value
                self._nhost += 1
            elif code > 0:
                singles = self._singles
                if singles & code:
                    # Marked in the Host count: checked with it, at no cost per request.
                    if self._nhost < _REPEATED_SINGLE:
                        self._dup = lname
                    self._nhost |= _REPEATED_SINGLE
                self._singles = singles | code
            elif code == -2:
                if not self._ncl:
                    self._cl = value
                self._ncl += 1
            elif code == -3:
                # Several lines are one list (RFC 9110 §5.3): same answer as one line.
                self._te = value if not self._nte else self._te + b"," + value
                self._nte += 1
            elif code == -4:
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
        """_on_header's rare cases, in order: an earlier error, the head budget, a
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

    def _on_headers_complete(self) -> None:
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
            self._fail("CONNECT is not supported (an origin server, not a proxy)", 501)
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
        elif b"@" in authority(url):
            # Deprecated userinfo (credentials) would reach the environ as the host.
            self._fail("userinfo in the request target", 400)
            return
        nhost = self._nhost
        if nhost > 1 or (version == b"1.1" and not nhost):
            if nhost >= _REPEATED_SINGLE:
                self._fail("repeated " + self._dup.decode("ascii") + " field", 400)
            else:
                self._fail("missing or repeated Host", 400)
            return
        if nhost:
            host = self._host
            if host not in _good_hosts:
                if HOST_VALUE.fullmatch(host) is None:
                    self._fail("invalid Host", 400)
                    return
                if len(_good_hosts) >= 256:
                    _good_hosts.clear()
                _good_hosts.add(host)
        content_length: int | None = None
        chunked = False
        if self._nte or self._ncl:
            framing = body_framing(version, self._nte, self._te, self._ncl, self._cl)
            if type(framing) is ProtocolError:
                self._fail(str(framing), framing.status_hint)
                return
            content_length, chunked = framing  # type: ignore[misc]  # checked: a tuple
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
        self._upgrade = upgrade
        self._cur_cl = content_length
        self.events.append(
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
        if chunked:
            self._chunk = ChunkedBody(
                self._max_body,
                MAX_HEAD_BYTES - self._head_bytes,
                self._limit_field_size,
                keep_alive,
            )
            raise _HandOver  # RequestReader takes the bytes after the head

    def _on_body(self, body: bytes) -> None:
        self._feed_body += len(body)
        if self._err is not None:
            return
        self._body_seen = True
        self.events.append(Data(body))

    def _on_message_complete(self) -> None:
        self._msg_open = False
        mark = self._begin_mark if self._began_here else 0
        if self._feed_body != mark:
            if self._feed_bodies is None:
                self._feed_bodies = {}
            self._feed_bodies[self._completed_in_feed] = self._feed_body - mark
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
        self.events.append(END_OF_MESSAGE)


def new_parser(reader: MessageRecorder) -> httptools.HttpRequestParser:
    """A parser that calls ``reader``'s callbacks."""
    return httptools.HttpRequestParser(_Callbacks(reader))

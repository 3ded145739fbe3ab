"""The peer's side of an HTTP/1.1 connection: request bytes in, validated events out (httptools).

The framing checks and limits (docs/hardening.md) are applied as llhttp reports each part.
Rule 1: no socket, selectors, signal, time or logging imports.
Rule 2: the httptools callbacks only record (append to a deque or set a field); they never raise.
Rule 3: after the first protocol error nothing more is parsed; the error is the last event.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Final

import httptools

from starman.http.events import (
    END_OF_MESSAGE,
    ConnectionClosed,
    Data,
    Event,
    ProtocolError,
    Request,
)
from starman.http.fields import (
    HOST_VALUE,
    WATCHED,
    after_messages,
    authority,
    body_framing,
    keep_alive_wanted,
)

__all__ = ["MAX_HEAD_BYTES", "RequestReader", "keep_alive_wanted"]

# The whole head (request line, fields and trailers) of one request; waitress allows
# more, nginx less per buffer. Above it: 431.
MAX_HEAD_BYTES: Final = 65536
# A method token longer than this is not worth waiting for before deciding 400 vs 501.
_METHOD_PROBE_MAX = 32

# RFC 9110 token without lower case and without '#': gunicorn 22's "unknown method" rule.
_METHOD_TOKEN = re.compile(rb"[!$%&'*+\-.^_`|~0-9A-Z]+")
# Host values that passed _HOST (most connections repeat one or two).
_good_hosts: set[bytes] = set()


# The parser a released reader keeps: its protocol object has no callbacks.
_RELEASED_PARSER = httptools.HttpRequestParser(object())


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

    def __init__(self, reader: _MessageRecorder) -> None:
        self.on_message_begin = reader._on_message_begin
        self.on_url = reader._on_url
        self.on_header = reader._on_header
        self.on_headers_complete = reader._on_headers_complete
        self.on_body = reader._on_body
        self.on_message_complete = reader._on_message_complete


class _MessageRecorder:
    """The reader's state and its httptools callbacks (private, see ``_Callbacks``):
    record each request's parts and apply the framing checks and limits, turning them
    into ``events``. ``RequestReader`` adds the feeding side."""

    # Slots: more attributes than CPython 3.11 shares between instance dicts, so without
    # them every reader would build and resize its own dict.
    __slots__ = (
        "_began_here",
        "_begin_mark",
        "_body_seen",
        "_body_total",
        "_chunked",
        "_chunked_in_feed",
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
        self._parser = httptools.HttpRequestParser(_Callbacks(self))
        self.events: deque[Event | ProtocolError] = deque()
        # The parser is never fed again (error, upgrade, data after close).
        self._dead = False
        self._err: ProtocolError | None = None
        self._eof = False
        # The bytes of a rejected method token, kept to pick 400 or 501 (RequestReader).
        self._probe: bytes | None = None
        # The first bytes of the current message, for that method probe.
        self._prefix = b""
        # Messages completed by the current feed_data(), and whether one was chunked
        # (framing bytes whose length httptools does not report).
        self._completed_in_feed = 0
        self._chunked_in_feed = False
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
        # The single-value fields seen (None: none yet) and the first one repeated.
        self._singles: set[bytes] | None = None
        self._dup: bytes | None = None
        self._body_total = 0
        self._body_seen = False
        self._chunked = False
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
        self._singles = None
        self._dup = None
        self._body_total = 0
        self._body_seen = False
        self._chunked = False
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
            if lname == b"host":
                if not self._nhost:
                    self._host = value
                self._nhost += 1
            elif lname == b"content-length":
                if not self._ncl:
                    self._cl = value
                self._ncl += 1
            elif lname == b"transfer-encoding":
                # Several lines are one list (RFC 9110 §5.3): same answer as one line.
                self._te = value if not self._nte else self._te + b"," + value
                self._nte += 1
            elif lname == b"connection":
                self._connection = (
                    value
                    if self._connection is None
                    else self._connection + b"," + value
                )
            elif lname == b"expect":
                self._expect = (
                    value if self._expect is None else self._expect + b"," + value
                )
            else:
                singles = self._singles
                if singles is None:
                    self._singles = {lname}
                elif lname not in singles:
                    singles.add(lname)
                elif self._dup is None:
                    self._dup = lname

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
        elif b"@" in authority(url):
            # Deprecated userinfo (credentials) would reach the environ as the host.
            self._fail("userinfo in the request target", 400)
            return
        nhost = self._nhost
        if nhost > 1 or (version == b"1.1" and not nhost):
            self._fail("missing or repeated Host", 400)
            return
        if self._dup is not None:
            self._fail("repeated " + self._dup.decode("ascii") + " field", 400)
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
        self._chunked = chunked
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

    def _on_body(self, body: bytes) -> None:
        self._feed_body += len(body)
        if self._err is not None:
            return
        self._body_seen = True
        if self._chunked:
            self._body_total += len(body)
            if self._body_total > self._max_body:
                self._fail("request body too large", 413)
                return
        self.events.append(Data(body))

    def _on_message_complete(self) -> None:
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
        self.events.append(END_OF_MESSAGE)


class RequestReader(_MessageRecorder):
    """Turns the peer's bytes (``feed``) into ``events``: Request, Data, EndOfMessage,
    ConnectionClosed, and at most one ProtocolError, always the last one."""

    __slots__ = ()

    # ----------------------------------------------------------- what callers see
    def partial(self) -> bool:
        """Some bytes of a not yet complete request head arrived."""
        return self._msg_open or self._probe is not None

    def drained(self) -> bool:
        """Nothing was read past the delivered events and more may be parsed."""
        return (
            not self._dead
            and not self._msg_open
            and self._probe is None
            and not self.events
        )

    def body_pending(self) -> bool:
        """No body byte of the current request arrived or is queued yet."""
        return not self._body_seen and self._upgrade_left == 0 and not self.events

    def release(self) -> None:
        """Drop the parser (it holds this object's callbacks, a reference cycle) so
        everything is freed at once by reference counting instead of by a later gc pass.
        Nothing is parsed afterwards; the error, if any, stays without its traceback."""
        self._parser = _RELEASED_PARSER
        self._dead = True
        if self._err is not None:
            self._err.__traceback__ = None  # its frames refer back to this object
        self.events.clear()

    def feed(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed its side (EOF)."""
        if not data:
            if self._eof:
                return
            self._eof = True
            if self._probe is not None and self._err is None:
                self._decide_method(self._probe, eof=True)
            if self._err is None:
                self.events.append(ConnectionClosed())
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
                self._invalid_method(data, open_before)
        except httptools.HttpParserError as exc:
            if self._err is None:
                if not self._msg_open:
                    # llhttp: "Data after `Connection: close`": the finished request was
                    # the last one; the rest is discarded, never parsed (docs/hardening.md).
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

    def _invalid_method(self, data: bytes, open_before: bool) -> None:
        if not self._completed_in_feed:
            self._decide_method(self._prefix, eof=False)
            return
        # A pipelined request after one that completed in this read: find its first
        # bytes when every earlier message of the read started in it and none was chunked.
        start = (
            None
            if open_before or self._chunked_in_feed
            else after_messages(data, self._completed_in_feed, self._feed_bodies)
        )
        if start is None:
            self._fail("invalid method", 400)
        else:
            self._decide_method(data[start:], eof=False)

    def _llhttp_status(self, msg: str) -> int:
        if "Transfer-Encoding" in msg and "header value" in msg:
            # A TE value llhttp refuses while parsing it ("chunked, gzip", on one line or
            # two): an unsupported coding, not a syntax error.
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
            self.events.append(Data(take))
        if not self._upgrade_left:
            self.events.append(END_OF_MESSAGE)

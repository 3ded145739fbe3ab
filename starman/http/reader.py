"""The peer's side of an HTTP/1.1 connection: request bytes in, validated events out.

recorder.py holds the httptools callbacks and the checks they apply; this module feeds the
bytes, hands chunked bodies to chunked.py and methods llhttp does not know back to llhttp
under a stand-in (docs/hardening.md).
Rule 1: no socket, selectors, signal, time or logging imports.
Rule 3: after the first protocol error nothing more is parsed; the error is the last event.
"""

from __future__ import annotations

import re

import httptools

from starman.http.events import END_OF_MESSAGE, ConnectionClosed, Data, ProtocolError
from starman.http.fields import after_messages, keep_alive_wanted, skip_empty_lines
from starman.http.recorder import MAX_HEAD_BYTES, MessageRecorder, Renamed, new_parser

__all__ = ["MAX_HEAD_BYTES", "RequestReader", "keep_alive_wanted"]

# What llhttp is fed in place of a method it does not know: one without special framing.
_STAND_IN = b"GET"
# RFC 9110 token without lower case and without '#': gunicorn 22's "unknown method" rule.
_METHOD_TOKEN = re.compile(rb"[!$%&'*+\-.^_`|~0-9A-Z]+")
# The parser a released reader keeps: its protocol object has no callbacks.
_RELEASED_PARSER = httptools.HttpRequestParser(object())


class RequestReader(MessageRecorder):
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
            # An incomplete method token is an incomplete request, as any other.
            self._probe = None
            if self._err is None:
                self.events.append(ConnectionClosed())
            return
        if self._dead or self._eof:  # (a pending method probe implies _dead)
            if self._eof:
                return
            if self._probe is not None:
                self._decide_method(self._probe + data)
                return
            if self._chunk is not None:
                if self._err is None:
                    self._chunk_data(data)
                return
            if self._upgrade_left and self._err is None:
                self._upgrade_body(data)
            return
        self._parse(data)

    def _parse(self, data: bytes) -> None:
        self._feed_body = 0
        self._began_here = False
        self._completed_in_feed = 0
        self._head_before = self._in_head
        self._feed_bodies = None
        open_before = self._msg_open
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._dead = True
            if self._upgrade_left and self._err is None:
                self._upgrade_body(data[int(exc.args[0]) :])
        except httptools.HttpParserCallbackError:
            # Only _HandOver is raised by the callbacks: a chunked head ended.
            if self._err is None:
                self._hand_over(data, open_before)
            return
        except httptools.HttpParserInvalidMethodError:
            if self._err is None and self._invalid_method(data, open_before):
                return  # parsed again from that request on, by a new parser
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
            else:
                self._keep_head_start(data, open_before)

    # ------------------------- where requests start and end in a read (httptools has no
    # offsets): found from the heads' blank lines and the body sizes, on rare paths only.
    def _after_completed(self, data: bytes, open_before: bool) -> int | None:
        """Where the requests completed in this read (``data``) end; None: not found."""
        pos = 0
        first = 0
        if open_before:  # the first one began in an earlier read
            if self._head_before:
                tail = self._tail
                end = (tail + data).find(b"\r\n\r\n")
                if end < 0:
                    return None
                pos = end + 4 - len(tail)
            first = 1
            if self._feed_bodies:
                pos += self._feed_bodies.get(0, 0)
        return after_messages(
            data, pos, first, self._completed_in_feed, self._feed_bodies
        )

    def _keep_head_start(self, data: bytes, open_before: bool) -> None:
        """A read ended inside a head: keep its last bytes (and all of them while in
        the method) for the reads after it."""
        if self._began_here:
            pos = self._after_completed(data, open_before)
            own = None if pos is None else data[skip_empty_lines(data, pos) :]
            self._tail = data[-3:] if own is None else own[-3:]
            if not self._url:
                self._prefix = own
        else:
            tail = self._tail
            self._tail = (tail + data)[-3:] if tail else data.lstrip(b"\r\n")[-3:]
            if not self._url:
                prefix = self._prefix
                self._prefix = None if prefix is None else prefix + data

    def _invalid_method(self, data: bytes, open_before: bool) -> bool:
        """llhttp rejected a method in ``data``: whether the request was parsed again."""
        if not self._completed_in_feed and open_before:
            prefix = self._prefix
            candidate = None if prefix is None else prefix + data
        else:
            pos = self._after_completed(data, open_before)
            candidate = None if pos is None else data[pos:]
        if candidate is None:
            self._fail("invalid method", 400)
            return False
        return self._decide_method(candidate)

    def _hand_over(self, data: bytes, open_before: bool) -> None:
        """A chunked request's head ended in ``data``: its body goes to chunked.py."""
        if self._began_here:
            pos = self._after_completed(data, open_before)
            end = (
                -9
                if pos is None
                else data.find(b"\r\n\r\n", skip_empty_lines(data, pos))
            )
        else:
            tail = self._tail
            end = (tail + data).find(b"\r\n\r\n") - len(tail)
        self._dead = True  # llhttp stopped; a new parser takes the bytes after the body
        if end < -3:
            self._fail("invalid chunked request", 400)
        else:
            self._body_seen = False
            self._chunk_data(data[end + 4 :])

    def _chunk_data(self, data: bytes) -> None:
        chunk = self._chunk
        assert chunk is not None
        if data:
            self._body_seen = True
        got = chunk.feed(data, self.events)
        if got is None:
            return
        if type(got) is ProtocolError:
            self._fail(str(got), got.status_hint)
            return
        self._chunk = None
        self._msg_open = False
        self._in_trailers = False
        self._url = b""
        self._prefix = b""
        self.events.append(END_OF_MESSAGE)
        if chunk.keep_alive:  # else the rest is discarded, as llhttp does
            self._parser = new_parser(self)
            self._dead = False
            if got:
                self._parse(got)  # type: ignore[arg-type]  # checked: bytes

    def _llhttp_status(self, msg: str) -> int:
        if "Transfer-Encoding" in msg and "header value" in msg:
            # A TE value llhttp refuses while parsing it ("chunked, gzip", on one line or
            # two): an unsupported coding, not a syntax error.
            return 501
        return 400

    def _decide_method(self, candidate: bytes) -> bool:
        """A request (its first bytes) whose method llhttp does not know: a method token
        goes to the app (RFC 9110 §9.1), parsed again with a stand-in method, so framing
        is decided as for any method; anything else is refused. Whether it was parsed."""
        text = candidate.lstrip(b"\r\n")
        sp = text.find(b" ")
        token = text if sp < 0 else text[:sp]
        self._probe = None
        if not token or _METHOD_TOKEN.fullmatch(token) is None:
            self._fail("invalid method", 400)
            return False
        if sp < 0:
            if len(text) > self._limit_line:
                self._fail("request line too long", 414)
            else:
                self._probe = candidate  # wait for the rest of the token
                self._dead = True
            return False
        self._dead = False
        self._msg_open = False  # it begins again, in the new parser
        self._parser = Renamed(self, token)
        self._parse(_STAND_IN + text[sp:])
        return True

    def _upgrade_body(self, data: bytes) -> None:
        take = data[: self._upgrade_left]
        if take:
            self._upgrade_left -= len(take)
            self.events.append(Data(take))
        if not self._upgrade_left:
            self.events.append(END_OF_MESSAGE)

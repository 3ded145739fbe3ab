"""A chunked request body (RFC 9112 §7.1), decoded here rather than by llhttp: llhttp
refuses the optional whitespace (BWS) that the grammar allows around chunk extensions.

The reader hands each chunked body over once its head is parsed and takes the bytes after
it back, exactly. Extensions and trailer fields are checked, then dropped (docs/hardening.md).
Rule: no socket, selectors, signal, time or logging imports.
"""

from __future__ import annotations

import re
import sys
from collections import deque
from typing import Final

from starman.http.events import Data, Event, ProtocolError

__all__ = ["ChunkedBody"]

# A chunk-size line without its CRLF: chunk-size, then chunk-ext (BWS around ';' and '=').
# Every piece ends where the next begins (a token holds no space, ';' or '='; a quoted
# string's two branches start with different bytes), so a match stays linear in the
# line's length, which MAX_CHUNK_LINE bounds. From Python 3.11 the quantifiers are
# possessive (``P``): the same lines match, and the engine keeps no backtracking states.
P = b"+" if sys.version_info >= (3, 11) else b""
_BWS = rb"[ \t]*" + P
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+" + P
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*' + P + rb'"'
_SIZE_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:"
    + _BWS
    + rb";"
    + _BWS
    + _TOKEN
    + rb"(?:"
    + _BWS
    + rb"="
    + _BWS
    + rb"(?:"
    + _TOKEN
    + rb"|"
    + _QUOTED
    + rb"))?)*"
)
_TRAILER_LINE = re.compile(_TOKEN + rb":[\t -~\x80-\xff]*")
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"host"))
# A chunk-size line (with its extensions) longer than this is refused.
MAX_CHUNK_LINE: Final = 4096

_SIZE, _DATA, _DATA_END, _TRAILERS = range(4)


class ChunkedBody:
    """Decode one chunked body: ``feed`` appends ``Data`` events and says when it ended."""

    __slots__ = (
        "_buf",
        "_field_max",
        "_head_left",
        "_left",
        "_max_body",
        "_state",
        "_total",
        "keep_alive",
    )

    def __init__(
        self, max_body: int, head_left: int, field_max: int, keep_alive: bool
    ) -> None:
        self._max_body = max_body
        # What is left of the head budget for the trailer section.
        self._head_left = head_left
        self._field_max = field_max
        # Whether requests may follow this one on the connection.
        self.keep_alive = keep_alive
        self._buf = b""
        self._state = _SIZE
        self._left = 0
        self._total = 0

    def feed(
        self, data: bytes, events: deque[Event | ProtocolError]
    ) -> bytes | ProtocolError | None:
        """Decode ``data``: None while the body goes on, the bytes after it once it ended,
        or the error to answer."""
        buf = self._buf + data if self._buf else data
        self._buf = b""
        pos = 0
        end = len(buf)
        while True:
            state = self._state
            if state == _DATA:
                take = min(self._left, end - pos)
                if take:
                    events.append(Data(buf[pos : pos + take]))
                    pos += take
                    self._left -= take
                if self._left:
                    return None
                self._state = _DATA_END
            elif state == _DATA_END:
                got = buf[pos : pos + 2]
                if got != b"\r\n":
                    if got == b"\r" or not got:
                        self._buf = got
                        return None
                    return ProtocolError("chunk data not followed by CRLF", 400)
                pos += 2
                self._state = _SIZE
            else:
                lf = buf.find(b"\n", pos)
                limit = MAX_CHUNK_LINE if state == _SIZE else self._field_max
                if lf < 0:
                    if end - pos > limit:
                        return self._too_long(state)
                    self._buf = buf[pos:]
                    return None
                if lf == pos or buf[lf - 1] != 13:
                    return ProtocolError("bare LF in chunked framing", 400)
                line = buf[pos : lf - 1]
                pos = lf + 1
                if len(line) > limit:
                    return self._too_long(state)
                if state == _SIZE:
                    error = self._size_line(line)
                    if error is not None:
                        return error
                elif not line:
                    return buf[pos:]
                else:
                    self._head_left -= len(line) + 2
                    if self._head_left < 0:
                        return ProtocolError("request head too large", 431)
                    if _TRAILER_LINE.fullmatch(line) is None:
                        return ProtocolError("invalid trailer field", 400)
                    name = line[: line.find(b":")].lower()
                    if name in _FRAMING:
                        # A framing field after the body could only be read as a
                        # second framing (RFC 9110 §6.5.1).
                        return ProtocolError("framing field in the trailers", 400)

    def _size_line(self, line: bytes) -> ProtocolError | None:
        m = _SIZE_LINE.fullmatch(line)
        if m is None:
            return ProtocolError("invalid chunk size line", 400)
        size = int(m.group(1), 16)
        if not size:
            self._state = _TRAILERS
            return None
        self._total += size
        if self._total > self._max_body:
            return ProtocolError("request body too large", 413)
        self._left = size
        self._state = _DATA
        return None

    @staticmethod
    def _too_long(state: int) -> ProtocolError:
        if state == _SIZE:
            return ProtocolError("chunk size line too long", 400)
        return ProtocolError("trailer field too long", 431)

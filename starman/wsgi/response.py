"""PEP 3333 response side: run the app; start_response/write/iterable -> h1 bytes.

The bytes go out through an injected ``Transport`` (the worker's socket writer), so this module
never touches a socket itself. Imports: events, h1, body.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Any, Optional, Protocol

from starman.http.h1 import ServerConnection
from starman.http.writer import status_line

__all__ = [
    "ClientDisconnected",
    "Environ",
    "ExcInfo",
    "FileWrapper",
    "StartResponse",
    "Transport",
    "WSGIApp",
    "WSGIError",
    "call_app",
]

log = logging.getLogger("starman.worker")

ExcInfo = tuple[type[BaseException], BaseException, Optional[TracebackType]]
Environ = dict[str, Any]
WriteCallable = Callable[[bytes], None]


class StartResponse(Protocol):
    """The ``start_response`` callable handed to the app."""

    def __call__(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
        /,
    ) -> WriteCallable: ...


class WSGIApp(Protocol):
    """A PEP 3333 application."""

    def __call__(
        self, environ: Environ, start_response: StartResponse, /
    ) -> Iterable[bytes]: ...


class Transport(Protocol):
    """How response bytes leave (implemented by the worker over a non-blocking socket)."""

    def write(self, parts: list[bytes], final: bool = False) -> None:
        """Send or queue ``parts``; raise ClientDisconnected if the peer is gone.

        Unless ``final`` (the app has produced everything), the transport may block while
        too much output is queued: that is the app's backpressure.
        """

    def sendfile(self, fd: int, offset: int, count: int) -> None:
        """Send ``count`` bytes of ``fd`` from ``offset`` (after any queued bytes)."""


class ClientDisconnected(Exception):
    """The peer went away while we were writing (EPIPE, ECONNRESET, write timeout)."""


class WSGIError(Exception):
    """The app broke PEP 3333 (bad status or headers, str body, ...)."""


class FileWrapper:
    """``wsgi.file_wrapper``: served with ``os.sendfile`` when it wraps a regular file."""

    def __init__(self, filelike: IO[bytes], blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            block = read(self.blksize)
            if not block:
                return
            yield block

    def close(self) -> None:
        """Close the wrapped file, as PEP 3333 asks."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_STATUS = re.compile(r"([2-5][0-9][0-9]) ([^\x00-\x08\x0a-\x1f\x7f]*)")
_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-connection", "upgrade"))
_status_cache: dict[str, tuple[int, bytes]] = {}
# A checked response header -> what it contributes: most apps send the same few
# (name, value) pairs on every response, so each is validated and encoded once.
_FIELD = 0  # b"Name: value\r\n"
_SKIP = 1  # hop-by-hop: dropped
_LENGTH = 2  # Content-Length (int): h1 writes the field
_DATE = 3  # a Date field from the app (b"Date: ...\r\n")
_HeaderInfo = tuple[int, Any]
_header_cache: dict[tuple[str, str], _HeaderInfo] = {}
_HEADER_CACHE_SIZE = 1024
_HEADER_CACHE_MAX_LEN = 200
# A whole header list seen before (as a tuple) -> (fields, Content-Length, has Date): apps
# mostly answer with one of a few lists, so one lookup replaces the per-header loop.
_Fields = tuple[bytes, Optional[int], bool]
_list_cache: dict[tuple[Any, ...], _Fields] = {}
_LIST_CACHE_SIZE = 256
_LIST_CACHE_MAX_ITEMS = 8


def _check_header(item: object) -> _HeaderInfo:
    """Validate one app header (PEP 3333) and say what it contributes to the head."""
    if type(item) is not tuple or len(item) != 2:
        raise WSGIError(f"header {item!r} is not a (name, value) tuple")
    name, value = item
    if type(name) is not str or type(value) is not str:
        raise WSGIError(f"header {item!r} must be a pair of str")
    if _TOKEN.fullmatch(name) is None or _BAD_VALUE.search(value) is not None:
        raise WSGIError(f"invalid header {item!r}")
    lname = name.lower()
    if lname in _HOP_BY_HOP:
        info: _HeaderInfo = (_SKIP, None)
    elif lname == "transfer-encoding":
        raise WSGIError("the app must not set Transfer-Encoding")
    else:
        try:
            bvalue = value.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise WSGIError(f"header {item!r} is not latin-1") from exc
        if lname == "content-length":
            stripped = value.strip(" \t")
            if not stripped.isascii() or not stripped.isdigit():
                raise WSGIError(f"invalid Content-Length {value!r}")
            info = (_LENGTH, int(stripped))
        else:
            line = name.encode("latin-1") + b": " + bvalue + b"\r\n"
            info = (_DATE if lname == "date" else _FIELD, line)
    if len(name) + len(value) <= _HEADER_CACHE_MAX_LEN:
        if len(_header_cache) >= _HEADER_CACHE_SIZE:
            _header_cache.clear()
        _header_cache[item] = info
    return info


def _encode_headers(headers: list[tuple[str, str]]) -> _Fields:
    """Check the app's header list; its encoded fields, Content-Length and Date presence."""
    lines: list[bytes] = []
    content_length: int | None = None
    has_date = False
    cache = _header_cache
    for item in headers:
        info = None
        if type(item) is tuple and len(item) == 2:
            name, value = item
            if type(name) is str and type(value) is str:
                info = cache.get(item)
        if info is None:
            info = _check_header(item)
        kind, data = info
        if kind == _FIELD:
            lines.append(data)
        elif kind == _LENGTH:
            content_length = data
        elif kind == _DATE:
            has_date = True
            lines.append(data)
    return b"".join(lines), content_length, has_date


def _parse_status(status: object) -> tuple[int, bytes]:
    if type(status) is str:
        cached = _status_cache.get(status)
        if cached is not None:
            return cached
    if not isinstance(status, str):
        raise WSGIError(f"status must be a str, not {type(status).__name__}")
    m = _STATUS.fullmatch(status)
    if m is None:
        raise WSGIError(f"invalid status {status!r}: expected 'NNN Reason', 200-599")
    try:
        reason = m.group(2).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise WSGIError(f"status {status!r} is not latin-1") from exc
    code = int(m.group(1))
    result = (code, status_line(code, reason))
    if len(_status_cache) < 256:
        _status_cache[status] = result
    return result


class _Response:
    """One request's start_response/write state (PEP 3333)."""

    __slots__ = (
        "code",
        "line",
        "fields",
        "content_length",
        "has_date",
        "headers_sent",
        "conn",
        "transport",
        "environ",
    )

    def __init__(
        self, conn: ServerConnection, transport: Transport, environ: Environ
    ) -> None:
        self.environ = environ
        self.code = 0
        self.line = b""
        self.fields = b""
        self.content_length: int | None = None
        self.has_date = False
        self.headers_sent = False
        self.conn = conn
        self.transport = transport

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
        /,
    ) -> WriteCallable:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.code:
            raise WSGIError("start_response() called a second time without exc_info")
        try:
            code, line = _status_cache[status]
        except (KeyError, TypeError):
            code, line = _parse_status(status)
        if type(headers) is not list:
            raise WSGIError("response headers must be a list")
        key = tuple(headers)
        try:
            known = _list_cache.get(key)
        except TypeError:  # an unhashable item: _encode_headers says what is wrong
            known = None
        if known is None:
            known = _encode_headers(headers)
            if len(key) <= _LIST_CACHE_MAX_ITEMS:
                if len(_list_cache) >= _LIST_CACHE_SIZE:
                    _list_cache.clear()
                _list_cache[key] = known
        self.code = code
        self.line = line
        self.fields, self.content_length, self.has_date = known
        return self.write

    def _head(self) -> bytes:
        self.headers_sent = True
        if self.environ.get("starman.harakiri.commit"):
            self.conn.close_after_response()
        return self.conn.send_response(
            self.code,
            self.fields,
            line=self.line,
            content_length=self.content_length,
            has_date=self.has_date,
        )

    def write(self, data: bytes) -> None:
        if not self.code:
            raise WSGIError("write() before start_response()")
        if type(data) is not bytes:
            raise WSGIError(f"body items must be bytes, not {type(data).__name__}")
        if not self.headers_sent:
            if not data:
                return
            parts = [self._head()]
            parts.extend(self.conn.frame_data(data))
            self.transport.write(parts)
            return
        parts = self.conn.frame_data(data)
        if parts:
            self.transport.write(parts)

    def finish(self) -> None:
        if not self.code:
            raise WSGIError("the app returned without calling start_response()")
        parts = [] if self.headers_sent else [self._head()]
        end = self.conn.send_end()
        if end:
            parts.append(end)
        if parts:
            self.transport.write(parts, True)

    def early_hints(self, headers: list[tuple[str, str]]) -> None:
        self.informational(103, headers)

    def informational(self, status: int, headers: list[tuple[str, str]]) -> None:
        if type(status) is not int or self.headers_sent:
            return
        out = []
        for name, value in headers:
            if (
                type(name) is not str
                or type(value) is not str
                or _TOKEN.fullmatch(name) is None
                or _BAD_VALUE.search(value) is not None
            ):
                return
            out.append((name.encode("latin-1"), value.encode("latin-1")))
        data = self.conn.send_informational(status, out)
        if data:
            self.transport.write([data])


def _regular_fd(wrapper: FileWrapper) -> int | None:
    try:
        fd = wrapper.filelike.fileno()
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    except (AttributeError, OSError, ValueError):
        pass
    return None


def _send_file(resp: _Response, fd: int, filelike: IO[bytes]) -> None:
    offset = filelike.tell()
    remaining = max(0, os.fstat(fd).st_size - offset)
    if resp.content_length is None:
        resp.content_length = remaining
    count = min(resp.content_length, remaining)
    head = resp._head()
    allowed = resp.conn.account_sendfile(count)
    resp.transport.write([head])
    if allowed:
        resp.transport.sendfile(fd, offset, allowed)


def _send_all(resp: _Response, items: list[bytes] | tuple[bytes, ...]) -> None:
    """A list/tuple body: Content-Length from its sum, everything in one write."""
    if len(items) == 1:
        only = items[0]
        if type(only) is not bytes:
            raise WSGIError(f"body items must be bytes, not {type(only).__name__}")
        total = len(only)
    else:
        for item in items:
            if type(item) is not bytes:
                raise WSGIError(f"body items must be bytes, not {type(item).__name__}")
        total = sum(map(len, items))
    if not resp.code:
        raise WSGIError("the app returned without calling start_response()")
    conn = resp.conn
    if not resp.headers_sent and resp.content_length is None:
        resp.content_length = total
    parts = [] if resp.headers_sent else [resp._head()]
    for item in items:
        parts.extend(conn.frame_data(item))
    end = conn.send_end()
    if end:
        parts.append(end)
    if parts:
        resp.transport.write(parts, True)


def call_app(
    app: WSGIApp,
    environ: Environ,
    conn: ServerConnection,
    transport: Transport,
) -> None:
    """Run one request through the app and write the response (PEP 3333).

    Afterwards ``conn.our_state`` is DONE (``conn.keep_alive`` says whether to reuse the
    connection) or ERROR (abort: close now). App errors are logged, never raised.
    """
    resp = _Response(conn, transport, environ)
    environ["starman.informational"] = resp.informational
    environ["wsgi.early_hints"] = resp.early_hints
    environ["starman.cleanup.handlers"] = []
    try:
        try:
            result = app(environ, resp.start_response)
        except ClientDisconnected:
            conn.abort()
            return
        except Exception:
            log.exception("error in WSGI app for %s", environ.get("REQUEST_URI"))
            _fail(resp, transport)
            return
        rtype = type(result)
        if rtype is list or rtype is tuple:  # the common case: no close() to call
            try:
                if (
                    len(result) == 1  # type: ignore[arg-type]  # checked: list or tuple
                    and resp.code
                    and not resp.headers_sent
                    and type(body := result[0]) is bytes  # type: ignore[index]  # checked: list or tuple
                ):
                    # One bytes item: head + body in one write when Content-Length framing
                    # applies as is (h1.send_complete), else the general path below.
                    if environ.get("starman.harakiri.commit"):
                        conn.close_after_response()
                    head = conn.send_complete(
                        resp.code,
                        resp.line,
                        resp.fields,
                        resp.content_length,
                        resp.has_date,
                        len(body),
                    )
                    if head is not None:
                        resp.headers_sent = True
                        transport.write([head, body] if body else [head], True)
                        return
                _send_all(resp, result)  # type: ignore[arg-type]  # checked: list or tuple
            except ClientDisconnected:
                conn.abort()
            except Exception:
                log.exception("error in WSGI app for %s", environ.get("REQUEST_URI"))
                _fail(resp, transport)
            return
        try:
            if isinstance(result, (bytes, str)):
                raise WSGIError("the app returned a str/bytes object, not an iterable")
            if (
                rtype is FileWrapper
                and not resp.headers_sent
                and resp.code
                and environ["REQUEST_METHOD"] != "HEAD"
                and (fd := _regular_fd(result)) is not None  # type: ignore[arg-type]  # checked: FileWrapper
            ):
                _send_file(resp, fd, result.filelike)  # type: ignore[attr-defined]  # checked: FileWrapper
                resp.finish()
            else:
                write = resp.write
                for chunk in result:
                    write(chunk)
                resp.finish()
        except ClientDisconnected:
            conn.abort()
        except Exception:
            log.exception("error in WSGI app for %s", environ.get("REQUEST_URI"))
            _fail(resp, transport)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("error in close() of the WSGI iterable")

    finally:
        # environ holds bound methods of resp and resp held environ: break the cycle so
        # both go at once by reference counting, not in a later gc pass (memory churn).
        resp.environ = _NO_ENVIRON


_NO_ENVIRON: Environ = {}  # a finished response's environ (read-only use)


def _fail(resp: _Response, transport: Transport) -> None:
    """App error: 500 if nothing went out yet, else abort the connection."""
    conn = resp.conn
    if resp.headers_sent:
        conn.abort()
        return
    try:
        transport.write([conn.send_error(500)], True)
    except ClientDisconnected:
        conn.abort()

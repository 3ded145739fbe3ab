"""The access log: one structured record per answered request, and its renderers.

The worker hands ``log_exchange`` what it knows of an exchange; the record goes to the
``starman.access`` logger, where ``AccessLogFormatter`` renders it with a format (Apache's
``combined`` or ``common``, or a string of %-directives). Without that formatter a record
renders as the combined line. Imports nothing of starman but the request event.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from starman.http.events import Request
from start_server.common.record import Record

__all__ = [
    "ACCESS_LOG_DIRECTIVES",
    "ACCESS_LOG_FORMATS",
    "AccessLogFormatter",
    "AccessRecord",
    "log_exchange",
    "parse_access_log_format",
]

access_log = logging.getLogger("starman.access")

# Apache's two classic formats (mod_log_config); starman's default is "combined".
ACCESS_LOG_FORMATS = {
    "combined": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"',
    "common": '%h %l %u %t "%r" %>s %b',
}
# The directives the access log can fill, each with what it means (for the docs).
ACCESS_LOG_DIRECTIVES = {
    "h": "remote address (- on a unix socket)",
    "l": "remote logname: always -",
    "u": "remote user: always -",
    "t": "time the request finished, [10/Oct/2000:13:55:36 -0700]",
    "r": "request line, GET /a?b HTTP/1.1",
    "m": "request method",
    "U": "path, without the query string",
    "q": "query string with its ?, or empty",
    "H": "protocol, HTTP/1.1",
    "s": "status",
    ">s": "status",
    "b": "response body bytes, - for none",
    "B": "response body bytes, 0 for none",
    "P": "worker pid",
    "D": "time taken to serve the request, in microseconds",
    "T": "time taken to serve the request, in whole seconds",
    "{Header}i": "that request header, - when absent, e.g. %{X-Request-Id}i",
    "%": "a literal %",
}
_DIRECTIVE = re.compile(r"%(>s|\{[A-Za-z0-9_-]+\}i|.?)")
# Request headers whose environ key has no HTTP_ prefix (PEP 3333).
_UNPREFIXED = frozenset(("CONTENT_TYPE", "CONTENT_LENGTH"))


def parse_access_log_format(text: str) -> str:
    """An access log format: a named one or a string of known %-directives; returns the string.

    Raises ValueError naming the first unknown directive.
    """
    fmt = ACCESS_LOG_FORMATS.get(text.strip().lower(), text)
    for m in _DIRECTIVE.finditer(fmt):
        word = m.group(1)
        if word.startswith("{") and word.endswith("}i"):
            continue
        if word not in ACCESS_LOG_DIRECTIVES:
            raise ValueError(
                f"unknown directive %{m.group(1)}: expected 'combined', 'common' or a "
                "format of " + " ".join("%" + d for d in ACCESS_LOG_DIRECTIVES)
            )
    return fmt


class AccessRecord(Record):
    """What the access log knows of one answered request.

    ``method``, ``target`` and ``version`` are None when no request line was parsed (a
    protocol error); ``micros`` is None when the app was not called.
    """

    __slots__ = (
        "remote",
        "when",
        "method",
        "target",
        "version",
        "status",
        "size",
        "micros",
        "environ",
    )

    def __init__(
        self,
        remote: str,
        when: float,
        method: str | None,
        target: str | None,
        version: str | None,
        status: int,
        size: int,
        micros: int | None,
        environ: Mapping[str, Any],
    ) -> None:
        self.remote = remote  # REMOTE_ADDR, "-" when unknown (a unix socket)
        self.when = when  # time.time() when the answer was written
        self.method = method
        self.target = target
        self.version = version  # "1.1"
        self.status = status
        self.size = size  # response body bytes
        self.micros = micros  # time taken to serve, in microseconds
        self.environ = (
            environ  # the request's environ (its headers), or the connection's
        )

    def request_line(self) -> str:
        """``GET /a?b HTTP/1.1``, or ``-`` when no request line was parsed."""
        if self.method is None:
            return "-"
        return f"{self.method} {self.target} HTTP/{self.version}"

    def __str__(self) -> str:
        return _render(_COMBINED, self, None)


def log_exchange(
    environ: Mapping[str, Any],
    request: Request | None,
    status: int,
    size: int,
    started: float | None,
) -> None:
    """Log one answered request on ``starman.access``.

    ``started`` is the ``time.perf_counter()`` at which the app was called, None when it
    was not (a rejected request).
    """
    micros = None if started is None else int((time.perf_counter() - started) * 1e6)
    if request is None:
        method = target = version = None
    else:
        method = request.method.decode("latin-1")
        target = request.target.decode("latin-1")
        version = request.http_version.decode("latin-1")
    record = AccessRecord(
        environ.get("REMOTE_ADDR") or "-",
        time.time(),
        method,
        target,
        version,
        status,
        size,
        micros,
        environ,
    )
    access_log.info("%s", record)


# A compiled format: (kind, text) pieces, where kind says what text is.
_LITERAL, _FIELD, _HEADER = "literal", "field", "header"
_Parts = list[tuple[str, str]]


def _compile(fmt: str) -> _Parts:
    """Split a checked format into pieces: a literal, a field name, or the environ key of
    a request header."""
    parts: _Parts = []
    pos = 0
    for m in _DIRECTIVE.finditer(fmt):
        if m.start() > pos:
            parts.append((_LITERAL, fmt[pos : m.start()]))
        word = m.group(1)
        if word.startswith("{") and word.endswith("}i"):
            name = word[1:-2].upper().replace("-", "_")
            parts.append((_HEADER, name if name in _UNPREFIXED else "HTTP_" + name))
        else:
            parts.append((_FIELD, word))
        pos = m.end()
    if pos < len(fmt):
        parts.append((_LITERAL, fmt[pos:]))
    return parts


_COMBINED = _compile(ACCESS_LOG_FORMATS["combined"])


def _render(parts: _Parts, rec: AccessRecord, pid: int | None) -> str:
    """One log line: ``parts`` filled from ``rec`` (``%P`` from ``pid``)."""
    size = str(rec.size) if rec.size else "-"
    micros = rec.micros
    out = []
    for kind, text in parts:
        if kind is _LITERAL:
            out.append(text)
        elif kind is _HEADER:
            value = rec.environ.get(text)
            out.append(value if isinstance(value, str) and value else "-")
        elif text == "h":
            out.append(rec.remote)
        elif text == "l" or text == "u":
            out.append("-")
        elif text == "t":
            out.append(
                time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(rec.when))
            )
        elif text == "r":
            out.append(rec.request_line())
        elif text == "m":
            out.append(rec.method or "-")
        elif text == "U" or text == "q":
            path, qmark, query = (rec.target or "").partition("?")
            out.append(path if text == "U" else qmark + query)
        elif text == "H":
            out.append("" if rec.version is None else "HTTP/" + rec.version)
        elif text == "s" or text == ">s":
            out.append(str(rec.status))
        elif text == "b":
            out.append(size)
        elif text == "B":
            out.append(str(rec.size))
        elif text == "P":
            out.append("-" if pid is None else str(pid))
        elif text == "D":
            out.append("-" if micros is None else str(micros))
        elif text == "T":
            out.append("-" if micros is None else str(micros // 1_000_000))
        else:  # "%"
            out.append("%")
    return "".join(out)


class AccessLogFormatter(logging.Formatter):
    """Renders ``starman.access`` records with an ``--access-log-format`` string; other
    records pass through unchanged."""

    def __init__(self, fmt: str) -> None:
        super().__init__("%(message)s")
        self.parts = _compile(parse_access_log_format(fmt))

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if isinstance(args, tuple) and len(args) == 1:
            rec = args[0]
            if isinstance(rec, AccessRecord):
                return _render(self.parts, rec, record.process)
        return super().format(record)

"""The WSGI environ (PEP 3333): per worker, per connection (addresses), per request.

Built from a parsed ``Request`` plus socket information; no socket, no app call here.
"""

from __future__ import annotations

import sys
from typing import Any, Optional
from urllib.parse import unquote_to_bytes

from starman import __version__
from starman.http.body import BodyInput
from starman.http.events import Request
from starman.wsgi.response import Environ, FileWrapper

__all__ = [
    "RequestRejected",
    "connection_environ",
    "request_environ",
    "server_environ",
]


class RequestRejected(Exception):
    """The request is answered by the server itself (``status``), never by the app."""

    def __init__(self, msg: str, status: int) -> None:
        super().__init__(msg)
        self.status = status


def server_environ(
    *, script_name: str = "", generation: str | None = None, worker_pid: int = 0
) -> Environ:
    """The per-worker part of every environ."""
    env: Environ = {
        "SCRIPT_NAME": script_name,
        "SERVER_SOFTWARE": "starman/" + __version__,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
        "starman.input.buffered": True,
        "starman.harakiri": True,
        "starman.cleanup": True,
        "starman.worker_pid": worker_pid,
    }
    if generation is not None:
        env["starman.generation"] = generation
    return env


def connection_environ(
    server_env: Environ,
    sockname: Any,
    peername: Any,
    *,
    unix: bool,
) -> Environ:
    """The per-connection part: addresses (prepared once, copied per request)."""
    env = dict(server_env)
    if unix:
        env["REMOTE_ADDR"] = ""
    else:
        env["REMOTE_ADDR"] = str(peername[0])
        env["REMOTE_PORT"] = str(peername[1])
        env["SERVER_NAME"] = str(sockname[0])
        env["SERVER_PORT"] = str(sockname[1])
    return env


_METHODS = {
    m: m.decode("ascii")
    for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH")
}
_SPECIAL_KEYS: dict[bytes, str | None] = {
    b"content-type": "CONTENT_TYPE",
    b"content-length": None,  # set from the buffered body below
    b"connection": None,  # hop-by-hop, removed as Perl does
    b"transfer-encoding": None,  # bodies reach the app de-chunked
    b"proxy": None,  # httpoxy
}
_env_keys: dict[bytes, str | None] = {}
_MISS = ""  # not a valid environ key: marks a cache miss in _env_keys.get(name, _MISS)


def _env_key(lname: bytes) -> str | None:
    key = _env_keys.get(lname, _MISS)
    if key != _MISS:
        return key
    if lname in _SPECIAL_KEYS:
        key = _SPECIAL_KEYS[lname]
    elif b"_" in lname:
        key = None  # X-Forwarded_For must not alias X-Forwarded-For (gunicorn 22)
    else:
        # llhttp validated the name as an ASCII token, so upper() cannot grow it.
        key = "HTTP_" + lname.decode("ascii").upper().replace("-", "_")
    if len(_env_keys) < 512:
        _env_keys[lname] = key
    return key


def _forwarded_proto(value: str) -> str | None:
    # The right-most element: the one the trusted proxy appended.
    last = value.rsplit(",", 1)[-1]
    for param in last.split(";"):
        name, _, val = param.strip().partition("=")
        if name.lower() == "proto":
            return val.strip().strip('"').lower()
    return None


def _trusted_scheme(env: Environ) -> str | None:
    """The scheme the trusted proxy reports, or None (docs/hardening.md).

    Each header counts by its right-most value, the one the proxy appended (what is left
    of it came from the client). Values that disagree, or one that is no scheme, are
    refused rather than one of them picked.
    """
    candidates = []
    xfp = env.get("HTTP_X_FORWARDED_PROTO")
    if xfp is not None:
        candidates.append(xfp.rsplit(",", 1)[-1].strip().lower())
    fwd = env.get("HTTP_FORWARDED")
    if fwd is not None:
        proto = _forwarded_proto(fwd)
        if proto is not None:
            candidates.append(proto)
    ssl = env.get("HTTP_X_FORWARDED_SSL")
    if ssl is not None:
        flag = ssl.rsplit(",", 1)[-1].strip().lower()
        candidates.append(_SSL_FLAGS.get(flag, flag))
    scheme: str | None = None
    for c in candidates:
        if c not in ("http", "https") or (scheme is not None and c != scheme):
            raise RequestRejected("conflicting scheme headers", 400)
        scheme = c
    return scheme


_SSL_FLAGS = {"on": "https", "off": "http"}


def _split_host(host: str, scheme: str) -> tuple[str, str]:
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[1:end], host[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":")
    return name or "localhost", port or ("443" if scheme == "https" else "80")


_TargetParts = tuple[str, str, str, Optional[str]]
# origin-form targets seen recently -> (REQUEST_URI, path, QUERY_STRING, authority): most
# requests repeat a few targets, so the split/unquote/decode work is done once per target.
_target_cache: dict[bytes, _TargetParts] = {}
_TARGET_CACHE_SIZE = 512
_TARGET_CACHE_MAX_LEN = 256


def _split_target(target: bytes) -> _TargetParts:
    raw = target.decode("latin-1")
    authority: str | None = None
    if target == b"*":
        return raw, "", "", None
    if target[:1] != b"/":
        # absolute-form: the authority is authoritative (RFC 9112 §3.2.2)
        rest = target.split(b"://", 1)[1]
        slash = min(
            (i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0),
            default=len(rest),
        )
        authority = rest[:slash].decode("latin-1")
        target = rest[slash:]
        if target[:1] != b"/":
            target = b"/" + target
    hash_at = target.find(b"#")
    if hash_at >= 0:
        target = target[:hash_at]
    path, _, qs = target.partition(b"?")
    if b"%" in path:
        path = unquote_to_bytes(path)
    return raw, path.decode("latin-1"), qs.decode("latin-1"), authority


def request_environ(
    conn_env: Environ,
    request: Request,
    body: BodyInput,
    body_length: int,
    *,
    unix: bool = False,
    trusted: bool = False,
) -> Environ:
    """Build the environ of one request by copying the prepared per-connection dict.

    Raises:
        RequestRejected: outside the ``SCRIPT_NAME`` mount (404) or conflicting
            trusted scheme headers (400).
    """
    env = conn_env.copy()
    method = request.method
    env["REQUEST_METHOD"] = _METHODS.get(method) or method.decode("latin-1")
    env["SERVER_PROTOCOL"] = (
        "HTTP/1.1" if request.http_version == b"1.1" else "HTTP/1.0"
    )
    target = request.target
    parts = _target_cache.get(target)
    if parts is None:
        parts = _split_target(target)
        if len(target) <= _TARGET_CACHE_MAX_LEN:
            if len(_target_cache) >= _TARGET_CACHE_SIZE:
                _target_cache.clear()
            _target_cache[target] = parts
    raw, path_info, query, authority = parts
    env["REQUEST_URI"] = raw
    env["RAW_URI"] = raw
    script_name: str = env["SCRIPT_NAME"]
    if script_name:
        if path_info == script_name or path_info.startswith(script_name + "/"):
            path_info = path_info[len(script_name) :]
        else:
            raise RequestRejected("outside the mount path", 404)
    env["PATH_INFO"] = path_info
    env["QUERY_STRING"] = query
    env_keys = _env_keys
    for lname, value in request.headers:
        key = env_keys.get(lname, _MISS)
        if key == _MISS:
            key = _env_key(lname)
        if key is None:
            continue
        text = value.decode("latin-1")
        if key in env:
            sep = "; " if key == "HTTP_COOKIE" else ", "
            env[key] = env[key] + sep + text
        else:
            env[key] = text
    if authority is not None:
        env["HTTP_HOST"] = authority
    if request.chunked or request.content_length is not None:
        env["CONTENT_LENGTH"] = str(body_length)
    env["wsgi.input"] = body
    if trusted:
        scheme = _trusted_scheme(env)
        if scheme is not None:
            env["wsgi.url_scheme"] = scheme
            if scheme == "https":
                env["HTTPS"] = "on"
    if unix:
        host = authority if authority is not None else env.get("HTTP_HOST", "")
        env["SERVER_NAME"], env["SERVER_PORT"] = _split_host(
            host, env["wsgi.url_scheme"]
        )
    return env

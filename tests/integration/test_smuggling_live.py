"""The smuggling corpus (tests/corpus/requests/smuggling) against live servers.

1. Straight to a forked worker: each vector gets its expected statuses, the connection
   closes, and the app saw exactly the expected requests (never ``/smuggled``).
2. Through nginx (127.0.0.1) to the worker on a unix socket: nginx and starman must never
   disagree on framing. Every request that reaches the app is answered to the client
   (no hidden request), starman never has to refuse what nginx forwarded, and the app
   never sees ``/smuggled`` unless both parsers framed it as a real request.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fixtures.apps.recording_app import make_recording_app, read_log
from tests.harness.forked_worker import ForkedWorker, forked_worker, make_config
from tests.harness.process import kill_group, spawn, wait_for
from tests.unit.test_smuggling_corpus import EXPECTED, MAX_BODY, load

NGINX = "/usr/sbin/nginx"
CONFIG = make_config(
    read_timeout=2.0,
    keepalive_timeout=0.3,
    body_timeout=2.0,
    max_request_body=MAX_BODY,
)

Response = tuple[int, dict[str, str], bytes]


@dataclass
class Live:
    worker: ForkedWorker
    log: str


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    tmp = tempfile.mkdtemp(prefix="sg", dir="/tmp")
    log = os.path.join(tmp, "seen.jsonl")
    try:
        with forked_worker(lambda: make_recording_app(log), CONFIG, factory=True) as w:
            yield Live(w, log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def exchange(address: str | tuple[str, int], raw: bytes, timeout: float = 8.0) -> bytes:
    """Send ``raw``, read until the server closes (bounded); fail if it never closes."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(address)
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may refuse and close before reading everything
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                got = b"".join(chunks)
                raise AssertionError(f"server did not close; got {got!r}") from None
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def parse_responses(raw: bytes, head_methods: list[bool]) -> list[Response]:
    """Split a byte stream into responses; ``head_methods[i]``: the i-th 200 answers HEAD."""
    out: list[Response] = []
    oks = 0
    while raw:
        if not raw.startswith(b"HTTP/"):  # nginx answers an HTTP/0.9 request headless
            out.append((0, {}, raw))
            break
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, f"truncated response head: {raw!r}"
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if status == 200:
            if oks < len(head_methods) and head_methods[oks]:
                length = 0
            oks += 1
        out.append((status, headers, rest[:length]))
        raw = rest[length:]
    return out


def origin_form(target: bytes) -> bytes:
    """nginx forwards an absolute-form target in origin form."""
    if target.startswith((b"http://", b"https://")):
        rest = target.split(b"//", 1)[1]
        return b"/" + rest.partition(b"/")[2]
    return target


def clear(log: str) -> None:
    with open(log, "w"):
        pass


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vector_against_a_live_worker(live: Live, name: str) -> None:
    status, before = EXPECTED[name]
    clear(live.log)
    raw = exchange(live.worker.address, load(name))
    got = parse_responses(raw, [m == b"HEAD" for m, _, _, _ in before])
    codes = [c for c, _, _ in got]
    assert codes == [200] * len(before) + ([status] if status else []), (name, raw)
    if status:
        assert got[-1][1]["connection"] == "close"
    assert read_log(live.log) == [(m, t, b) for m, t, b, _ in before]
    assert live.worker.alive()


# ---------------------------------------------------------------------------- nginx

NGINX_CONF = """\
daemon off;
master_process off;
user root root;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_timeout 300ms;
    upstream starman {{
        server unix:{sock};
        keepalive 4;
        # nginx drops an idle upstream connection before starman's 0.3 s idle close,
        # so it never reuses one that starman is closing (a 502 race, not framing).
        keepalive_timeout 100ms;
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location / {{
            proxy_pass http://starman;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


@dataclass
class Proxied:
    port: int
    log: str
    worker: ForkedWorker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def proxied(live: Live) -> Iterator[Proxied]:
    if not os.access(NGINX, os.X_OK) or os.geteuid() != 0:
        pytest.skip("needs Debian's nginx and root")
    tmp = tempfile.mkdtemp(prefix="sn", dir="/tmp")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        address = live.worker.address
        assert isinstance(address, str)
        for _attempt in range(5):
            port = _free_port()
            conf = os.path.join(tmp, "nginx.conf")
            with open(conf, "w", encoding="utf-8") as f:
                f.write(NGINX_CONF.format(tmp=tmp, sock=address, port=port))
            errors = os.path.join(tmp, "error.log")
            proc = spawn(
                [NGINX, "-p", tmp, "-e", errors, "-c", conf], stdout=subprocess.DEVNULL
            )
            procs.append(proc)

            def up(proc: subprocess.Popen[bytes] = proc, port: int = port) -> bool:
                if proc.poll() is not None:
                    return True
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True

            wait_for(up, timeout=15)
            if proc.poll() is None:
                break
        else:
            pytest.fail("nginx did not start")
        yield Proxied(port, live.log, live.worker)
    finally:
        for proc in procs:
            kill_group(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_nginx_and_starman_agree_on_framing(proxied: Proxied, name: str) -> None:
    clear(proxied.log)
    raw = exchange(("127.0.0.1", proxied.port), load(name), timeout=10.0)

    seen = read_log(proxied.log)
    got = parse_responses(raw, [m == b"HEAD" for m, _, _ in seen])
    # The app's answers (a headless HTTP/0.9 one is the app's when its body is ours).
    from_app = [r for r in got if r[1].get("x-app") == "1" or r[2] == b"seen\n"]
    # Every request the app ran was answered to the client: nothing hidden in a body.
    assert len(from_app) == len(seen), (name, raw, seen)
    # starman never refused what nginx forwarded (no framing disagreement upstream).
    for code, headers, body in got:
        if headers.get("x-app") != "1" and body != b"seen\n":
            # nginx's own errors are HTML; a plain "400 Bad Request" is starman's.
            assert not body.startswith(b"%d " % code), (name, raw)
            assert code != 502, (name, raw)
    status, before = EXPECTED[name]
    direct = [(m, t, b) for m, t, b, _ in before]
    # nginx may frame a vector its own way (it drops an invalid field line such as
    # "Transfer-Encoding\xa0: chunked" and uses Content-Length): it then sends starman
    # clean, re-framed requests and answers each one, which the count above checks.
    # Where both accepted the leading requests, they are the same requests.
    for a, b in zip(seen, direct):
        assert a == (b[0], origin_form(b[1]), b[2]), (name, seen, direct)
    assert proxied.worker.alive()

"""nginx in front: client -> nginx (127.0.0.1) -> unix socket -> starman, the usual
production shape. Checks X-Forwarded-Proto handling (unix-socket peers are trusted;
TCP peers only when listed in --forwarded-allow-ips) and upstream keep-alive
(``keepalive 4`` + HTTP/1.1 + an empty Connection header reuse one connection).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.harness.process import FIXTURES, kill_group, spawn, wait_for
from tests.harness.rawhttp import http_request, response_body
from tests.harness.starman_program import Launcher, listening_address

NGINX = "/usr/sbin/nginx"
APP = os.path.join(FIXTURES, "apps", "proxied_app.py")

pytestmark = pytest.mark.skipif(
    not os.access(NGINX, os.X_OK) or os.geteuid() != 0,
    reason="needs Debian's nginx and root",
)

CONFIG = """\
daemon off;
master_process off;
user root root;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    upstream starman {{
        server unix:{sock};
        keepalive 4;
    }}
    upstream starman_tcp {{
        server 127.0.0.1:{tcp_port};
    }}

    server {{
        listen 127.0.0.1:{port};

        # The recommended block: keep-alive to the upstream, scheme passed on.
        location / {{
            proxy_pass http://starman;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
        # As a TLS-terminating server block would send it.
        location /tls/ {{
            proxy_pass http://starman;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-Proto https;
        }}
        # nginx's defaults: HTTP/1.0 and Connection: close, one connection per request.
        location /nokeep/ {{
            proxy_pass http://unix:{sock}:;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
        # Over TCP from 127.0.0.1, which --forwarded-allow-ips trusts.
        location /tcp/ {{
            proxy_pass http://starman_tcp;
            proxy_set_header X-Forwarded-Proto https;
        }}
    }}
}}
"""


@dataclass
class Stack:
    tmp: str
    port: int
    direct_v6: tuple[str, int]

    def get(self, path: str, headers: str = "") -> dict[str, Any]:
        raw = http_request(
            ("127.0.0.1", self.port),
            f"GET {path} HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n"
            f"{headers}\r\n".encode(),
            timeout=10,
        )
        assert raw.startswith(b"HTTP/1.1 200"), raw
        result: dict[str, Any] = json.loads(response_body(raw))
        return result


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def stack() -> Iterator[Stack]:
    tmp = tempfile.mkdtemp(prefix="ng", dir="/tmp")
    launch = Launcher(tmp)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        sock = os.path.join(tmp, "app.sock")
        server = launch.run(
            [
                "--workers",
                "1",
                "--keepalive-timeout",
                "30",
                "--listen",
                f"unix:{sock}",
                "--listen",
                "127.0.0.1:0",
                "--listen",
                "[::1]:0",
                "--forwarded-allow-ips",
                "127.0.0.1",
                APP,
            ]
        )
        server.wait_log("all 1 workers ready", timeout=20)
        tcp = listening_address(server, r"127\.0\.0\.1")
        v6 = listening_address(server, r"::1")
        for _attempt in range(5):
            port = _free_port()
            conf = os.path.join(tmp, "nginx.conf")
            with open(conf, "w", encoding="utf-8") as f:
                f.write(CONFIG.format(tmp=tmp, sock=sock, port=port, tcp_port=tcp[1]))
            errors = os.path.join(tmp, "error.log")
            proc = spawn(
                [NGINX, "-p", tmp, "-e", errors, "-c", conf],
                stdout=subprocess.DEVNULL,
            )
            procs.append(proc)
            stack = Stack(tmp, port, v6)

            def up(proc: subprocess.Popen[bytes] = proc, stack: Stack = stack) -> bool:
                if proc.poll() is not None:
                    return True
                stack.get("/")
                return True

            wait_for(up, timeout=15)
            if proc.poll() is None:
                break
            with open(errors, encoding="utf-8", errors="replace") as f:
                assert "Address already in use" in f.read()
        yield stack
    finally:
        for proc in procs:
            kill_group(proc)
        launch.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_forwarded_proto_through_nginx_to_a_unix_socket(stack: Stack) -> None:
    plain = stack.get("/a")
    assert (plain["scheme"], plain["https"]) == ("http", None)
    assert plain["remote_addr"] == ""  # a unix-socket peer has no address
    assert plain["xff"] == "127.0.0.1"
    assert plain["host"] == "app.example"
    tls = stack.get("/tls/b")
    assert (tls["scheme"], tls["https"], tls["path"]) == ("https", "on", "/tls/b")
    # nginx replaces a client's own X-Forwarded-Proto: no spoofing through the proxy.
    spoof = stack.get("/c", "X-Forwarded-Proto: https\r\n")
    assert spoof["scheme"] == "http"


def test_forwarded_allow_ips_governs_tcp_peers(stack: Stack) -> None:
    via_tcp = stack.get("/tcp/x")
    assert (via_tcp["scheme"], via_tcp["remote_addr"]) == ("https", "127.0.0.1")
    # The same header straight from ::1, which is not in --forwarded-allow-ips.
    raw = http_request(
        stack.direct_v6,
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        b"X-Forwarded-Proto: https\r\n\r\n",
    )
    direct = json.loads(response_body(raw))
    assert (direct["scheme"], direct["remote_addr"]) == ("http", "::1")


def test_upstream_keepalive_reuses_one_connection(stack: Stack) -> None:
    seen = [stack.get(f"/k{i}") for i in range(6)]
    assert len({r["pid"] for r in seen}) == 1
    # Each request ran on exactly one accepted connection, and it was the same one.
    assert all(len(r["conns"]) == 1 for r in seen), seen
    assert len({r["conns"][0] for r in seen}) == 1, seen


def test_without_upstream_keepalive_each_request_is_a_new_connection(
    stack: Stack,
) -> None:
    stack.get("/warm")  # the keep-alive location holds one idle connection open
    seen = [stack.get(f"/nokeep/{i}") for i in range(4)]
    current = [set(r["conns"]) for r in seen]
    # The connection carrying each request differs from all the others.
    carrying = [c - set.intersection(*current) for c in current]
    assert all(len(c) == 1 for c in carrying), seen
    assert len(set().union(*carrying)) == 4, seen

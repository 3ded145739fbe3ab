#!/usr/bin/env python3
"""Hot-deploy benchmark: busy clients on 127.0.0.1 while start_server gets N HUPs.

Starts ``start_server`` (ours or Perl's) over a starman (ours or Perl's) serving an app that
names its generation, keeps ``--clients`` client threads busy for the whole run, sends
``--hups`` HUPs (each after the previous swap finished, as ``start_server --restart`` would),
and prints requests, failures, retries and the generations seen.

    .venv/bin/python bench/hotdeploy.py --server ours --mode close
    .venv/bin/python bench/hotdeploy.py --server ours --mode keepalive
    .venv/bin/python bench/hotdeploy.py --server perl --mode close --signal-on-hup QUIT

Modes: ``close`` opens a connection per request; ``keepalive`` keeps connections open and
retries a request once, only when the connection closed before any response byte (what
real HTTP clients do for an idempotent request on a reused connection). Every wait is
bounded; only 127.0.0.1 is contacted; the server tree is killed by process group at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HOST = "127.0.0.1"
PERL_START_SERVER = "/usr/bin/start_server"
PERL_STARMAN = "/usr/bin/starman"
GEN_RE = re.compile(rb"generation (\d+)")
IO_TIMEOUT = 10.0


@dataclass
class Tally:
    """What one client thread saw."""

    requests: int = 0
    retries: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    generations: Counter[str] = field(default_factory=Counter)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _recv(sock: socket.socket, have: bytes) -> bytes:
    """One recv; a reset or EOF becomes EOFError saying whether any response byte came."""
    try:
        chunk = sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        chunk = b""
    if not chunk:
        raise EOFError("closed-after-bytes" if have else "closed-before-bytes")
    return chunk


def read_response(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes, bytes, bool]:
    """Read one response: (head, body, leftover, server_closes). Raises on EOF/timeout."""
    got = b""
    while b"\r\n\r\n" not in buf:
        chunk = _recv(sock, got)
        got += chunk
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    if not m:
        raise ValueError("no-content-length")
    length = int(m.group(1))
    while len(rest) < length:
        rest += _recv(sock, b"x")
    closes = re.search(rb"(?im)^connection:\s*close\s*$", head) is not None
    return head, rest[:length], rest[length:], closes


REQUEST_KA = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
REQUEST_CLOSE = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"


def record(t: Tally, head: bytes, body: bytes) -> None:
    if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
        t.failures["status:" + head.split(b"\r\n", 1)[0].decode("latin-1")] += 1
        return
    t.requests += 1
    m = GEN_RE.search(body)
    t.generations[m.group(1).decode() if m else "?"] += 1


def client_close(port: int, stop: threading.Event, t: Tally) -> None:
    while not stop.is_set():
        try:
            with socket.create_connection((HOST, port), timeout=IO_TIMEOUT) as s:
                s.sendall(REQUEST_CLOSE)
                head, body, _, _ = read_response(s, b"")
            record(t, head, body)
        except (OSError, EOFError, ValueError) as exc:
            t.failures[type(exc).__name__ + ":" + str(exc)[:40]] += 1


def client_keepalive(port: int, stop: threading.Event, t: Tally) -> None:
    sock: socket.socket | None = None
    buf = b""
    while not stop.is_set():
        for attempt in (1, 2):
            fresh = sock is None
            try:
                if sock is None:
                    sock = socket.create_connection((HOST, port), timeout=IO_TIMEOUT)
                    buf = b""
                sock.sendall(REQUEST_KA)
                head, body, buf, closes = read_response(sock, buf)
            except (OSError, EOFError, ValueError) as exc:
                if sock is not None:
                    sock.close()
                    sock = None
                # A reused connection closed before any response byte: the server
                # closed it as idle, so the request was not processed; retry once.
                reusable = (
                    not fresh
                    and isinstance(exc, EOFError)
                    and str(exc) == "closed-before-bytes"
                ) or (not fresh and isinstance(exc, BrokenPipeError))
                if attempt == 1 and reusable:
                    t.retries += 1
                    continue
                t.failures[type(exc).__name__ + ":" + str(exc)[:40]] += 1
                break
            record(t, head, body)
            if closes:
                sock.close()
                sock = None
            break
    if sock is not None:
        sock.close()


def read_status(path: str) -> dict[str, str]:
    try:
        with open(path) as f:
            return dict(line.strip().split(":", 1) for line in f if ":" in line)
    except FileNotFoundError:
        return {}


def wait_until(pred: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def build_command(args: argparse.Namespace, port: int, tmp: str) -> list[str]:
    status, pid = os.path.join(tmp, "status"), os.path.join(tmp, "pid")
    common = [f"--port={HOST}:{port}", f"--status-file={status}", f"--pid-file={pid}"]
    common += [f"--interval={args.interval}"]
    if args.signal_on_hup:
        common.append(f"--signal-on-hup={args.signal_on_hup}")
    if args.server == "perl":
        starter = [PERL_START_SERVER, *common, *args.start_server_arg]
        app = [
            PERL_STARMAN,
            "--workers",
            str(args.workers),
            os.path.join(HERE, "hello_gen.psgi"),
        ]
    else:
        starter = [
            sys.executable,
            "-m",
            "start_server",
            *common,
            *args.start_server_arg,
        ]
        app = [sys.executable, "-m", "starman", "--workers", str(args.workers)]
        app += [os.path.join(REPO, "docs", "examples", "hello.py")]
    return [*starter, "--", *app, *args.starman_arg]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", choices=["ours", "perl"], default="ours")
    p.add_argument("--mode", choices=["close", "keepalive"], default="close")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--hups", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--interval", type=int, default=1, help="start_server --interval")
    p.add_argument("--signal-on-hup", default=None)
    p.add_argument("--start-server-arg", action="append", default=[])
    p.add_argument("--starman-arg", action="append", default=[])
    p.add_argument("--swap-timeout", type=float, default=30.0)
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args()

    tmp = tempfile.mkdtemp(prefix="hotdeploy-")
    port = free_port()
    argv = build_command(args, port, tmp)
    log = open(os.path.join(tmp, "server.log"), "wb")
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=REPO,
    )
    status_path = os.path.join(tmp, "status")
    result: dict[str, object] = {"server": args.server, "mode": args.mode, "argv": argv}
    try:

        def serving() -> bool:
            try:
                with socket.create_connection((HOST, port), timeout=1) as s:
                    s.sendall(REQUEST_CLOSE)
                    head, _, _, _ = read_response(s, b"")
                    return head.startswith(b"HTTP/1.")
            except (OSError, EOFError, ValueError):
                return False

        if not wait_until(serving, 30):
            print(f"server did not come up; log in {tmp}/server.log", file=sys.stderr)
            return 1
        stop = threading.Event()
        tallies = [Tally() for _ in range(args.clients)]
        target = client_close if args.mode == "close" else client_keepalive
        threads = [
            threading.Thread(target=target, args=(port, stop, t), daemon=True)
            for t in tallies
        ]
        started = time.monotonic()
        for th in threads:
            th.start()
        time.sleep(1.0)  # let the clients reach a steady state before the first HUP
        swaps_ok = 0
        for i in range(args.hups):
            before = read_status(status_path)
            target_gen = str(max((int(g) for g in before), default=0) + 1)
            os.kill(proc.pid, signal.SIGHUP)
            if wait_until(
                lambda g=target_gen: list(read_status(status_path)) == [g],
                args.swap_timeout,
            ):
                swaps_ok += 1
            else:
                print(
                    f"HUP {i + 1}: generation {target_gen} did not become sole",
                    file=sys.stderr,
                )
        time.sleep(1.0)
        stop.set()
        for th in threads:
            th.join(IO_TIMEOUT + 5)
        elapsed = time.monotonic() - started
        total = Tally()
        for t in tallies:
            total.requests += t.requests
            total.retries += t.retries
            total.failures.update(t.failures)
            total.generations.update(t.generations)
        result.update(
            requests=total.requests,
            failures=sum(total.failures.values()),
            failure_kinds=dict(total.failures),
            retries=total.retries,
            generations_seen=len(total.generations),
            hups=args.hups,
            swaps_completed=swaps_ok,
            seconds=round(elapsed, 1),
            rps=round(total.requests / elapsed, 1),
        )
    finally:
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)
        log.close()
    print(
        f"{args.server:5s} {args.mode:9s} requests={result['requests']} "
        f"failures={result['failures']} retries={result['retries']} "
        f"generations_seen={result['generations_seen']} swaps={result['swaps_completed']}/{args.hups} "
        f"seconds={result['seconds']}"
    )
    if result["failure_kinds"]:
        print("  failure kinds:", result["failure_kinds"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0 if result["failures"] == 0 else 3


if __name__ == "__main__":
    sys.exit(main())

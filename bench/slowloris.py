#!/usr/bin/env python3
"""Slowloris against 2 workers: ours (python -m starman) beside Perl Starman (the anchor).

    python bench/slowloris.py                       # both servers, 400 stalled + 200 idle
    python bench/slowloris.py --servers ours --stalled 400 --idle 200 --json /tmp/s.json

The attacker keeps ``--stalled`` connections that send a partial request head and then one
more header line every ``--trickle`` seconds (never finishing it), and ``--idle``
connections that connect and send nothing; any connection the server closes is reopened
at once, so the pressure stays constant. After ``--warmup`` seconds, ``--probes`` normal
``GET /`` requests (a fresh connection each, ``--probe-timeout`` seconds allowed) are timed
one per second. Reported: probes answered, their latency (median, max), how many attack
connections were open and how many the server closed.

Servers: ``ours`` (``{python} -m starman --workers 2``, hello_wsgi.py) and ``perl``
(``/usr/bin/starman --workers 2``, hello.psgi), each on 127.0.0.1 with a free port, started
in its own session and killed by process group at the end. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(HERE, "apps")
PERL_STARMAN = "/usr/bin/starman"
HOST = "127.0.0.1"
OURS_EXTRA: list[str] = []  # --ours-extra, appended to our command line
PARTIAL = b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: slowloris\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def command(server: str, port: int, python: str) -> list[str]:
    if server == "ours":
        return [
            python,
            "-m",
            "starman",
            "--workers",
            "2",
            "--listen",
            f"{HOST}:{port}",
            *OURS_EXTRA,
            os.path.join(APPS, "hello_wsgi.py"),
        ]
    return [
        PERL_STARMAN,
        "--workers",
        "2",
        "--listen",
        f"{HOST}:{port}",
        os.path.join(APPS, "hello.psgi"),
    ]


def get(port: int, timeout: float) -> float | None:
    """Seconds for one ``GET /`` on a fresh connection, or None (timeout / error)."""
    start = time.monotonic()
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.settimeout(max(0.01, timeout - (time.monotonic() - start)))
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            data = b""
            while b"Hello World" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    if not data.startswith(b"HTTP/1.") or b" 200 " not in data[:16]:
        return None
    return time.monotonic() - start


def _probe(result: list[float | None], port: int, timeout: float) -> None:
    result.append(get(port, timeout))


def wait_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited during start-up")
        if get(port, 2.0) is not None:
            return
        time.sleep(0.1)
    raise RuntimeError("server did not answer within 30 s")


class Attack:
    """Keeps N stalled and M idle connections open, reopening what the server closes."""

    def __init__(self, port: int, stalled: int, idle: int, trickle: float) -> None:
        self.port = port
        self.want = {"stalled": stalled, "idle": idle}
        self.trickle = trickle
        self.sel = selectors.DefaultSelector()
        self.open = {"stalled": 0, "idle": 0}
        self.closed_by_server = 0
        self.connect_failures = 0
        self.next_trickle = time.monotonic() + trickle

    def _open(self, kind: str) -> None:
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect((HOST, self.port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            self.connect_failures += 1
            return
        self.sel.register(
            s, selectors.EVENT_READ | selectors.EVENT_WRITE, [kind, False]
        )
        self.open[kind] += 1

    def fill(self) -> None:
        for kind, n in self.want.items():
            while self.open[kind] < n:
                self._open(kind)
                if self.connect_failures > 10000:
                    return

    def step(self, seconds: float) -> None:
        """Run the attack loop for ``seconds``."""
        end = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if now >= end:
                return
            self.fill()
            for key, mask in self.sel.select(min(0.05, end - now)):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                kind, started = key.data
                if mask & selectors.EVENT_WRITE and not started:
                    key.data[1] = True
                    self.sel.modify(sock, selectors.EVENT_READ, key.data)
                    if kind == "stalled":
                        try:
                            sock.send(PARTIAL)
                        except OSError:
                            self._drop(sock, kind)
                    continue
                if mask & selectors.EVENT_READ:
                    try:
                        data = sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        self.closed_by_server += 1
                        self._drop(sock, kind)
            if time.monotonic() >= self.next_trickle:
                self.next_trickle += self.trickle
                for key in list(self.sel.get_map().values()):
                    if key.data[0] == "stalled" and key.data[1]:
                        sock = key.fileobj
                        assert isinstance(sock, socket.socket)
                        try:
                            sock.send(b"X-Slow: 1\r\n")
                        except OSError:
                            self.closed_by_server += 1
                            self._drop(sock, "stalled")

    def _drop(self, sock: socket.socket, kind: str) -> None:
        self.sel.unregister(sock)
        sock.close()
        self.open[kind] -= 1

    def close(self) -> None:
        for key in list(self.sel.get_map().values()):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            sock.close()
        self.sel.close()


def run(server: str, args: argparse.Namespace) -> dict[str, object]:
    port = free_port()
    proc = subprocess.Popen(
        command(server, port, args.python),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    attack: Attack | None = None
    try:
        wait_up(port, proc)
        baseline = get(port, 5.0)
        attack = Attack(port, args.stalled, args.idle, args.trickle)
        attack.step(args.warmup)
        opened = dict(attack.open)
        latencies: list[float | None] = []
        for _ in range(args.probes):
            # The probe runs while the attack keeps going (in this process, between steps).
            t0 = time.monotonic()
            result: list[float | None] = []
            th = threading.Thread(
                target=_probe, args=(result, port, args.probe_timeout)
            )
            th.start()
            while th.is_alive():
                attack.step(0.2)
            latencies.append(result[0])
            spent = time.monotonic() - t0
            if spent < 1.0:
                attack.step(1.0 - spent)
        answered = [x for x in latencies if x is not None]
        return {
            "server": server,
            "stalled": args.stalled,
            "idle": args.idle,
            "baseline_s": baseline,
            "attack_open_at_probe": opened,
            "server_closed_attack_conns": attack.closed_by_server,
            "probes": args.probes,
            "answered": len(answered),
            "median_s": statistics.median(answered) if answered else None,
            "max_s": max(answered) if answered else None,
            "latencies_s": latencies,
            "probe_timeout_s": args.probe_timeout,
        }
    finally:
        if attack is not None:
            attack.close()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", default="ours,perl")
    ap.add_argument("--stalled", type=int, default=400)
    ap.add_argument("--idle", type=int, default=200)
    ap.add_argument("--trickle", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--probes", type=int, default=5)
    ap.add_argument("--probe-timeout", type=float, default=20.0)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--ours-extra", default="", help="extra options for ours")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    OURS_EXTRA[:] = args.ours_extra.split()
    results = []
    for server in args.servers.split(","):
        if server == "perl" and not os.access(PERL_STARMAN, os.X_OK):
            print("perl: /usr/bin/starman not installed, skipped")
            continue
        res = run(server, args)
        results.append(res)
        lats = res["latencies_s"]
        assert isinstance(lats, list)
        lat = ", ".join("-" if x is None else f"{x * 1000:.0f}ms" for x in lats)
        print(
            f"{server}: {res['answered']}/{res['probes']} probes answered "
            f"(timeout {args.probe_timeout:g}s): {lat}; attack conns open "
            f"{res['attack_open_at_probe']}, closed by server {res['server_closed_attack_conns']}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A tiny server to run under start_server: answers every connection with its pid and generation.

    .venv/bin/start_server --port 127.0.0.1:8080 -- .venv/bin/python docs/examples/echo_server.py
    curl http://127.0.0.1:8080/        # "hello from pid 1234, generation 1"
    kill -HUP <start_server pid>       # generation 2 takes over, no connection refused

It adopts the listening sockets with start_server.listen_all() and stops accepting on TERM
(Server::Starter's contract: the old generation exits gracefully when signalled).
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import sys

from start_server import listen_all


def main() -> int:
    listeners = listen_all()
    if not listeners:
        print(
            "echo_server: no SERVER_STARTER_PORT; run me under start_server",
            file=sys.stderr,
        )
        return 2
    generation = os.environ.get("SERVER_STARTER_GENERATION", "?")
    body = f"hello from pid {os.getpid()}, generation {generation}\n".encode()
    response = (
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    sel = selectors.DefaultSelector()
    for _, sock in listeners:
        if isinstance(sock, socket.socket) and sock.type == socket.SOCK_STREAM:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
    while not stop:
        for key, _ in sel.select(timeout=1.0):
            listener = key.fileobj
            assert isinstance(listener, socket.socket)
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                    conn.sendall(response)
                except OSError:
                    pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

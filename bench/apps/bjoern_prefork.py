"""bjoern as a peer for bench/bench.py: bind once, then fork N processes that each run
bjoern's event loop on the shared socket (bjoern's own multi-process recipe).

    PEER_PYTHON bjoern_prefork.py PORT WORKERS MODULE:ATTR

Binds 127.0.0.1 only. The parent serves nothing: on TERM/INT it forwards TERM to its
children by pid and exits once they are gone, SIGKILLing any left after 5 s.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from types import FrameType

HOST = "127.0.0.1"
STOP_GRACE_S = 5


def main() -> int:
    port, workers, spec = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    module, _, attr = spec.partition(":")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    app = getattr(importlib.import_module(module), attr)
    import bjoern  # type: ignore[import-not-found]  # a peer, only in the bench venv

    bjoern.listen(app, HOST, port)
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            try:
                bjoern.run()
            finally:
                os._exit(0)
        children.append(pid)

    def signal_all(sig: int) -> None:
        for child in children:
            try:
                os.kill(child, sig)
            except ProcessLookupError:
                pass

    def stop(signum: int, frame: FrameType | None) -> None:
        signal_all(signal.SIGTERM)
        signal.alarm(STOP_GRACE_S)

    def kill(signum: int, frame: FrameType | None) -> None:
        signal_all(signal.SIGKILL)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGALRM, kill)
    while children:
        try:
            pid, _status = os.wait()
        except ChildProcessError:
            break
        if pid in children:
            children.remove(pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())

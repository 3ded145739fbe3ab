"""wsgi.file_wrapper scenario for bench/bench.py: serves the file named by $BENCH_FILE.

bench.py writes a 1 MB file and exports its path; without the variable a 1 MB file is
created once in the temp directory. Falls back to 64 KB reads when the server has no
``wsgi.file_wrapper``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any, Callable


def _path() -> str:
    path = os.environ.get("BENCH_FILE")
    if path:
        return path
    path = os.path.join(tempfile.gettempdir(), "bench-filewrap-1m.bin")
    if not os.path.exists(path) or os.path.getsize(path) != 1 << 20:
        with open(path, "wb") as f:
            f.write(b"f" * (1 << 20))
    return path


PATH = _path()
SIZE = os.path.getsize(PATH)


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    try:
        while True:
            chunk = f.read(65536)
            if not chunk:
                return
            yield chunk
    finally:
        f.close()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    f = open(PATH, "rb")  # the server closes it (wrapper.close())
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(SIZE))],
    )
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        result: Iterable[bytes] = wrapper(f, 65536)
        return result
    return _chunks(f)


application = app

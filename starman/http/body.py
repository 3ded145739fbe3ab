"""Request-body buffer (memory, spilling to an unlinked temp file) and the ``wsgi.input`` object.

Rule: no socket, selectors, signal, time or logging imports; the worker loop writes the bytes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO

__all__ = ["BodyBuffer", "BodyInput", "empty_input"]


class BodyInput:
    """``wsgi.input``: a read-only view of exactly the request body (PEP 3333).

    ``read``, ``readline``, ``readlines`` and iteration return ``bytes``, never read past the
    body, and return ``b""`` at EOF forever. There is no ``close()`` for the app: the server
    calls ``release()``, which also deletes a spill file.
    """

    __slots__ = ("_f",)

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all the rest for ``-1``/None)."""
        if size is None or size < 0:
            return self._f.read()
        return self._f.read(size)

    def readline(self, size: int | None = -1) -> bytes:
        """One line including its ``\\n`` (at most ``size`` bytes when given)."""
        if size is None or size < 0:
            return self._f.readline()
        return self._f.readline(size)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """The remaining lines (stopping once ``hint`` bytes were read, when given)."""
        if hint is None or hint <= 0:
            return self._f.readlines()
        return self._f.readlines(hint)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self._f.readline()
        if not line:
            raise StopIteration
        return line

    def release(self) -> None:
        """Server side: free the memory or delete the spill file."""
        self._f.close()


class BodyBuffer:
    """Collect a request body: in memory up to ``max_memory`` bytes, then in a temp file.

    waitress ``OverflowableBuffer`` idea. The temp file is created in ``tmp_dir`` (None: the
    system default) and is already unlinked, so nothing is left behind if the process dies.
    """

    __slots__ = ("_chunks", "_file", "_max_memory", "_tmp_dir", "size")

    def __init__(self, max_memory: int, tmp_dir: str | None = None) -> None:
        self._max_memory = max_memory
        self._tmp_dir = tmp_dir
        self._chunks: list[bytes] = []
        self._file: IO[bytes] | None = None
        self.size = 0

    @property
    def spilled(self) -> bool:
        """Whether the body went to a temp file."""
        return self._file is not None

    def write(self, data: bytes) -> None:
        """Append body bytes."""
        self.size += len(data)
        if self._file is not None:
            self._file.write(data)
            return
        self._chunks.append(data)
        if self.size > self._max_memory:
            import tempfile  # only when a body spills: a module the master need not hold

            f = tempfile.TemporaryFile(dir=self._tmp_dir)
            f.writelines(self._chunks)
            self._chunks = []
            self._file = f

    def finish(self) -> BodyInput:
        """The ``wsgi.input`` object over the collected bytes (positioned at the start)."""
        if self._file is not None:
            f = self._file
            f.flush()
            f.seek(0)
            self._file = None
            return BodyInput(f)
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks = []
        return BodyInput(io.BytesIO(data))

    def discard(self) -> None:
        """Drop what was collected (the request failed before the app ran)."""
        self._chunks = []
        if self._file is not None:
            self._file.close()
            self._file = None


class _EmptyInput(BodyInput):
    """``wsgi.input`` of every bodiless request: always at EOF, nothing to free.

    Stateless, so one instance serves every request (no BytesIO per GET).
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(io.BytesIO())

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return []

    def __next__(self) -> bytes:
        raise StopIteration

    def release(self) -> None:
        """Nothing to free (shared)."""


_EMPTY = _EmptyInput()


def empty_input() -> BodyInput:
    """``wsgi.input`` for a request without a body (a shared, stateless instance)."""
    return _EMPTY

"""The scoreboard: one fixed-size slot per worker in an anonymous shared mmap.

Each worker writes only its own slot (``struct.pack_into``); the master reads all of them
for readiness, --timeout and --status-file. A torn read is harmless: it is re-read next time.
"""

from __future__ import annotations

import enum
import mmap
import os
import struct
import time
from typing import Any

from start_server.common.record import Record

__all__ = ["SLOT_SIZE", "Scoreboard", "SlotHooks", "SlotInfo", "SlotState"]

# pid, generation, state, leaving flag (_DRAINING or _RETIRING), (2 pad), request start
# (monotonic ns, 0 = none), requests served
_FORMAT = struct.Struct("=iiBB2xqQ")
# One slot per 64-byte cache line: every worker writes its slot twice per request, and two
# workers' slots in one line would make each write pull the line from the other's core.
SLOT_SIZE = 64
assert _FORMAT.size <= SLOT_SIZE
# The worker's per-request writes touch only the tail of its slot (from the state byte on):
# one pack_into at a fixed offset, no keyword arguments, no pid/generation rewrite.
_TAIL_OFFSET = 8
_STARTED = struct.Struct("=BB2xq")  # state, draining, request start
_FINISHED = struct.Struct("=BB2xqQ")  # state, draining, request start (0), requests
# The leaving flag: draining now, or still serving but leaving soon (near --max-requests).
_DRAINING = 1
_RETIRING = 2


class SlotState(enum.IntEnum):
    EMPTY = 0
    BOOTING = 1
    READY = 2  # accepting, no request in the app
    IN_APP = 3
    DRAINING = 4


# By value, for read(): an Enum call per slot per master turn runs enum.py's lookup code.
_STATES = tuple(sorted(SlotState, key=int))
assert [int(x) for x in _STATES] == list(range(len(_STATES)))


class SlotInfo(Record):
    """What a worker last wrote into its slot."""

    __slots__ = (
        "pid",
        "generation",
        "state",
        "request_start_ns",
        "requests",
        "draining",
        "retiring",
    )

    def __init__(
        self,
        pid: int,
        generation: int,
        state: SlotState,
        request_start_ns: int,
        requests: int,
        draining: bool = False,  # set once the worker started draining, whatever ``state`` says
        retiring: bool = False,  # still serving, but it will leave by itself soon
    ) -> None:
        self.pid = pid
        self.generation = generation
        self.state = state
        self.request_start_ns = request_start_ns
        self.requests = requests
        self.draining = draining
        self.retiring = retiring

    def as_json(self) -> dict[str, object]:
        """A JSON-friendly dict for --status-file."""
        return {
            "pid": self.pid,
            "generation": self.generation,
            "state": self.state.name.lower(),
            "requests": self.requests,
        }


class Scoreboard:
    """Shared slots created by the master before forking.

    Methods for the caller: ``write(slot, ...)``, ``read(slot)``, ``clear(slot)``, ``close()``.
    """

    def __init__(self, nslots: int) -> None:
        self.nslots = nslots
        # MAP_SHARED|MAP_ANONYMOUS: the pages stay shared with every forked worker.
        self._mem = mmap.mmap(-1, max(1, nslots) * SLOT_SIZE)

    def _offset(self, slot: int) -> int:
        if not 0 <= slot < self.nslots:
            raise IndexError(
                f"scoreboard slot {slot} out of range 0..{self.nslots - 1}"
            )
        return slot * SLOT_SIZE

    def write(
        self,
        slot: int,
        *,
        pid: int,
        generation: int,
        state: SlotState,
        request_start_ns: int = 0,
        requests: int = 0,
        draining: bool = False,
        retiring: bool = False,
    ) -> None:
        """Overwrite a whole slot."""
        _FORMAT.pack_into(
            self._mem,
            self._offset(slot),
            pid,
            generation,
            int(state),
            _DRAINING if draining else _RETIRING if retiring else 0,
            request_start_ns,
            requests,
        )

    def read(self, slot: int) -> SlotInfo:
        """Read one slot (unknown state bytes read as EMPTY)."""
        pid, gen, st, drn, start, reqs = _FORMAT.unpack_from(
            self._mem, self._offset(slot)
        )
        state = _STATES[st] if st < len(_STATES) else SlotState.EMPTY
        return SlotInfo(
            pid, gen, state, start, reqs, drn == _DRAINING, drn == _RETIRING
        )

    def clear(self, slot: int) -> None:
        """Mark a slot empty (before reusing it for a new worker)."""
        self.write(slot, pid=0, generation=0, state=SlotState.EMPTY)

    def close(self) -> None:
        self._mem.close()


class SlotHooks:
    """The worker's ``WorkerHooks`` over its scoreboard slot.

    ``ready()``, ``retiring()`` and ``draining()`` also write one byte to ``wake_fd`` (a
    pipe the master selects on), so the master learns of readiness, and of a worker about
    to leave (to start its replacement at once), without polling. ``request_started``/``request_finished`` run
    per request: each is one ``pack_into`` of the slot's tail.
    """

    def __init__(
        self,
        board: Scoreboard,
        slot: int,
        generation: int,
        wake_fd: int | None = None,
        pid: int | None = None,
    ) -> None:
        self._board = board
        self._slot = slot
        self._generation = generation
        self._wake_fd = wake_fd
        self._pid = os.getpid() if pid is None else pid
        self._requests = 0
        self._leaving = 0  # the leaving flag byte: 0, _RETIRING or _DRAINING
        self._mem = board._mem
        self._tail = board._offset(slot) + _TAIL_OFFSET
        self._idle = int(SlotState.READY)  # the state between requests
        self._write(SlotState.BOOTING)

    def _write(self, state: SlotState) -> None:
        self._board.write(
            self._slot,
            pid=self._pid,
            generation=self._generation,
            state=state,
            requests=self._requests,
            draining=self._leaving == _DRAINING,
            retiring=self._leaving == _RETIRING,
        )

    def _wake(self, byte: bytes) -> None:
        if self._wake_fd is not None:
            try:
                os.write(self._wake_fd, byte)
            except (BlockingIOError, BrokenPipeError):
                # A full pipe already wakes the master; a gone master means we exit soon.
                pass

    def ready(self) -> None:
        self._write(SlotState.READY)
        self._wake(b"r")

    def request_started(
        self,
        _pack: Any = _STARTED.pack_into,
        _in_app: int = int(SlotState.IN_APP),
        _clock: Any = time.monotonic_ns,
    ) -> None:
        _pack(self._mem, self._tail, _in_app, self._leaving, _clock())

    def request_finished(self, _pack: Any = _FINISHED.pack_into) -> None:
        self._requests = n = self._requests + 1
        _pack(self._mem, self._tail, self._idle, self._leaving, 0, n)

    def retiring(self) -> None:
        if not self._leaving:
            self._leaving = _RETIRING
            self._write(SlotState.READY)
            self._wake(b"t")

    def draining(self) -> None:
        self._leaving = _DRAINING
        self._idle = int(SlotState.DRAINING)
        self._write(SlotState.DRAINING)
        self._wake(b"d")

"""The two sides' states of one connection and the rules that move them, as data (h11 style).

Only enums and tables: the connection (h1.py) and the writer (writer.py) look every state
change up here. No parsing, no bytes, no I/O.
"""

from __future__ import annotations

import enum
from typing import Final, Union

from starman.http.events import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    ProtocolError,
    Request,
)

__all__ = [
    "ABORT",
    "END",
    "ERROR_RESPONSE",
    "NEXT_CYCLE",
    "OUR_TRANSITIONS",
    "RESPONSE",
    "THEIR_TRANSITIONS",
    "LocalProtocolError",
    "State",
    "move",
]


class State(enum.Enum):
    """One side of the connection (h11 style: the peer's requests, our responses)."""

    __hash__ = object.__hash__  # members are singletons; enum's __hash__ is Python code

    IDLE = "IDLE"  # waiting for a request head / no response started
    ACTIVE = "ACTIVE"  # request delivered, body in progress / response head sent
    DONE = "DONE"  # EndOfMessage delivered / response ended
    CLOSED = "CLOSED"  # peer sent EOF
    ERROR = "ERROR"  # a ProtocolError was raised / the response was aborted


class LocalProtocolError(RuntimeError):
    """The caller used the connection out of order (our bug, not the peer's)."""


# What moves a side besides the peer's events (the event types of events.py).
RESPONSE: Final = "response"  # our response head went out (send_response)
END: Final = "end"  # our response ended (send_end)
ERROR_RESPONSE: Final = "error response"  # a whole error response went out (send_error)
ABORT: Final = "abort"  # our response cannot be completed (abort)
NEXT_CYCLE: Final = "next cycle"  # both sides start over (start_next_cycle)

Step = Union[type, str]

# Every change of the peer's side: (state, event type or step) -> new state.
THEIR_TRANSITIONS: Final[dict[tuple[State, Step], State]] = {
    (State.IDLE, Request): State.ACTIVE,
    (State.ACTIVE, Data): State.ACTIVE,
    (State.ACTIVE, EndOfMessage): State.DONE,
    (State.IDLE, ConnectionClosed): State.CLOSED,
    (State.ACTIVE, ConnectionClosed): State.CLOSED,
    (State.CLOSED, ConnectionClosed): State.CLOSED,
    **{(s, ProtocolError): State.ERROR for s in State},
    (State.DONE, NEXT_CYCLE): State.IDLE,
}

# Every change of our side: (state, step) -> new state. An error response or an abort
# ends whatever was in progress.
OUR_TRANSITIONS: Final[dict[tuple[State, Step], State]] = {
    (State.IDLE, RESPONSE): State.ACTIVE,
    (State.ACTIVE, END): State.DONE,
    **{(s, ERROR_RESPONSE): State.DONE for s in State},
    **{(s, ABORT): State.ERROR for s in State},
    (State.DONE, NEXT_CYCLE): State.IDLE,
}


def move(table: dict[tuple[State, Step], State], *steps: Step) -> tuple[State, State]:
    """The only (from, to) pair of ``steps`` taken in a row in ``table``.

    The fast paths take a sequence of steps in one go (a whole bodiless request, a whole
    response): they check the ``from`` state and set the ``to`` state computed here once,
    at import, from the same table as the step-by-step path.
    """
    moves = []
    for start in State:
        state: State | None = start
        for step in steps:
            state = table.get((state, step)) if state is not None else None
        if state is not None:
            moves.append((start, state))
    if len(moves) != 1:
        raise ValueError(f"{steps!r} is not one transition: {moves!r}")
    return moves[0]

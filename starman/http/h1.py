"""Sans-IO HTTP/1.1 server connection: bytes in, events out, responses out as bytes.

``ServerConnection`` joins the reader (reader.py: the peer's bytes -> events), the writer
(writer.py: our responses -> bytes) and the two sides' states (state.py: the transition
tables). Rule 1: no socket, selectors, signal, time or logging imports; the caller
supplies the clock (a ``date()`` callable) and does all I/O, so every behaviour is
testable with literal bytes. Rule 4: events after a request's EndOfMessage are held
(PAUSED) until start_next_cycle().
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

from starman.http.events import (
    END_OF_MESSAGE,
    NEED_DATA,
    PAUSED,
    EndOfMessage,
    Event,
    ProtocolError,
    Request,
    Sentinel,
)
from starman.http.reader import RequestReader
from starman.http.state import (
    NEXT_CYCLE,
    OUR_TRANSITIONS,
    THEIR_TRANSITIONS,
    LocalProtocolError,
    State,
    move,
)
from starman.http.writer import Framing, ResponseWriter

__all__ = ["LocalProtocolError", "ServerConnection", "State"]

# The members as module globals for the per-request code below: on CPython 3.11 every
# ``State.IDLE`` goes through EnumType's ``__getattr__`` hook, much slower than a global
# read, and a keep-alive request reads these a dozen times.
_ACTIVE: Final = State.ACTIVE
_DONE: Final = State.DONE
_F_NONE: Final = Framing.NONE
_F_CLOSE: Final = Framing.CLOSE
# take_simple_request: a Request and its EndOfMessage in one step.
_SIMPLE_FROM, _SIMPLE_TO = move(THEIR_TRANSITIONS, Request, EndOfMessage)
# start_next_cycle: both sides from DONE back to IDLE.
_THEIR_NEXT_FROM, _THEIR_NEXT_TO = move(THEIR_TRANSITIONS, NEXT_CYCLE)
_OUR_NEXT_FROM, _OUR_NEXT_TO = move(OUR_TRANSITIONS, NEXT_CYCLE)


class ServerConnection(ResponseWriter):
    """HTTP/1.1 server side of one connection. Bytes in, events out; responses out as bytes.

    Input: ``receive_data``, ``next_event`` (and its fast form ``take_simple_request``),
    ``has_partial_request``, ``client_closes``, ``they_are_waiting_for_100_continue``.
    Output (``ResponseWriter``): ``send_response`` (and its fast form ``send_complete``),
    ``frame_data``, ``account_sendfile``, ``send_end``, ``send_error``, ``send_continue``,
    ``send_informational``, ``abort``, ``close_after_response``, ``keep_alive``.
    Both: ``start_next_cycle``, ``release``. Every state change follows state.py's tables.
    """

    __slots__ = (
        "_events",
        "_raised",
        "_reader",
        "pending",
        "receive_data",
        "release",
        "request",
        "their_state",
    )

    def __init__(
        self,
        date: Callable[[], bytes],
        *,
        limit_request_line: int,
        limit_request_fields: int,
        limit_request_field_size: int,
        max_body: int,
    ) -> None:
        ResponseWriter.__init__(self, date)
        reader = RequestReader(
            limit_request_line, limit_request_fields, limit_request_field_size, max_body
        )
        self._reader = reader
        # Feed bytes from the peer; ``b""`` means the peer closed its side (EOF). The
        # reader's own method, bound here: no call layer between the caller and it.
        self.receive_data: Callable[[bytes], None] = reader.feed
        # The connection is closed: free the reader's parser at once (it holds a
        # reference cycle); nothing is parsed afterwards. Bound the same way.
        self.release: Callable[[], None] = reader.release
        self._events: deque[Event | ProtocolError] = reader.events
        # Read-only for callers: non-empty while parsed events wait (pipelining).
        self.pending = self._events
        self.their_state = State.IDLE
        self.request: Request | None = None
        self._raised: ProtocolError | None = None

    def send_error(self, status: int, why: str | None = None) -> bytes:
        """As ResponseWriter's; a 501 for the request just refused says what is not
        implemented (an unsupported coding, CONNECT)."""
        raised = self._raised
        if why is None and status == 501 and raised is not None:
            why = str(raised)
        return ResponseWriter.send_error(self, status, why)

    def next_event(self) -> Event | Sentinel:
        """The next event, ``NEED_DATA`` or ``PAUSED``.

        Raises:
            ProtocolError: the peer broke the protocol; answer ``send_error(status_hint)``.
        """
        if self._raised is not None:
            raise self._raised
        their_state = self.their_state
        if their_state is _DONE:
            return PAUSED
        events = self._events
        if not events:
            return NEED_DATA
        event = events.popleft()
        etype = type(event)
        self.their_state = THEIR_TRANSITIONS[(their_state, etype)]
        if etype is ProtocolError:
            self._raised = event  # type: ignore[assignment]  # checked: ProtocolError
            raise event  # type: ignore[misc]  # checked: ProtocolError
        if etype is Request:
            self.request = event  # type: ignore[assignment]  # checked: Request
        return event  # type: ignore[return-value]  # checked: not a ProtocolError

    def take_simple_request(self) -> Request | None:
        """The fast form of ``next_event`` for a whole bodiless request.

        When the queued events are exactly ``Request`` (no body, no ``Expect``) and
        ``EndOfMessage``, take both as ``next_event`` would, with the same two
        transitions of their side in one step (it is then DONE), and return the request;
        otherwise change nothing and return None.
        """
        events = self._events
        if (
            len(events) != 2
            or events[1] is not END_OF_MESSAGE
            or self.their_state is not _SIMPLE_FROM
        ):
            return None
        req = events[0]
        if type(req) is not Request or req.chunked or req.content_length:
            return None
        events.clear()
        self.their_state = _SIMPLE_TO
        self.request = req
        return req

    @property
    def has_partial_request(self) -> bool:
        """Some bytes of a not yet complete request arrived (a timeout then sends 408)."""
        return self._reader.partial() or self.their_state is _ACTIVE

    @property
    def client_closes(self) -> bool:
        """The client asked for this to be its last request, which was read to the end,
        and nothing came after it: closing cannot lose unread input (no lingering needed).
        """
        req = self.request
        return (
            req is not None
            and not req.keep_alive
            and self.their_state is _DONE
            and self._reader.drained()
        )

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        """Send ``100 Continue`` now if the caller is about to wait for body bytes."""
        req = self.request
        return (
            req is not None
            and req.expect_continue
            and self.their_state is _ACTIVE
            and not self._continue_sent
            and self._reader.body_pending()
        )

    def start_next_cycle(self) -> bool:
        """After a finished exchange that may be followed by another: both sides back to
        IDLE (the next pipelined request becomes available) and True; else False,
        changing nothing."""
        req = self.request
        if (
            req is None
            or not req.keep_alive
            or self._must_close
            or self.their_state is not _THEIR_NEXT_FROM
            or self.our_state is not _OUR_NEXT_FROM
            or self._framing is _F_CLOSE
        ):
            return False
        self.their_state = _THEIR_NEXT_TO
        self.our_state = _OUR_NEXT_TO
        self.request = None
        self._framing = _F_NONE
        self._continue_sent = False
        self.response_status = 0
        self.body_bytes_sent = 0
        self.discarded_body = False
        return True

"""Unit tests for the sans-IO HTTP/1.1 core (starman.http.h1): literal bytes in, events/bytes out."""

from __future__ import annotations

import ast
import os

import httptools
import pytest

from starman.http import h1 as h1mod
from starman.http.events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    ProtocolError,
    Request,
)
from starman.http.h1 import LocalProtocolError, ServerConnection, State
from starman.http.reader import keep_alive_wanted
from starman.http.state import (
    ABORT,
    END,
    NEXT_CYCLE,
    OUR_TRANSITIONS,
    RESPONSE,
    THEIR_TRANSITIONS,
    move,
)
from starman.http.writer import STATUS_LINES, Framing, response_framing
from tests.harness.h1_replay import DATE, make_conn, replay

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
# Every module of the sans-IO core (the listing must name them all: see below).
HTTP_MODULES = (
    "h1",
    "reader",
    "recorder",
    "fields",
    "chunked",
    "writer",
    "state",
    "events",
    "body",
)


def _path_of(mod: str) -> str:
    return os.path.join(os.path.dirname(h1mod.__file__), mod + ".py")


def test_h1_module_list_is_complete() -> None:
    here = os.path.dirname(h1mod.__file__)
    found = {f[:-3] for f in os.listdir(here) if f.endswith(".py")} - {"__init__"}
    assert found == set(HTTP_MODULES)


def events_of(conn: ServerConnection) -> list[object]:
    out: list[object] = []
    while True:
        ev = conn.next_event()
        out.append(ev)
        if ev is NEED_DATA or ev is PAUSED or isinstance(ev, ConnectionClosed):
            return out


@pytest.mark.parametrize(
    ("version", "connection", "expected"),
    [
        (b"1.1", None, True),
        (b"1.1", b"close", False),
        (b"1.1", b"Close, TE", False),
        (b"1.1", b"keep-alive", True),
        (b"1.1", b"TE,  CLOSE ", False),
        (b"1.0", None, False),
        (b"1.0", b"keep-alive", True),
        (b"1.0", b"Keep-Alive, x", True),
        (b"1.0", b"keep-alive, close", False),
    ],
)
def test_h1_keep_alive_wanted(
    version: bytes, connection: bytes | None, expected: bool
) -> None:
    assert keep_alive_wanted(version, connection) is expected


@pytest.mark.parametrize(
    ("method", "status", "version", "cl", "expected"),
    [
        (b"GET", 200, b"1.1", 5, Framing.LENGTH),
        (b"GET", 200, b"1.1", None, Framing.CHUNKED),
        (b"GET", 200, b"1.0", None, Framing.CLOSE),
        (b"HEAD", 200, b"1.1", None, Framing.NONE),
        (b"HEAD", 200, b"1.1", 10, Framing.NONE),
        (b"GET", 204, b"1.1", None, Framing.NONE),
        (b"GET", 304, b"1.1", 5, Framing.NONE),
        (b"GET", 103, b"1.1", None, Framing.NONE),
    ],
)
def test_h1_response_framing(
    method: bytes, status: int, version: bytes, cl: int | None, expected: Framing
) -> None:
    assert response_framing(method, status, version, cl) is expected


def test_h1_status_lines_precomputed() -> None:
    assert STATUS_LINES[200] == b"HTTP/1.1 200 OK\r\n"
    assert STATUS_LINES[599] == b"HTTP/1.1 599 Unknown\r\n"
    assert len(STATUS_LINES) == 500


def test_h1_request_event_fields() -> None:
    conn = make_conn()
    conn.receive_data(
        b"POST /x?y HTTP/1.1\r\nHost: a\r\nContent-Length:  3 \r\nX-A: b \r\n\r\nabc"
    )
    assert events_of(conn) == [
        Request(
            b"POST",
            b"/x?y",
            b"1.1",
            ((b"host", b"a"), (b"content-length", b"3"), (b"x-a", b"b")),
            True,
            3,
            False,
            False,
            False,
        ),
        Data(b"abc"),
        EndOfMessage(),
        PAUSED,
    ]


def test_h1_pipelining_holds_events_until_next_cycle() -> None:
    conn = make_conn()
    conn.receive_data(GET * 3)
    for _ in range(3):
        evs = events_of(conn)
        assert [type(e) for e in evs[:2]] == [Request, EndOfMessage]
        assert evs[2] is PAUSED
        assert conn.next_event() is PAUSED  # held until the response is done
        conn.send_response(200, b"", content_length=0)
        conn.send_end()
        assert conn.start_next_cycle()
    assert conn.next_event() is NEED_DATA


def test_h1_response_head_keep_alive_and_date() -> None:
    conn = make_conn()
    conn.receive_data(GET)
    events_of(conn)
    head = conn.send_response(200, b"X-A: 1\r\n", content_length=2)
    assert head == (
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\nDate: "
        + DATE
        + b"\r\nConnection: keep-alive\r\n\r\n"
    )
    assert conn.frame_data(b"hi") == [b"hi"]
    assert conn.send_end() == b""
    assert conn.keep_alive


def test_h1_chunked_response_skips_empty_chunks() -> None:
    conn = make_conn()
    conn.receive_data(GET)
    events_of(conn)
    head = conn.send_response(200, b"", has_date=True)
    assert b"Transfer-Encoding: chunked\r\n" in head
    assert conn.frame_data(b"a") == [b"1\r\n", b"a", b"\r\n"]
    assert conn.frame_data(b"") == []
    assert conn.send_end() == b"0\r\n\r\n"
    assert conn.keep_alive


def test_h1_http10_unknown_length_closes() -> None:
    conn = make_conn()
    conn.receive_data(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    events_of(conn)
    head = conn.send_response(200, b"")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head.endswith(b"Connection: close\r\n\r\n")
    assert conn.frame_data(b"abc") == [b"abc"]
    conn.send_end()
    assert not conn.keep_alive
    assert conn.start_next_cycle() is False
    assert conn.our_state is State.DONE and conn.request is not None  # unchanged


def test_h1_head_and_204_send_no_body() -> None:
    conn = make_conn()
    conn.receive_data(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    events_of(conn)
    head = conn.send_response(200, b"", content_length=10)
    assert b"Content-Length: 10\r\n" in head
    assert conn.frame_data(b"x" * 10) == []
    assert conn.send_end() == b""
    assert conn.keep_alive
    assert conn.start_next_cycle()
    conn.receive_data(GET)
    events_of(conn)
    head = conn.send_response(204, b"", content_length=5)
    assert b"Content-Length" not in head and b"Transfer-Encoding" not in head


def test_h1_content_length_overrun_and_short_body_close() -> None:
    conn = make_conn()
    conn.receive_data(GET)
    events_of(conn)
    conn.send_response(200, b"", content_length=3)
    assert conn.frame_data(b"0123456789") == [b"012"]
    conn.send_end()
    assert not conn.keep_alive
    conn = make_conn()
    conn.receive_data(GET)
    events_of(conn)
    conn.send_response(200, b"", content_length=10)
    conn.frame_data(b"01234")
    conn.send_end()
    assert not conn.keep_alive


def test_h1_error_response_and_no_more_parsing() -> None:
    conn = make_conn()
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    with pytest.raises(ProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == 400
    conn.receive_data(GET)
    with pytest.raises(ProtocolError):
        conn.next_event()
    out = conn.send_error(400)
    assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close\r\n" in out
    assert b"Content-Type: text/plain; charset=utf-8\r\n" in out
    assert out.endswith(b"\r\n\r\n400 Bad Request\n")
    assert not conn.keep_alive


def test_h1_100_continue_only_while_waiting_for_body() -> None:
    conn = make_conn()
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    assert isinstance(conn.next_event(), Request)
    assert conn.next_event() is NEED_DATA
    assert conn.they_are_waiting_for_100_continue
    assert conn.send_continue() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert not conn.they_are_waiting_for_100_continue
    conn.receive_data(b"hi")
    assert events_of(conn) == [Data(b"hi"), EndOfMessage(), PAUSED]
    # body already sent with the head: no 100
    conn = make_conn()
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nh"
    )
    assert isinstance(conn.next_event(), Request)
    assert conn.next_event() == Data(b"h")
    assert conn.next_event() is NEED_DATA
    assert not conn.they_are_waiting_for_100_continue


def test_h1_100_continue_not_sent_when_413_decided() -> None:
    conn = make_conn(max_body=10)
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n"
    )
    with pytest.raises(ProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == 413
    assert not conn.they_are_waiting_for_100_continue


def test_h1_informational_only_on_http11_before_final() -> None:
    conn = make_conn()
    conn.receive_data(GET)
    events_of(conn)
    assert conn.send_informational(103, [(b"Link", b"</a.css>")]) == (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
    )
    assert conn.send_informational(101, []) == b""
    conn.send_response(200, b"", content_length=0)
    assert conn.send_informational(103, []) == b""
    conn = make_conn()
    conn.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    events_of(conn)
    assert conn.send_informational(103, []) == b""


def test_h1_eof_gives_connection_closed_and_partial_flag() -> None:
    conn = make_conn()
    assert not conn.has_partial_request
    conn.receive_data(b"GET / HT")
    assert conn.next_event() is NEED_DATA
    assert conn.has_partial_request
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed()
    assert conn.their_state is State.CLOSED


def test_h1_head_budget_counts_an_unfinished_field() -> None:
    conn = make_conn()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nX: ")
    for _ in range(20):
        conn.receive_data(b"v" * 4096)
    with pytest.raises(ProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == 431


def test_h1_method_probe_waits_for_the_whole_token() -> None:
    # An unknown method token goes to the app (it used to get 501).
    conn = make_conn()
    for byte in b"FOOBAR":
        conn.receive_data(bytes([byte]))
        assert conn.next_event() is NEED_DATA
    conn.receive_data(b" / HTTP/1.1\r\n")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"Host: a\r\n\r\n")
    req = conn.next_event()
    assert isinstance(req, Request) and req.method == b"FOOBAR"


def _next_method(conn: ServerConnection) -> bytes:
    req = conn.next_event()
    assert isinstance(req, Request)
    return req.method


def _answer_pipelined(conn: ServerConnection, n: int) -> None:
    for _ in range(n):
        assert events_of(conn)[-1] is PAUSED
        conn.send_response(200, b"", content_length=0)
        conn.send_end()
        assert conn.start_next_cycle()


@pytest.mark.parametrize(
    ("second", "later", "method"),
    [
        (b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", b"", b"FOO"),  # unknown token
        (b"get / HTTP/1.1\r\nHost: a\r\n\r\n", b"", None),  # not a method token
        (b"\r\nFOO / HTTP/1.1\r\nHost: a\r\n\r\n", b"", b"FOO"),  # empty line first
        (b"FOOBAR", b" / HTTP/1.1\r\nHost: a\r\n\r\n", b"FOOBAR"),  # rest comes later
    ],
)
def test_h1_pipelined_unknown_method_in_the_same_read(
    second: bytes, later: bytes, method: bytes | None
) -> None:
    # Two good requests and a third in one read: the good ones are answered, then the
    # third is what it would be alone: a request for the app for the unknown method
    # token FOO (it used to get 501), 400 for get, not a method token.
    conn = make_conn()
    conn.receive_data(GET + GET + second)
    _answer_pipelined(conn, 2)
    if later:
        assert conn.next_event() is NEED_DATA
        conn.receive_data(later)
    if method is not None:
        assert _next_method(conn) == method
        return
    with pytest.raises(ProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == 400


_POST4 = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n"


@pytest.mark.parametrize(
    ("before", "answered"),
    [
        (_POST4 + b"\r\n\r\n", 1),  # a body that looks like a blank line
        (GET + _POST4 + b"abcd" + _POST4 + b"\r\n\r\n", 3),
        (_POST4 + b"abcd" + GET, 2),
    ],
)
def test_h1_pipelined_unknown_method_after_a_body_is_found(
    before: bytes, answered: int
) -> None:
    # Content-Length bodies in the same read: the request with the unknown method is
    # found after them and goes to the app after the good ones (it used to get 501).
    conn = make_conn()
    conn.receive_data(before + b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n")
    _answer_pipelined(conn, answered)
    assert _next_method(conn) == b"FOO"


@pytest.mark.parametrize(
    "reads",
    [
        # chunked framing in the same read (chunked.py reports where it ends)
        [
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n"
        ],
        # the request with the body began in an earlier read: its head is not in this one
        [_POST4, b"abcdFOO / HTTP/1.1\r\nHost: a\r\n\r\n"],
        # its head began in an earlier read and ends in this one
        [_POST4[:20], _POST4[20:] + b"abcdFOO / HTTP/1.1\r\nHost: a\r\n\r\n"],
        [_POST4[:-1], b"\nabcdFOO / HTTP/1.1\r\nHost: a\r\n\r\n"],
    ],
    ids=[
        "after-chunked",
        "after-a-body-begun-earlier",
        "head-split",
        "blank-line-split",
    ],
)
def test_h1_pipelined_unknown_method_is_found_after_any_framing(
    reads: list[bytes],
) -> None:
    # Where the request starts is found exactly (it used to be a 400 fallback here).
    conn = make_conn()
    for data in reads:
        conn.receive_data(data)
    _answer_pipelined(conn, 1)
    assert _next_method(conn) == b"FOO"


def test_h1_send_response_requires_a_request() -> None:
    conn = make_conn()
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, b"")


def test_h1_never_sets_dangerous_leniencies() -> None:
    for mod in HTTP_MODULES:
        with open(_path_of(mod), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert "set_dangerous_leniencies" not in names, mod
    # Behaviour pin: each of these is only accepted by a lenient llhttp.
    for raw in (
        b"GET / HTTP/1.1\nHost: a\n\n",  # lenient_optional_cr_before_lf
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",  # lenient_headers
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc0\r\n\r\n",
    ):
        assert replay(raw)[1] == 400, raw


def test_h1_module_imports_no_io() -> None:
    for mod in HTTP_MODULES:
        with open(_path_of(mod), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert not imported & {
            "socket",
            "selectors",
            "select",
            "signal",
            "time",
            "logging",
        }


def test_h1_uses_httptools_request_parser() -> None:
    conn = make_conn()
    assert isinstance(conn._reader._parser, httptools.HttpRequestParser)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", True),
        (b"GET / HTTP/1.0\r\n\r\n", True),
        (GET, False),  # keep-alive: the server decides to close, so it lingers
        (b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n", False),  # bytes followed
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nX", False),
    ],
)
def test_h1_client_closes(raw: bytes, expected: bool) -> None:
    conn = make_conn()
    conn.receive_data(raw)
    events_of(conn)
    assert conn.client_closes is expected


def test_h1_client_closes_needs_the_whole_request() -> None:
    conn = make_conn()
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 4\r\n\r\nab"
    )
    events_of(conn)
    assert not conn.client_closes


def test_h1_date_tail_follows_the_clock() -> None:
    dates = iter([b"D1", b"D1", b"D2"])
    conn = make_conn(lambda: next(dates))
    heads = []
    for _ in range(3):
        conn.receive_data(GET)
        events_of(conn)
        heads.append(conn.send_response(200, b"", content_length=0))
        conn.send_end()
        assert conn.start_next_cycle()
    assert [h.split(b"Date: ")[1].split(b"\r\n")[0] for h in heads] == [
        b"D1",
        b"D1",
        b"D2",
    ]


def test_h1_fast_forms_end_where_the_step_by_step_path_ends() -> None:
    fast, slow = make_conn(), make_conn()
    fast.receive_data(GET)
    slow.receive_data(GET)
    assert fast.take_simple_request() is not None
    events_of(slow)
    assert fast.their_state is slow.their_state is State.DONE
    assert fast.request == slow.request
    head = fast.send_complete(200, STATUS_LINES[200], b"", None, False, 2)
    assert head == slow.send_response(200, b"", content_length=2)
    assert slow.frame_data(b"hi") == [b"hi"]
    assert slow.send_end() == b""
    assert fast.our_state is slow.our_state is State.DONE
    assert fast.body_bytes_sent == slow.body_bytes_sent == 2
    for conn in (fast, slow):
        assert conn.start_next_cycle()
        assert conn.their_state is conn.our_state is State.IDLE
        assert conn.request is None


def test_h1_out_of_order_response_calls_are_refused() -> None:
    conn = make_conn()
    conn.receive_data(GET)
    events_of(conn)
    with pytest.raises(LocalProtocolError):
        conn.send_end()  # no response started
    conn.send_response(200, b"", content_length=0)
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, b"", content_length=0)
    with pytest.raises(LocalProtocolError):
        conn.send_complete(200, STATUS_LINES[200], b"", None, False, 0)
    assert conn.start_next_cycle() is False  # the response has not ended
    conn.send_end()
    assert conn.start_next_cycle()


def test_state_move_composes_the_table_steps() -> None:
    assert move(THEIR_TRANSITIONS, Request, EndOfMessage) == (State.IDLE, State.DONE)
    assert move(OUR_TRANSITIONS, RESPONSE, END) == (State.IDLE, State.DONE)
    assert move(OUR_TRANSITIONS, NEXT_CYCLE) == (State.DONE, State.IDLE)
    assert move(THEIR_TRANSITIONS, NEXT_CYCLE) == (State.DONE, State.IDLE)
    with pytest.raises(ValueError):
        move(OUR_TRANSITIONS, ABORT)  # from every state: not one transition
    with pytest.raises(ValueError):
        move(OUR_TRANSITIONS, END, RESPONSE)  # from no state

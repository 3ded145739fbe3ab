"""sd_notify datagrams and the rollback record, parsed (no sockets)."""

from __future__ import annotations

from start_server.generations import RecordFailure
from start_server.readiness import (
    Message,
    failure_file,
    parse_failure,
    parse_message,
)


def test_parse_message_fields() -> None:
    assert parse_message(b"READY=1\nMAINPID=42\nSTATUS=a=b c\n") == {
        "READY": "1",
        "MAINPID": "42",
        "STATUS": "a=b c",
    }
    assert parse_message(b"garbage\n=x\nSTOPPING=1") == {"STOPPING": "1"}
    assert parse_message(b"\xffREADY=1") == {"\ufffdREADY": "1"}


def test_message_flags() -> None:
    assert Message(3, {"READY": "1"}, None).ready
    assert not Message(3, {"READY": "0"}, None).ready
    assert Message(3, {"STOPPING": "1"}, 9).stopping


def test_failure_record_round_trip() -> None:
    record = RecordFailure(7, 4242, "no READY=1 within 30s; rolled back")
    assert parse_failure(record.render()) == (
        7,
        4242,
        "no READY=1 within 30s; rolled back",
    )
    assert parse_failure("") is None
    assert parse_failure("x:1 why") is None
    assert parse_failure("7 why") is None
    assert failure_file("/run/app/status") == "/run/app/status.failed"

"""Unit tests for starman.http.body: the spilling buffer and the wsgi.input object."""

from __future__ import annotations

import os

import pytest

from starman.http.body import BodyBuffer, empty_input

BODY = b"line one\nline two\n\nlast without newline"


@pytest.mark.parametrize("max_memory", [0, 8, 1 << 20])
def test_body_input_reads_exactly_the_body(
    max_memory: int, tmp_path: os.PathLike[str]
) -> None:
    buf = BodyBuffer(max_memory, str(tmp_path))
    for i in range(0, len(BODY), 5):
        buf.write(BODY[i : i + 5])
    assert buf.size == len(BODY)
    assert buf.spilled is (max_memory < len(BODY))
    inp = buf.finish()
    assert inp.read(3) == b"lin"
    assert inp.readline() == b"e one\n"
    assert inp.readline(4) == b"line"
    assert inp.readlines() == [b" two\n", b"\n", b"last without newline"]
    assert inp.read() == b""
    assert inp.read(10) == b""
    assert inp.readline() == b""
    inp.release()


def test_body_spill_file_is_unlinked(tmp_path: os.PathLike[str]) -> None:
    buf = BodyBuffer(4, str(tmp_path))
    buf.write(b"0123456789")
    assert buf.spilled
    assert os.listdir(tmp_path) == []
    inp = buf.finish()
    assert inp.read() == b"0123456789"
    inp.release()


def test_body_iteration_and_readlines_hint() -> None:
    buf = BodyBuffer(1 << 20)
    buf.write(BODY)
    assert list(buf.finish()) == BODY.splitlines(keepends=True)
    buf = BodyBuffer(1 << 20)
    buf.write(BODY)
    assert buf.finish().readlines(3) == [b"line one\n"]


def test_body_read_none_and_negative_mean_all() -> None:
    buf = BodyBuffer(1 << 20)
    buf.write(b"abc")
    inp = buf.finish()
    assert inp.read(None) == b"abc"
    buf = BodyBuffer(1 << 20)
    buf.write(b"abc")
    assert buf.finish().read(-1) == b"abc"


def test_body_empty_input_is_at_eof() -> None:
    inp = empty_input()
    assert inp.read() == b""
    assert inp.readline() == b""
    assert list(inp) == []
    assert not hasattr(inp, "close")


def test_body_discard_drops_spill(tmp_path: os.PathLike[str]) -> None:
    buf = BodyBuffer(1, str(tmp_path))
    buf.write(b"abc")
    buf.discard()
    assert not buf.spilled

"""Scoreboard slots and the WorkerHooks written over them (in-process: no fork needed)."""

from __future__ import annotations

import os

import pytest

from starman.worker.scoreboard import Scoreboard, SlotHooks, SlotInfo, SlotState


def test_write_read_round_trip_whole_slot() -> None:
    board = Scoreboard(4)
    board.write(
        2,
        pid=77,
        generation=3,
        state=SlotState.IN_APP,
        request_start_ns=123,
        requests=9,
    )
    assert board.read(2) == SlotInfo(77, 3, SlotState.IN_APP, 123, 9)
    assert board.read(1) == SlotInfo(0, 0, SlotState.EMPTY, 0, 0)
    board.clear(2)
    assert board.read(2).state is SlotState.EMPTY


def test_slot_out_of_range() -> None:
    board = Scoreboard(2)
    with pytest.raises(IndexError):
        board.read(2)


def test_hooks_walk_the_worker_lifecycle() -> None:
    board = Scoreboard(2)
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        hooks = SlotHooks(board, 1, generation=5, wake_fd=w, pid=42)
        assert board.read(1) == SlotInfo(42, 5, SlotState.BOOTING, 0, 0)
        hooks.ready()
        assert board.read(1).state is SlotState.READY
        assert os.read(r, 10) == b"r"
        hooks.request_started()
        info = board.read(1)
        assert info.state is SlotState.IN_APP and info.request_start_ns > 0
        hooks.request_finished()
        assert board.read(1) == SlotInfo(42, 5, SlotState.READY, 0, 1)
        hooks.retiring()
        assert os.read(r, 10) == b"t"
        info = board.read(1)
        assert info.retiring and not info.draining and info.state is SlotState.READY
        hooks.request_started()
        assert board.read(1).retiring  # the per-request writes keep the notice
        hooks.request_finished()
        assert board.read(1) == SlotInfo(42, 5, SlotState.READY, 0, 2, False, True)
        hooks.draining()
        assert os.read(r, 10) == b"d"
        assert board.read(1) == SlotInfo(42, 5, SlotState.DRAINING, 0, 2, True)
        hooks.request_started()
        info = board.read(1)
        # IN_APP for --timeout, and still flagged as draining for the master.
        assert info.state is SlotState.IN_APP and info.draining
        assert (info.pid, info.generation, info.requests) == (42, 5, 2)
        hooks.request_finished()
        assert board.read(1) == SlotInfo(42, 5, SlotState.DRAINING, 0, 3, True)
        assert board.read(0).state is SlotState.EMPTY
    finally:
        os.close(r)
        os.close(w)


def test_status_json_view() -> None:
    info = SlotInfo(1, 2, SlotState.IN_APP, 5, 3)
    assert info.as_json() == {
        "pid": 1,
        "generation": 2,
        "state": "in_app",
        "requests": 3,
    }

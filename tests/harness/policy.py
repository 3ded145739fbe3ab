"""Small helpers for the tests of start_server's pure policy (events in, actions out)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from start_server.common.proc import ExitStatus
from start_server.generations import ChildExited, Log

if TYPE_CHECKING:  # Action is a type alias for mypy only
    from start_server.generations import Action


def exited(pid: int, code: int = 0) -> ChildExited:
    """The event of child ``pid`` exiting with ``code``."""
    return ChildExited(ExitStatus(pid, code << 8, code, None))


def of(kind: type, actions: list[Action]) -> list[Action]:
    """The actions of one kind, in order."""
    return [a for a in actions if isinstance(a, kind)]


def texts(actions: list[Action]) -> list[str]:
    """The texts of the Log actions, in order."""
    return [a.text for a in actions if isinstance(a, Log)]

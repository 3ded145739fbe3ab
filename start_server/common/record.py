"""``Record``: ``==``, ``hash`` and ``repr`` from ``__slots__``, for small value classes.

Why not dataclasses: start_server's supervisor and starman's master live as long as the
service and keep what they import, and every starman worker shares the master's heap.
``import dataclasses`` costs much memory (it imports inspect, ast, dis and tokenize) and
each class execs generated methods; a Record class costs much less, in the supervisor
and in starman's master alike (the figures: docs/benchmarks.md, "start_server's own
memory"). A subclass lists its fields in ``__slots__`` and assigns them in
``__init__``; instances compare equal when they have the same class and the same field
values. Records are not frozen: the value ones are simply never mutated.
"""

from __future__ import annotations

__all__ = ["Record"]


class Record:
    """Base of the value classes: fields are ``__slots__``, in order."""

    __slots__ = ()

    def _names(self) -> tuple[str, ...]:
        return tuple(self.__slots__)  # each subclass lists all its fields

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._names())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names())
        return f"{type(self).__name__}({fields})"

"""What arguments a callable takes, read from its code object: enough to tell a WSGI app
from a factory before the first request, without importing inspect.

``call_shape(obj)`` is None when Python code does not say (a C function, a
``functools.partial``, a class without its own ``__init__``): then nothing is checked.
Imports: stdlib only.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import FunctionType, MethodType
from typing import Any

__all__ = ["CallShape", "call_shape"]

_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08


class CallShape:
    """The parameters of a Python callable, as seen by a caller (no ``self``)."""

    __slots__ = (
        "positional",
        "required",
        "varargs",
        "kwonly",
        "kwonly_required",
        "varkw",
        "defaults",
    )

    def __init__(self, func: FunctionType, skip: int) -> None:
        code = func.__code__
        names = code.co_varnames
        npos, nkw = code.co_argcount, code.co_kwonlyargcount
        defaults = func.__defaults__ or ()
        kwdefaults = func.__kwdefaults__ or {}
        self.positional = names[skip:npos]
        self.required = max(0, npos - len(defaults) - skip)
        self.kwonly = names[npos : npos + nkw]
        self.kwonly_required = frozenset(n for n in self.kwonly if n not in kwdefaults)
        index = npos + nkw
        self.varargs = names[index] if code.co_flags & _CO_VARARGS else None
        if self.varargs is not None:
            index += 1
        self.varkw = names[index] if code.co_flags & _CO_VARKEYWORDS else None
        self.defaults: dict[str, Any] = dict(kwdefaults)
        self.defaults.update(zip(names[npos - len(defaults) : npos], defaults))

    def accepts(self, nargs: int, kwnames: Iterable[str] = ()) -> bool:
        """Whether a call with ``nargs`` positional arguments and these keywords binds."""
        if nargs > len(self.positional) and self.varargs is None:
            return False
        filled = set(self.positional[:nargs])
        for name in kwnames:
            if name in filled:
                return False
            if name in self.positional or name in self.kwonly:
                filled.add(name)
            elif self.varkw is None:
                return False
        needed = set(self.positional[: self.required]) | self.kwonly_required
        return needed <= filled

    def __str__(self) -> str:
        """``(name='default', *, debug=False)``, as the user wrote it (no annotations)."""
        words = [self._word(n) for n in self.positional]
        if self.varargs is not None:
            words.append("*" + self.varargs)
        elif self.kwonly:
            words.append("*")
        words += [self._word(n) for n in self.kwonly]
        if self.varkw is not None:
            words.append("**" + self.varkw)
        return "(" + ", ".join(words) + ")"

    def _word(self, name: str) -> str:
        if name in self.defaults:
            return f"{name}={self.defaults[name]!r}"
        return name


def call_shape(obj: Any) -> CallShape | None:
    """The parameters ``obj(...)`` takes, or None when its code does not say."""
    skip = 0
    func: Any = obj
    if isinstance(obj, type):
        func, skip = obj.__dict__.get("__init__"), 1
    elif isinstance(obj, MethodType):
        func, skip = obj.__func__, 1
    elif not isinstance(obj, FunctionType):
        found = (
            k.__dict__["__call__"]
            for k in type(obj).__mro__
            if "__call__" in k.__dict__
        )
        func, skip = next(found, None), 1
    if not isinstance(func, FunctionType):
        return None
    return CallShape(func, skip)

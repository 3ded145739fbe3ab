"""Make the program's objects immortal before forking (CPython 3.12 and 3.13).

A forked worker shares the master's memory pages until one side writes to one, and in
CPython every use of an object writes to it: its reference count. So the first request
in a worker copies every page that holds a function, code object, class or constant the
request path touches, and the master's own loop copies more after each fork. PEP 683
(CPython 3.12) fixed the reference count of some objects (None, small ints, interned
strings) at a marker that ``Py_INCREF`` and ``Py_DECREF`` leave alone.

``immortalize_program()`` gives that marker, once, in the master before the first fork,
to the program itself: what ``sys.modules`` and the preloaded app reach through modules,
classes, functions, code objects, descriptors, cells, bound methods and enum members,
and the dicts, tuples, frozensets, strings, bytes and numbers they hold. Instances of
other classes, lists and sets are not marked and not followed: their owners replace and
free them, and a socket or file must still close when dropped.

An immortal object is never freed. The program's modules, classes and functions live as
long as the process anyway; the one-off cost is that a global the program later rebinds
keeps its old value (as it was at the fork) allocated.

Anywhere else (CPython 3.11, 3.14 and later, free-threaded or debug builds, 32-bit, other
interpreters) it does nothing: the marker and the object header differ there.
"""

from __future__ import annotations

import ctypes
import enum
import sys
import types
from collections.abc import Iterable

__all__ = ["immortalize_program", "supported"]

# _Py_IMMORTAL_REFCNT of CPython 3.12 and 3.13 on 64-bit: UINT_MAX in the low half of
# ob_refcnt. Py_INCREF sees the low half wrap to 0 and stores nothing; Py_DECREF sees
# it negative as an int32 and returns.
IMMORTAL_REFCNT = 0xFFFFFFFF

# Followed: these hold the program (their referents are walked) and are marked.
_FOLLOW: frozenset[type] = frozenset(
    {
        types.ModuleType,
        types.FunctionType,
        types.CodeType,
        types.CellType,
        types.MethodType,
        types.BuiltinFunctionType,
        types.MethodDescriptorType,
        types.ClassMethodDescriptorType,
        types.WrapperDescriptorType,
        types.GetSetDescriptorType,
        types.MemberDescriptorType,
        property,
        staticmethod,
        classmethod,
        dict,
        tuple,
        frozenset,
    }
)
# Marked, nothing inside to follow.
_ATOMS: frozenset[type] = frozenset({str, bytes, int, float, complex})


def supported() -> bool:
    """True where the marker above is what the interpreter uses."""
    if not (
        sys.implementation.name == "cpython"
        and sys.version_info[:2] in ((3, 12), (3, 13))
        and sys.maxsize > 2**32
        and not hasattr(sys, "gettotalrefcount")  # a debug build counts references
    ):
        return False
    import sysconfig  # only here: the master does not otherwise need it

    return not sysconfig.get_config_var("Py_GIL_DISABLED")


def immortalize_program(roots: Iterable[object] = ()) -> int:
    """Mark the program's objects immortal; return how many were marked (0: not here).

    The walk starts at ``sys.modules`` and at ``roots``: objects that live as long as the
    process whatever their type (the preloaded app, which may be an instance, and may
    come from a file that ``sys.modules`` does not list). Roots are marked and followed.
    """
    if not supported():
        return 0
    import gc

    refcnt = ctypes.c_ssize_t.from_address
    roots = list(roots)
    chosen = {id(obj) for obj in roots}
    seen: set[int] = set()
    todo: list[object] = [*sys.modules.values(), *roots]
    marked = 0
    while todo:
        obj = todo.pop()
        oid = id(obj)
        if oid in seen:
            continue
        seen.add(oid)
        kind = type(obj)
        if kind in _ATOMS:
            pass
        elif (
            kind in _FOLLOW
            or oid in chosen
            # By the real type only: isinstance() would also ask obj.__class__, which
            # a lazy proxy (Django's settings) answers by running code.
            or issubclass(kind, type)  # classes, whatever their metaclass
            or issubclass(kind, enum.Enum)  # members are singletons of their class
        ):
            if isinstance(obj, types.CodeType):
                # No tp_traverse on code objects: name what they hold.
                todo.extend(
                    (
                        obj.co_consts,
                        obj.co_names,
                        obj.co_filename,
                        obj.co_name,
                        obj.co_qualname,
                        obj.co_linetable,
                        obj.co_exceptiontable,
                    )
                )
            else:
                todo.extend(gc.get_referents(obj))
        else:
            continue
        count = refcnt(oid)
        if count.value != IMMORTAL_REFCNT:
            count.value = IMMORTAL_REFCNT
            marked += 1
    return marked

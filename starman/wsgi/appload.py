"""Turn the APP argument (``path/to/app.py``, ``pkg.mod:attr``) or ``-e EXPR`` into a WSGI callable.

Raises AppImportError with a one-line message for the user's mistakes in naming the app;
exceptions raised by the user's own module propagate unchanged (their traceback is their bug).
Imports: stdlib only.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil  # noqa: F401  # runpy.run_path imports it per call: once here, not per worker
import runpy
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "DEFAULT_APP",
    "AppImportError",
    "add_include_dirs",
    "check_target",
    "load_app",
    "load_target",
    "preload_modules",
]

DEFAULT_APP = "app.py"
# mod_wsgi's convention first, then the name Flask/Bottle/Falcon examples use.
_FILE_APP_NAMES = ("application", "app")


class AppImportError(Exception):
    """The app could not be found from what the user gave (not an error inside the app)."""


def _fail(spec: str, reason: str) -> AppImportError:
    return AppImportError(f"cannot import app {spec!r}: {reason}")


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec.split(":", 1)[0]


def _load_file(spec: str) -> Any:
    path = os.path.abspath(spec)
    if not os.path.isfile(path):
        raise _fail(spec, f"file not found (cwd={os.getcwd()})")
    directory = os.path.dirname(path)
    if directory not in sys.path[:1]:
        sys.path.insert(0, directory)
    namespace = runpy.run_path(path, run_name="__starman_app__")
    for name in _FILE_APP_NAMES:
        obj = namespace.get(name)
        if obj is not None:
            if not callable(obj):
                raise _fail(
                    spec, f"{name!r} is not callable (got {type(obj).__name__})"
                )
            return obj
    found = sorted(
        k
        for k, v in namespace.items()
        if callable(v)
        and not k.startswith("_")
        and getattr(v, "__module__", "__starman_app__") == "__starman_app__"
    )
    listing = ", ".join(found) if found else "none"
    raise _fail(
        spec,
        f"the file defines neither 'application' nor 'app' (callables found: {listing})",
    )


def _cwd_on_path() -> None:
    """``module:callable`` names a module in the current directory, as with gunicorn,
    even when we run from a console script (whose sys.path[0] is its bin directory)."""
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)


def _import_module(spec: str, module_name: str) -> Any:
    _cwd_on_path()
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only "not found" when the missing module is the one named (or a parent of it);
        # a missing import *inside* the user's module is their bug: show their traceback.
        missing = exc.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            raise _fail(
                spec, f"module {module_name!r} not found (cwd={os.getcwd()})"
            ) from None
        raise


def check_target(spec: str | None) -> None:
    """Cheap checks the master can make without importing: the file exists, the
    top-level module can be found. Raises AppImportError."""
    spec = spec or DEFAULT_APP
    if _is_path(spec):
        if not os.path.isfile(spec):
            raise _fail(spec, f"file not found (cwd={os.getcwd()})")
        return
    module_name = spec.partition(":")[0]
    if ":" not in spec or not module_name or not spec.partition(":")[2]:
        raise _fail(spec, "expected path/to/app.py or 'module:attribute'")
    _cwd_on_path()
    if "." not in module_name and importlib.util.find_spec(module_name) is None:
        raise _fail(spec, f"module {module_name!r} not found (cwd={os.getcwd()})")


def load_target(spec: str, *, factory: bool = False) -> Any:
    """Load ``pkg.mod:attr`` (attr may be dotted) or ``path/to/app.py``; return the object."""
    if _is_path(spec):
        obj = _load_file(spec)
    else:
        module_name, sep, attrs = spec.partition(":")
        if not sep or not module_name or not attrs:
            raise _fail(spec, "expected path/to/app.py or 'module:attribute'")
        module = _import_module(spec, module_name)
        obj = module
        walked = module_name
        for attr in attrs.split("."):
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                kind = "module" if walked == module_name else "object"
                raise _fail(
                    spec, f"{kind} {walked!r} has no attribute {attr!r}"
                ) from None
            walked = f"{walked}.{attr}"
    if factory:
        if not callable(obj):
            raise _fail(spec, f"factory is not callable (got {type(obj).__name__})")
        obj = obj()
    if not callable(obj):
        raise _fail(spec, f"not callable (got {type(obj).__name__})")
    return obj


def load_app(
    spec: str | None, expr: str | None = None, *, factory: bool = False
) -> Callable[..., Any]:
    """The WSGI app for APP and/or ``-e EXPR`` (Perl's -e, with and without a file).

    Without APP, EXPR must evaluate to the app; with APP it must evaluate to a callable
    ``f(app) -> app`` (middleware). Neither: ``./app.py``.
    """
    app: Any = None
    if spec is not None or expr is None:
        app = load_target(spec or DEFAULT_APP, factory=factory)
    if expr is not None:
        label = f"-e {expr!r}"
        try:
            code = compile(expr, "<starman -e>", "eval")
        except SyntaxError as exc:
            raise AppImportError(
                f"cannot import app {label}: invalid Python expression: {exc.msg}"
            ) from None
        value = eval(code, {"__name__": "__starman_eval__"})
        if not callable(value):
            raise AppImportError(
                f"cannot import app {label}: not callable (got {type(value).__name__})"
            )
        if app is not None:
            app = value(app)
            if not callable(app):
                raise AppImportError(
                    f"cannot import app {label}: the middleware returned a non-callable ({type(app).__name__})"
                )
        else:
            app = value
    assert callable(app)
    return app  # type: ignore[no-any-return]  # a callable of unknown signature


def add_include_dirs(dirs: Sequence[str]) -> None:
    """``-I DIR``: put the directories first on sys.path, the first -I first."""
    for directory in reversed(dirs):
        sys.path.insert(0, os.path.abspath(directory))


def preload_modules(names: Sequence[str]) -> list[str]:
    """``-M MOD[=a,b]``: import each module; return notes about ignored import lists."""
    notes: list[str] = []
    for raw in names:
        name, sep, _imports = raw.partition("=")
        if sep:
            notes.append(f"-M {raw}: the import list after '=' is ignored")
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                raise AppImportError(
                    f"cannot import module {name!r} (-M): not found (cwd={os.getcwd()})"
                ) from None
            raise
    return notes

"""Turn the APP argument or ``-e EXPR`` into a WSGI callable.

APP is ``path/to/app.py``, ``pkg.mod:attr``, ``pkg.mod`` (its ``application``, else its
``app``, as gunicorn) or ``'pkg.mod:create_app()'`` (a factory call, literal arguments only).
Raises AppImportError with a one-line message for the user's mistakes in naming the app and
for errors in ``-e``; exceptions raised by the user's own module propagate unchanged (their
traceback is their bug). Imports: stdlib only.
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

from starman.wsgi.callshape import call_shape

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


def _split_module_spec(spec: str) -> tuple[str, str]:
    """``pkg.mod:attr`` -> (module, attr); ``pkg.mod`` -> (module, ""); else AppImportError."""
    module_name, sep, attrs = spec.partition(":")
    if not module_name or (sep and not attrs):
        raise _fail(spec, _EXPECTED)
    return module_name, attrs


_EXPECTED = (
    "expected path/to/app.py, 'module', 'module:attribute' or 'module:factory()'"
)


def check_target(spec: str | None) -> None:
    """Cheap checks the master can make without importing: the file exists, the
    top-level module can be found. Raises AppImportError."""
    spec = spec or DEFAULT_APP
    if _is_path(spec):
        if not os.path.isfile(spec):
            raise _fail(spec, f"file not found (cwd={os.getcwd()})")
        return
    module_name, _attrs = _split_module_spec(spec)
    _cwd_on_path()
    if "." not in module_name and importlib.util.find_spec(module_name) is None:
        raise _fail(spec, f"module {module_name!r} not found (cwd={os.getcwd()})")


def _walk(spec: str, module: Any, module_name: str, dotted: str) -> Any:
    obj = module
    walked = module_name
    for attr in dotted.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            kind = "module" if walked == module_name else "object"
            raise _fail(spec, f"{kind} {walked!r} has no attribute {attr!r}") from None
        walked = f"{walked}.{attr}"
    return obj


def _module_app(spec: str, module: Any, module_name: str) -> Any:
    """gunicorn's ``starman module``: its ``application``, else its ``app``."""
    for name in _FILE_APP_NAMES:
        obj = getattr(module, name, None)
        if obj is not None:
            return obj
    raise _fail(
        spec,
        f"module {module_name!r} defines neither 'application' nor 'app'"
        f" (name it: {module_name}:NAME)",
    )


def load_target(spec: str, *, factory: bool = False) -> Any:
    """Load what APP names (see the module docstring); return the app object.

    ``factory``: the named object is a factory, called with no arguments (--factory).
    """
    call: _Call | None = None
    if _is_path(spec):
        obj = _load_file(spec)
    else:
        module_name, attrs = _split_module_spec(spec)
        if attrs.endswith(")"):
            call = _parse_call(spec, attrs)
            attrs = call.dotted
        module = _import_module(spec, module_name)
        if attrs:
            obj = _walk(spec, module, module_name, attrs)
        else:
            obj = _module_app(spec, module, module_name)
    if call is not None:
        # 'mod:create_app()' already says it is a factory: --factory adds nothing.
        obj = _call_factory(spec, obj, call.args, call.kwargs, "")
    elif factory:
        obj = _call_factory(spec, obj, (), {}, " (--factory)")
    if not callable(obj):
        raise _fail(spec, f"not callable (got {type(obj).__name__})")
    _check_wsgi_signature(spec, obj)
    return obj


class _Call:
    """``create_app(1, debug=True)`` taken apart: the dotted name and literal arguments."""

    def __init__(self, dotted: str, args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.dotted = dotted
        self.args = args
        self.kwargs = kwargs


def _parse_call(spec: str, attrs: str) -> _Call:
    dotted = attrs[: -len("()")]
    if attrs.endswith("()") and all(part.isidentifier() for part in dotted.split(".")):
        return _Call(dotted, (), {})
    # Arguments: ast only then (the master keeps what it imports, and every worker shares it).
    import ast

    bad = _fail(
        spec,
        "expected 'module:factory()' with literal arguments, such as"
        " 'module:create_app()' or 'module:create_app(\"prod\")'",
    )
    try:
        tree = ast.parse(attrs, mode="eval").body
    except SyntaxError:
        raise bad from None
    if not isinstance(tree, ast.Call):
        raise bad
    names: list[str] = []
    func: ast.expr = tree.func
    while isinstance(func, ast.Attribute):
        names.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        raise bad
    names.append(func.id)
    try:
        args = tuple(ast.literal_eval(a) for a in tree.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in tree.keywords if k.arg}
    except ValueError:
        raise bad from None
    if any(k.arg is None for k in tree.keywords):
        raise bad
    return _Call(".".join(reversed(names)), args, kwargs)


def _call_factory(
    spec: str, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any], how: str
) -> Any:
    if not callable(obj):
        raise _fail(spec, f"factory{how} is not callable (got {type(obj).__name__})")
    shape = call_shape(obj)
    if shape is not None and not shape.accepts(len(args), kwargs):
        if how and shape.accepts(2):
            raise _fail(
                spec,
                f"--factory calls it with no arguments, but it takes {shape}: it"
                " looks like the app itself (drop --factory)",
            )
        raise _fail(spec, f"the factory{how} takes {shape}")
    return obj(*args, **kwargs)


def _check_wsgi_signature(label: str, app: Any) -> None:
    """A factory given as the app (no --factory) would fail every request: say so now."""
    shape = call_shape(app)
    if shape is None or shape.accepts(2):
        return
    if not shape.accepts(0):
        raise _fail(
            label, f"it takes {shape}, not a WSGI app's (environ, start_response)"
        )
    how = "add --factory"
    if ":" in label and not _is_path(label):
        how = f"write '{label}()' or add --factory"
    raise _fail(
        label,
        f"it takes no arguments, not (environ, start_response): if it is a factory, {how}",
    )


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
        app = _apply_eval(expr, app)
    assert callable(app)
    return app  # type: ignore[no-any-return]  # a callable of unknown signature


def _apply_eval(expr: str, app: Any) -> Any:
    """``-e EXPR``: the app itself (no APP), or a middleware applied to APP's app.

    An exception from the expression or the middleware is named after ``-e``, in one
    line with where it was raised: the app file loaded fine.
    """
    label = f"-e {expr!r}"
    try:
        code = compile(expr, "<starman -e>", "eval")
    except SyntaxError as exc:
        raise AppImportError(
            f"cannot import app {label}: invalid Python expression: {exc.msg}"
        ) from None
    try:
        value = eval(code, {"__name__": "__starman_eval__"})
    except Exception as exc:
        raise AppImportError(
            f"cannot import app {label}: it raised {_describe(exc)}"
        ) from exc
    if not callable(value):
        raise AppImportError(
            f"cannot import app {label}: not callable (got {type(value).__name__})"
        )
    if app is None:
        shape = call_shape(value)
        if shape is not None and not shape.accepts(2):
            raise AppImportError(
                f"cannot import app {label}: it takes {shape}, not a WSGI app's"
                " (environ, start_response)"
            )
        return value
    try:
        wrapped = value(app)
    except Exception as exc:
        raise AppImportError(
            f"cannot import app {label}: the middleware raised {_describe(exc)}"
        ) from exc
    if not callable(wrapped):
        raise AppImportError(
            f"cannot import app {label}: the middleware returned a non-callable"
            f" ({type(wrapped).__name__})"
        )
    return wrapped


def _describe(exc: BaseException) -> str:
    """``ZeroDivisionError: division by zero``, with where, when that is not -e itself."""
    text = f"{type(exc).__name__}: {exc}"
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None and tb.tb_frame.f_code.co_filename != "<starman -e>":
        code = tb.tb_frame.f_code
        text += f" (at {code.co_filename}:{tb.tb_lineno} in {code.co_name})"
    return text


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

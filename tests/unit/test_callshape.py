"""call_shape: what a callable takes, read from its code (a WSGI app or a factory?)."""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from starman.wsgi.callshape import call_shape


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    return []


def factory(name: str = "default", *, debug: bool = False) -> Any:
    return app


def needs_kw(*, config: str) -> Any:
    return app


def anything(*args: Any, **kw: Any) -> Any:
    return app


class ClassApp:
    def __init__(self, environ: Any, start_response: Any) -> None:
        pass


class CallableApp:
    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        return []

    def method(self, environ: Any, start_response: Any) -> list[bytes]:
        return []


class Inherits(CallableApp):
    pass


@pytest.mark.parametrize(
    ("obj", "text", "wsgi", "no_args"),
    [
        (app, "(environ, start_response)", True, False),
        (factory, "(name='default', *, debug=False)", False, True),
        (needs_kw, "(*, config)", False, False),
        (anything, "(*args, **kw)", True, True),
        (lambda: None, "()", False, True),
        (ClassApp, "(environ, start_response)", True, False),
        (CallableApp(), "(environ, start_response)", True, False),
        (Inherits(), "(environ, start_response)", True, False),
        (CallableApp().method, "(environ, start_response)", True, False),
    ],
)
def test_shapes(obj: Any, text: str, wsgi: bool, no_args: bool) -> None:
    shape = call_shape(obj)
    assert shape is not None
    assert str(shape) == text
    assert shape.accepts(2) is wsgi
    assert shape.accepts(0) is no_args


def test_keywords_bind_as_python_binds_them() -> None:
    shape = call_shape(factory)
    assert shape is not None
    assert shape.accepts(1, ["debug"])
    assert shape.accepts(0, ["name", "debug"])
    assert not shape.accepts(1, ["name"])  # name given twice
    assert not shape.accepts(0, ["other"])
    kw = call_shape(needs_kw)
    assert kw is not None and kw.accepts(0, ["config"])


@pytest.mark.parametrize(
    "obj", [functools.partial(app, {}), len, object(), type("NoInit", (), {})]
)
def test_unknown_shapes_are_none(obj: Any) -> None:
    assert call_shape(obj) is None


def test_loading_an_app_imports_neither_inspect_nor_ast(tmp_path: object) -> None:
    """The master keeps what loading imports, and every worker shares it."""
    code = textwrap.dedent(
        f"""
        import sys
        from starman.wsgi.appload import load_target
        open({str(tmp_path)!r} + "/a.py", "w").write(
            "def create_app():\\n    return lambda e, s: []\\n"
            "def application(e, s):\\n    return []\\n"
        )
        sys.path.insert(0, {str(tmp_path)!r})
        load_target({str(tmp_path)!r} + "/a.py")
        load_target("a:create_app()")
        print(",".join(m for m in ("inspect", "ast", "dis") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""

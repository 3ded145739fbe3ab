"""APP as gunicorn writes it (``module``, ``'module:create_app()'``), factories given the
wrong way round, and errors in ``-e`` named after ``-e``."""

from __future__ import annotations

import pathlib
import sys
import textwrap

import pytest

from starman.wsgi.appload import AppImportError, check_target, load_app, load_target
from tests.harness.appdir import appdir, write

__all__ = ["appdir"]  # the fixture

APP = textwrap.dedent(
    """
    def application(environ, start_response):
        start_response("200 OK", [])
        return [b"application"]

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"app"]

    def create_app(name="default", *, debug=False):
        def made(environ, start_response):
            return [f"{name}:{debug}".encode()]
        return made

    def broken_factory():
        raise ValueError("bad settings")
    """
)


def body(app: object) -> bytes:
    assert callable(app)
    return b"".join(app({}, lambda *a: None))


def message(spec: str, **kw: object) -> str:
    with pytest.raises(AppImportError) as info:
        load_target(spec, **kw)  # type: ignore[arg-type]
    return str(info.value)


# -- starman module


def test_a_bare_module_means_its_application(appdir: pathlib.Path) -> None:
    write(appdir, "gm_a1.py", APP)
    assert body(load_target("gm_a1")) == b"application"


def test_a_bare_module_falls_back_to_app(appdir: pathlib.Path) -> None:
    write(appdir, "gm_a2.py", "def app(e, s):\n    return [b'only app']\n")
    assert body(load_target("gm_a2")) == b"only app"


def test_a_bare_module_without_either_names_the_fix(appdir: pathlib.Path) -> None:
    write(appdir, "gm_a3.py", "def wsgi(e, s):\n    return []\n")
    assert message("gm_a3") == (
        "cannot import app 'gm_a3': module 'gm_a3' defines neither 'application' nor"
        " 'app' (name it: gm_a3:NAME)"
    )


def test_a_bare_module_that_does_not_exist(appdir: pathlib.Path) -> None:
    assert message("gm_none_a4").startswith(
        "cannot import app 'gm_none_a4': module 'gm_none_a4' not found (cwd="
    )
    with pytest.raises(AppImportError, match="module 'gm_none_a4' not found"):
        check_target("gm_none_a4")


def test_check_target_accepts_the_gunicorn_forms(appdir: pathlib.Path) -> None:
    write(appdir, "gm_a5.py", "raise RuntimeError('must not be imported')\n")
    check_target("gm_a5")
    check_target("gm_a5:create_app()")
    assert "gm_a5" not in sys.modules


# -- 'module:create_app()'


def test_a_factory_call_is_called(appdir: pathlib.Path) -> None:
    write(appdir, "gm_b1.py", APP)
    assert body(load_target("gm_b1:create_app()")) == b"default:False"


def test_a_factory_call_takes_literal_arguments(appdir: pathlib.Path) -> None:
    write(appdir, "gm_b2.py", APP)
    app = load_target("gm_b2:create_app('prod', debug=True)")
    assert body(app) == b"prod:True"


def test_a_factory_call_with_factory_is_called_once(appdir: pathlib.Path) -> None:
    write(appdir, "gm_b3.py", APP)
    assert body(load_target("gm_b3:create_app()", factory=True)) == b"default:False"


@pytest.mark.parametrize(
    "spec", ["gm_b4:create_app(name)", "gm_b4:create_app()()", "gm_b4:create_app(**d)"]
)
def test_a_factory_call_with_other_arguments_is_refused(
    appdir: pathlib.Path, spec: str
) -> None:
    write(appdir, "gm_b4.py", APP)
    assert message(spec) == (
        f"cannot import app {spec!r}: expected 'module:factory()' with literal"
        " arguments, such as 'module:create_app()' or 'module:create_app(\"prod\")'"
    )


def test_a_factory_call_with_the_wrong_arguments(appdir: pathlib.Path) -> None:
    write(appdir, "gm_b5.py", APP)
    assert message("gm_b5:create_app(1, 2)") == (
        "cannot import app 'gm_b5:create_app(1, 2)': the factory takes"
        " (name='default', *, debug=False)"
    )


def test_an_error_inside_the_factory_is_the_users(appdir: pathlib.Path) -> None:
    write(appdir, "gm_b6.py", APP)
    with pytest.raises(ValueError, match="bad settings"):
        load_target("gm_b6:broken_factory()")


def test_a_factory_named_without_parentheses_names_the_fix(
    appdir: pathlib.Path,
) -> None:
    write(appdir, "gm_b7.py", APP)
    assert message("gm_b7:broken_factory") == (
        "cannot import app 'gm_b7:broken_factory': it takes no arguments, not"
        " (environ, start_response): if it is a factory, write"
        " 'gm_b7:broken_factory()' or add --factory"
    )


# -- --factory on a plain app


def test_factory_on_the_app_itself_is_one_line(appdir: pathlib.Path) -> None:
    write(appdir, "plain_c1.py", APP)
    assert message("plain_c1.py", factory=True) == (
        "cannot import app 'plain_c1.py': --factory calls it with no arguments, but"
        " it takes (environ, start_response): it looks like the app itself"
        " (drop --factory)"
    )
    assert message("plain_c1:app", factory=True).endswith("(drop --factory)")


def test_factory_on_a_factory_still_works(appdir: pathlib.Path) -> None:
    write(appdir, "gm_c2.py", APP)
    assert body(load_target("gm_c2:create_app", factory=True)) == b"default:False"


def test_a_callable_object_app_passes_the_signature_check(
    appdir: pathlib.Path,
) -> None:
    write(
        appdir,
        "gm_c3.py",
        """
        class App:
            def __call__(self, environ, start_response):
                return [b"object"]
        application = App()
        """,
    )
    assert body(load_target("gm_c3")) == b"object"


# -- errors in -e


def test_an_error_in_the_expression_is_named_after_e(appdir: pathlib.Path) -> None:
    write(appdir, "app.py", APP)
    with pytest.raises(AppImportError) as info:
        load_app("app.py", "1/0")
    assert str(info.value) == (
        "cannot import app -e '1/0': it raised ZeroDivisionError: division by zero"
    )


def test_an_error_in_the_middleware_says_where(appdir: pathlib.Path) -> None:
    write(appdir, "app.py", APP)
    write(appdir, "mw_d1.py", "def wrap(app):\n    raise RuntimeError('mw broken')\n")
    with pytest.raises(AppImportError) as info:
        load_app("app.py", "__import__('mw_d1').wrap")
    assert str(info.value) == (
        "cannot import app -e \"__import__('mw_d1').wrap\": the middleware raised"
        f" RuntimeError: mw broken (at {appdir / 'mw_d1.py'}:2 in wrap)"
    )


def test_an_expression_that_is_not_an_app(appdir: pathlib.Path) -> None:
    with pytest.raises(AppImportError) as info:
        load_app(None, "lambda: None")
    assert str(info.value) == (
        "cannot import app -e 'lambda: None': it takes (), not a WSGI app's"
        " (environ, start_response)"
    )


def test_the_good_middleware_still_wraps(appdir: pathlib.Path) -> None:
    write(appdir, "app.py", APP)
    app = load_app("app.py", "lambda inner: (lambda e, s: inner(e, s) + [b'!'])")
    assert body(app) == b"application!"

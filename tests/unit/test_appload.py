"""APP loading: path/to/app.py, pkg.mod:attr, factories, -e, and the error messages."""

from __future__ import annotations

import pathlib
import sys
import textwrap

import pytest

from starman.wsgi.appload import AppImportError, load_app, load_target, preload_modules
from tests.harness.appdir import appdir, write

__all__ = ["appdir"]  # the fixture

HELLO = textwrap.dedent(
    """
    def application(environ, start_response):
        start_response("200 OK", [])
        return [b"hello"]
    """
)


def test_file_app_prefers_application(appdir: pathlib.Path) -> None:
    write(appdir, "a.py", HELLO + "\napp = None\n")
    app = load_target(str(appdir / "a.py"))
    assert app.__name__ == "application"


def test_file_app_falls_back_to_app_and_puts_its_dir_first(
    appdir: pathlib.Path,
) -> None:
    write(appdir, "sub/helper_mod_x1.py", "VALUE = 42\n")
    write(
        appdir,
        "sub/b.py",
        "import helper_mod_x1\ndef app(e, s):\n    return [str(helper_mod_x1.VALUE).encode()]\n",
    )
    app = load_target("sub/b.py")
    assert app.__name__ == "app"
    assert sys.path[0] == str(appdir / "sub")


def test_file_without_app_lists_the_callables(appdir: pathlib.Path) -> None:
    write(appdir, "c.py", "def make():\n    pass\nclass Thing:\n    pass\nimport os\n")
    with pytest.raises(AppImportError) as info:
        load_target("c.py")
    assert str(info.value) == (
        "cannot import app 'c.py': the file defines neither 'application' nor 'app' "
        "(callables found: Thing, make)"
    )


def test_missing_file(appdir: pathlib.Path) -> None:
    with pytest.raises(
        AppImportError, match=r"cannot import app 'nope.py': file not found \(cwd="
    ):
        load_target("nope.py")


def test_default_is_app_py_in_the_cwd(appdir: pathlib.Path) -> None:
    write(appdir, "app.py", HELLO)
    assert load_app(None).__name__ == "application"


def test_module_attr_with_dotted_attribute(appdir: pathlib.Path) -> None:
    write(appdir, "pkg_x1/__init__.py", "")
    write(
        appdir,
        "pkg_x1/web.py",
        "class Holder:\n    @staticmethod\n    def wsgi(e, s):\n        return []\n",
    )
    assert load_target("pkg_x1.web:Holder.wsgi").__name__ == "wsgi"


def test_module_without_the_attribute(appdir: pathlib.Path) -> None:
    write(appdir, "myapp_x2.py", "x = 1\n")
    with pytest.raises(AppImportError) as info:
        load_target("myapp_x2:app")
    assert (
        str(info.value)
        == "cannot import app 'myapp_x2:app': module 'myapp_x2' has no attribute 'app'"
    )


def test_missing_module_is_not_found(appdir: pathlib.Path) -> None:
    with pytest.raises(
        AppImportError, match=r"module 'no_such_mod_x3' not found \(cwd="
    ):
        load_target("no_such_mod_x3:app")


def test_missing_import_inside_the_users_module_propagates(
    appdir: pathlib.Path,
) -> None:
    write(appdir, "broken_x4.py", "import no_such_dependency_x4\napp = None\n")
    with pytest.raises(ModuleNotFoundError) as info:
        load_target("broken_x4:app")
    assert info.value.name == "no_such_dependency_x4"


def test_exception_in_the_users_module_propagates(appdir: pathlib.Path) -> None:
    write(appdir, "raises_x5.py", "raise RuntimeError('boom at import')\n")
    with pytest.raises(RuntimeError, match="boom at import"):
        load_target("raises_x5:app")


def test_non_callable_attribute(appdir: pathlib.Path) -> None:
    write(appdir, "nc_x6.py", "app = 42\n")
    with pytest.raises(
        AppImportError, match=r"cannot import app 'nc_x6:app': not callable \(got int\)"
    ):
        load_target("nc_x6:app")


@pytest.mark.parametrize("spec", [":app", "mod:"])
def test_malformed_spec_quotes_the_input(spec: str) -> None:
    with pytest.raises(AppImportError) as info:
        load_target(spec)
    assert str(info.value) == (
        f"cannot import app '{spec}': expected path/to/app.py, 'module',"
        " 'module:attribute' or 'module:factory()'"
    )


def test_factory_is_called(appdir: pathlib.Path) -> None:
    write(
        appdir,
        "fac_x7.py",
        "def create():\n    def inner(e, s):\n        return []\n    return inner\n",
    )
    assert load_target("fac_x7:create", factory=True).__name__ == "inner"


def test_eval_without_app_is_the_app() -> None:
    app = load_app(None, "lambda environ, start_response: [b'x']")
    assert app({}, None) == [b"x"]


def test_eval_with_app_is_middleware(appdir: pathlib.Path) -> None:
    write(appdir, "app.py", HELLO)
    app = load_app("app.py", "lambda inner: (lambda e, s: inner(e, s) + [b'!'])")
    assert app({}, lambda *a: None) == [b"hello", b"!"]


def test_eval_syntax_error() -> None:
    with pytest.raises(
        AppImportError,
        match=r"cannot import app -e 'lambda:': invalid Python expression",
    ):
        load_app(None, "lambda:")


def test_preload_modules_notes_ignored_import_lists(appdir: pathlib.Path) -> None:
    write(appdir, "pre_x8.py", "")
    assert preload_modules(["pre_x8=a,b"]) == [
        "-M pre_x8=a,b: the import list after '=' is ignored"
    ]
    assert "pre_x8" in sys.modules
    with pytest.raises(AppImportError, match="cannot import module 'nope_x9'"):
        preload_modules(["nope_x9"])


def test_check_target_without_importing(appdir: pathlib.Path) -> None:
    from starman.wsgi.appload import check_target

    write(appdir, "chk_x10.py", "raise RuntimeError('must not be imported')\n")
    check_target("chk_x10:app")
    check_target("chk_x10.py")
    assert "chk_x10" not in sys.modules
    with pytest.raises(AppImportError, match="module 'nope_x11' not found"):
        check_target("nope_x11:app")
    with pytest.raises(AppImportError, match="'gone.py': file not found"):
        check_target("gone.py")


def test_module_in_the_cwd_is_found_without_cwd_on_sys_path(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A console script's sys.path[0] is its bin directory, not the cwd: gunicorn users
    expect ``module:callable`` to be looked up in the cwd anyway."""
    write(tmp_path, "cwd_only_mod_q7.py", HELLO)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))]
    )
    try:
        app = load_target("cwd_only_mod_q7:application")
    finally:
        sys.modules.pop("cwd_only_mod_q7", None)
    assert app.__name__ == "application"
    assert sys.path[0] == str(tmp_path)

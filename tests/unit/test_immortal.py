"""starman/master/immortal.py: the program's objects made immortal before forking.

The marking runs in a child interpreter (it would otherwise mark pytest's own modules):
this one when it is CPython 3.12 or 3.13, else such an interpreter found on this machine
(pyenv's), with only the standard library needed.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from starman.master import immortal

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = textwrap.dedent(
    """
    import enum, gc, json, os, socket, sys
    from starman.master import immortal

    def function():
        return ("constant", 1.5)

    class Class:
        def method(self):
            return 1

    class Colour(enum.Enum):
        RED = 1

    class Lazy:  # a proxy that runs code when asked its __class__ (Django's settings)
        @property
        def __class__(self):
            raise RuntimeError("the walk must not ask an instance anything")

    LAZY = Lazy()
    TUPLE = (b"x" * 40, 3.25)
    LIST = [object()]
    INSTANCE = Class()
    SOCK = socket.socket()
    FD = SOCK.fileno()

    # An app from a file that sys.modules does not list (runpy), and an instance: a root.
    namespace = {}
    exec(sys.argv[1], namespace)
    APP = namespace.pop("App")()
    del namespace

    marked = immortal.immortalize_program([APP])
    counts = {
        name: sys.getrefcount(obj)
        for name, obj in [
            ("function", function),
            ("code", function.__code__),
            ("constant", function.__code__.co_consts[-1]),
            ("class", Class),
            ("method", Class.method),
            ("member", Colour.RED),
            ("tuple", TUPLE),
            ("float", TUPLE[1]),
            ("list", LIST),
            ("list item", LIST[0]),
            ("instance", INSTANCE),
            ("socket", SOCK),
            ("app", APP),
            ("app class", type(APP)),
            ("view", APP.views["/"]),
        ]
    }
    del SOCK  # an instance is still freed, so a dropped socket still closes
    gc.collect()
    try:
        os.fstat(FD)
        closed = False
    except OSError:
        closed = True
    print(json.dumps({
        "marked": marked,
        "counts": counts,
        "still runs": function()[1] + Class().method() + APP(),
        "closed": closed,
    }))
    """
)


def _python_with_immortal_objects() -> str | None:
    candidates = [sys.executable] if immortal.supported() else []
    candidates += [p for p in (shutil.which(f"python3.{n}") for n in (13, 12)) if p]
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(
        glob.glob(os.path.join(pyenv, "versions", "3.1[23]*", "bin", "python3"))
    )
    probe = "from starman import immortal; print(immortal.supported())"
    for python in candidates:
        try:
            out = subprocess.run(
                [python, "-c", probe],
                capture_output=True,
                text=True,
                timeout=30,
                env=dict(os.environ, PYTHONPATH=REPO),
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.strip() == "True":
            return python
    return None


PYTHON = _python_with_immortal_objects()

APP_SOURCE = textwrap.dedent(
    """
    class App:
        def __init__(self):
            self.views = {"/": lambda: 2}

        def __call__(self):
            return self.views["/"]()
    """
)


@pytest.mark.skipif(PYTHON is None, reason="no CPython 3.12 or 3.13 on this machine")
def test_the_program_becomes_immortal_and_instances_do_not() -> None:
    assert PYTHON is not None
    out = subprocess.run(
        [PYTHON, "-c", CHILD, APP_SOURCE],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=REPO),
        check=True,
    ).stdout
    doc = json.loads(out)
    counts = doc["counts"]
    for name in (
        "function",
        "code",
        "constant",
        "class",
        "method",
        "member",
        "tuple",
        "float",
        "app",
        "app class",
        "view",
    ):
        assert counts[name] == immortal.IMMORTAL_REFCNT, name
    for name in ("list", "list item", "instance", "socket"):
        assert counts[name] < 100, name
    assert doc["marked"] > 1000  # the standard library's modules as well
    assert doc["still runs"] == 4.5
    assert doc["closed"]


def test_elsewhere_it_marks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(immortal, "supported", lambda: False)

    def probe() -> int:
        return 1

    before = sys.getrefcount(probe)
    assert immortal.immortalize_program() == 0
    assert sys.getrefcount(probe) == before


@pytest.mark.skipif(
    sys.version_info[:2] in ((3, 12), (3, 13)), reason="checked by the test above"
)
def test_not_supported_on_other_versions() -> None:
    # CPython 3.11 has no immortal objects: the marker would be a plain large count.
    assert not immortal.supported()

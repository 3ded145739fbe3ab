"""The layers' import rules (docs/architecture.md), checked by walking every module's imports.

Each rule is a list of what a layer may import of the two packages; a module importing
anything else of them fails. The rules also fail when a layer folder named here is missing,
so a rename cannot silently skip them.
"""

from __future__ import annotations

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# layer (a package folder, or a single module) -> the layers of ours it may import.
# A layer always may import itself. Imports go downward only: no cycles between layers.
MAY_IMPORT: dict[str, set[str]] = {
    "start_server.common": set(),
    "start_server": {"start_server.common"},
    "starman.http": {"start_server.common"},
    "starman.wsgi": {"starman.http", "start_server.common", "starman"},
    "starman.access": {"starman.http", "start_server.common"},
    "starman.worker": {
        "starman.config",
        "starman.http",
        "starman.wsgi",
        "starman.access",
        "start_server.common",
    },
    "starman.optionvalues": {"start_server.common"},
    "starman.pooloptions": {"starman.optionvalues", "start_server.common"},
    "starman.config": {
        "starman.access",
        "starman.optionvalues",
        "starman.pooloptions",
        "start_server.common",
    },
    "starman.configload": {"starman.config", "start_server.common"},
    "starman.master": {
        "starman.config",
        "starman.access",
        "starman.worker",
        "starman.wsgi",
        "start_server.common",
    },
    "starman.cli": {
        "starman",
        "starman.access",
        "starman.config",
        "starman.configload",
        "starman.master",
        "starman.wsgi",
        "start_server.common",
    },
    "starman.__main__": {"starman.cli"},
    "starman": set(),  # starman/__init__.py: only __version__
}
# The sans-IO core: no sockets, clocks, signals or logging, so it is testable with bytes.
SANS_IO_FORBIDDEN = {
    "socket",
    "selectors",
    "select",
    "signal",
    "time",
    "logging",
    "ssl",
}


def all_modules() -> list[str]:
    """Every module of both packages as a dotted name (``pkg/__init__.py`` -> ``pkg``)."""
    found = []
    for top in ("start_server", "starman"):
        for dirpath, _dirs, files in os.walk(os.path.join(REPO, top)):
            for f in files:
                if not f.endswith(".py"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, f), REPO)[:-3]
                name = rel.replace(os.sep, ".")
                found.append(name.removesuffix(".__init__"))
    return sorted(found)


def layer_of(module: str) -> str:
    """The longest layer name that is ``module`` or a package containing it."""
    best = ""
    for layer in MAY_IMPORT:
        if (module == layer or module.startswith(layer + ".")) and len(layer) > len(
            best
        ):
            best = layer
    assert best, f"{module} belongs to no layer of MAY_IMPORT"
    return best


def imported_modules(module: str, known: set[str]) -> set[str]:
    """Our modules that ``module`` imports, anywhere in the file (also inside functions)."""
    path = os.path.join(REPO, *module.split("."))
    path = os.path.join(path, "__init__.py") if os.path.isdir(path) else path + ".py"
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # ``from pkg import mod`` names a module; ``from mod import func`` does not.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names & known


MODULES = all_modules()


def test_every_layer_exists() -> None:
    missing = [layer for layer in MAY_IMPORT if layer not in MODULES]
    assert not missing


@pytest.mark.parametrize("module", MODULES)
def test_imports_go_down_the_layers(module: str) -> None:
    own = layer_of(module)
    allowed = MAY_IMPORT[own] | {own}
    bad = {
        name
        for name in imported_modules(module, set(MODULES))
        if layer_of(name) not in allowed
    }
    assert not bad, f"{module} ({own}) imports {sorted(bad)}"


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("start_server")])
def test_start_server_never_imports_starman(module: str) -> None:
    bad = {n for n in imported_modules(module, set(MODULES)) if n.startswith("starman")}
    assert not bad


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("starman.http")])
def test_sans_io_core_imports_no_io(module: str) -> None:
    path = os.path.join(REPO, *module.split("."))
    path = os.path.join(path, "__init__.py") if os.path.isdir(path) else path + ".py"
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            used.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            used.add(node.module.split(".")[0])
    assert not used & SANS_IO_FORBIDDEN


def test_the_rules_can_fail() -> None:
    """A rule that cannot fail checks nothing: the walker does see our imports."""
    seen = imported_modules("starman.master.arbiter", set(MODULES))
    assert "starman.worker.scoreboard" in seen
    assert layer_of("starman.worker.scoreboard") not in MAY_IMPORT["starman.http"]

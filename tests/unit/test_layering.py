"""The module map's import rules (STYLE §2), checked by walking every module's imports."""

from __future__ import annotations

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What starman may use of start_server: the shared, program-independent layer.
STARMAN_MAY_IMPORT = {
    "start_server",
    "start_server.listen",
    "start_server.options",
    "start_server.portspec",
    "start_server.proc",
    "start_server.record",
    "start_server.sdnotify",
    "start_server.sigwake",
}
# The sans-IO core: no sockets, clocks, signals or logging, so it is testable with bytes.
SANS_IO = ("h1", "events", "body")
SANS_IO_FORBIDDEN = {
    "socket",
    "selectors",
    "select",
    "signal",
    "time",
    "logging",
    "ssl",
}


def modules(package: str) -> list[str]:
    folder = os.path.join(REPO, package)
    return sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".py"))


def imported_names(package: str, module: str) -> set[str]:
    """Every module name imported anywhere in the file (top level or inside functions)."""
    path = os.path.join(REPO, package, module + ".py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("module", modules("start_server"))
def test_start_server_never_imports_starman(module: str) -> None:
    bad = {
        n
        for n in imported_names("start_server", module)
        if n.split(".")[0] == "starman"
    }
    assert not bad, f"start_server/{module}.py imports {sorted(bad)}"


@pytest.mark.parametrize("module", modules("starman"))
def test_starman_imports_only_the_shared_layer_of_start_server(module: str) -> None:
    existing = {"start_server"} | {f"start_server.{m}" for m in modules("start_server")}
    # ``from start_server import listen`` and ``from start_server.listen import x`` both
    # name a module; names that are not module files (functions, constants) drop out.
    used = imported_names("starman", module) & existing
    bad = used - STARMAN_MAY_IMPORT
    assert not bad, f"starman/{module}.py imports {sorted(bad)} from start_server"


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_core_imports_no_io(module: str) -> None:
    bad = {
        n
        for n in imported_names("starman", module)
        if n.split(".")[0] in SANS_IO_FORBIDDEN
    }
    assert not bad, f"starman/{module}.py imports {sorted(bad)}"

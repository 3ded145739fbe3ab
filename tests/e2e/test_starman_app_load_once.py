"""An app that cannot load, without --preload-app: every worker fails the same way, and
starman says it once (naming the worker that saw it), exits 4, and forks no more."""

from __future__ import annotations

import os
import re

from tests.harness.starman_program import BROKEN_APP, Launcher, error_lines, launcher

__all__ = ["launcher"]

NOT_CALLABLE = "master_notcallable:app"
APPS_DIR = os.path.dirname(BROKEN_APP)


def test_app_raising_at_import_is_reported_once(launcher: Launcher) -> None:
    server = launcher.run(
        ["--log-level", "debug", "--workers", "5", "--listen", "unix:x.sock"]
        + [BROKEN_APP]
    )
    assert server.proc.wait(timeout=15) == 4
    log = server.log()
    spawned = re.findall(r"spawned worker (\d+)", log)
    assert len(spawned) == 5, log  # no respawn
    (line,) = error_lines(log)
    m = re.fullmatch(
        r"starman: error: worker (\d+) could not load the app: cannot import app "
        rf"{re.escape(repr(BROKEN_APP))}: it raised RuntimeError: "
        r"master_broken fixture fails at import",
        line,
    )
    assert m is not None and m.group(1) in spawned, line
    # The user's traceback, once, from that worker, with the user's frames only.
    assert log.count("Traceback") == 1, log
    assert f"worker {m.group(1)}: error while loading the app:" in log
    assert f'File "{BROKEN_APP}", line 3' in log
    assert "starman/master/" not in log and "runpy" not in log
    # The source line and the exception in the traceback, then the error line.
    assert log.count("master_broken fixture fails at import") == 3
    assert not re.search(r" (WARNING|ERROR) starman\.pool", log), log


def test_app_that_is_not_callable_is_one_line(launcher: Launcher) -> None:
    server = launcher.run(
        ["--workers", "5", "-I", APPS_DIR, "--listen", "unix:x.sock", NOT_CALLABLE]
    )
    assert server.proc.wait(timeout=15) == 4
    log = server.log()
    assert re.fullmatch(
        r"starman: error: worker \d+ could not load the app: cannot import app "
        r"'master_notcallable:app': not callable \(got int\)\n",
        log.split("\n", 1)[1],  # after the "listening on" line
    ), log


def test_with_preload_the_master_reports_it(launcher: Launcher) -> None:
    # The neighbour: the master loaded it, so no worker is named and none was forked.
    server = launcher.run(
        ["--preload-app", "--log-level", "debug", "--listen", "unix:x.sock"]
        + [BROKEN_APP]
    )
    assert server.proc.wait(timeout=15) == 4
    log = server.log()
    assert error_lines(log) == [
        f"starman: error: cannot import app {BROKEN_APP!r}: it raised "
        "RuntimeError: master_broken fixture fails at import"
    ]
    assert log.count("Traceback") == 1 and "spawned worker" not in log

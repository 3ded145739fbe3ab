"""The commands the docs give work as written: unit names, directories, example commands."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys

import pytest

from tests.harness.process import REPO, kill_group, spawn, wait_for
from tests.harness.rawhttp import http_get

SYSTEMD = os.path.join(REPO, "systemd")
DOCS = os.path.join(REPO, "docs")


def read(*parts: str) -> str:
    with open(os.path.join(REPO, *parts), encoding="utf-8") as f:
        return f.read()


def shipped_unit(name: str) -> bool:
    """``starman``, ``starman.socket`` or ``starman@blog.socket`` names a file of systemd/."""
    if "." not in name:
        name += ".service"
    stem, dot, kind = name.rpartition(".")
    stem = re.sub(r"@.+$", "@", stem)
    return os.path.exists(os.path.join(SYSTEMD, stem + dot + kind))


@pytest.mark.parametrize("doc", ["systemd.md", "quickstart.md", "hot-deploy.md"])
def test_every_systemctl_command_names_a_unit_that_exists(doc: str) -> None:
    text = read("docs", doc)
    installed = set(
        re.findall(r"cp systemd/\S+ /etc/systemd/system/(\S+?)\.service", text)
    )
    if doc != "systemd.md":  # the other docs rely on systemd.md's install steps
        installed |= set(
            re.findall(
                r"cp systemd/\S+ /etc/systemd/system/(\S+?)\.service",
                read("docs", "systemd.md"),
            )
        )
    verbs = r"(?:start|stop|reload|restart|status|enable --now|enable|disable)"
    commands = re.findall(rf"systemctl {verbs} ([^`#\n:]+)", text)
    assert commands or doc == "hot-deploy.md"
    for names in commands:
        for name in names.split():
            assert shipped_unit(name) or name in installed, (
                f"docs/{doc}: `systemctl ... {name}`: no unit file systemd/{name}[.service] "
                "and no install step that names it"
            )


def test_the_template_creates_the_log_directory_its_example_uses() -> None:
    text = read("docs", "systemd.md")
    section = text[text.index("## Several apps") :]
    dirs = set(re.findall(r"/var/log/([^/\s\"']+)/", section))
    unit = read("systemd", "starman@.service")
    made = set(re.findall(r"^LogsDirectory=(\S+)", unit, re.M))
    assert dirs and dirs <= made


def test_the_template_example_makes_every_site_it_enables() -> None:
    text = read("docs", "systemd.md")
    section = text[text.index("## Several apps") :]
    enabled = set(re.findall(r"starman@(\w+)\.socket", section.split("```")[1]))
    loop = re.search(r"for site in ([\w ]+); do", section)
    assert loop is not None
    assert enabled <= set(loop.group(1).split())


def _docstring_command(path: str) -> list[str]:
    """The first command line of the example's docstring, the venv made this one's."""
    with open(path, encoding="utf-8") as f:
        doc = f.read().split('"""')[1]
    line = next(ln.strip() for ln in doc.splitlines() if ln.startswith("    .venv/"))
    bindir = os.path.dirname(sys.executable) + "/"
    return [word.replace(".venv/bin/", bindir, 1) for word in shlex.split(line)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _body_of_one_run(argv: list[str], port: int) -> bytes | None:
    """Run ``argv`` on ``port``; the body it answers, or None if the port was taken."""
    run = [a.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for a in argv]
    proc = spawn(run, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def answered() -> bytes:
        assert proc.poll() is None, "the example exited"
        return http_get(("127.0.0.1", port), "/").split(b"\r\n\r\n", 1)[1]

    try:
        return wait_for(answered, timeout=15)
    except (TimeoutError, AssertionError):
        kill_group(proc)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        if "Address already in use" in err:
            return None  # another process took the port meanwhile
        raise AssertionError(err) from None
    finally:
        kill_group(proc)


def test_echo_server_example_runs_as_its_docstring_says() -> None:
    argv = _docstring_command(os.path.join(DOCS, "examples", "echo_server.py"))
    assert "127.0.0.1:8080" in argv
    for _attempt in range(5):
        body = _body_of_one_run(argv, _free_port())
        if body is not None:
            assert body.startswith(b"hello from pid "), body
            assert body.rstrip().endswith(b"generation 1"), body
            return
    pytest.fail("no free port in 5 attempts")

"""The option spellings Perl's start_server takes (Getopt::Long's) work with ours too."""

from __future__ import annotations

import os
import subprocess

import pytest

from start_server import __version__
from tests.harness.process import PERL_START_SERVER
from tests.harness.start_server_program import START_SERVER

HELP = ["-h", "--h", "-help"]
VERSION = ["-version", "--vers", "-v", "--VERSION"]


def run(argv: list[str]) -> tuple[int, str, str]:
    res = subprocess.run(
        argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    return res.returncode, res.stdout, res.stderr


@pytest.mark.parametrize("word", HELP)
def test_help_spellings(word: str) -> None:
    rc, out, err = run([*START_SERVER, word])
    assert (rc, err) == (0, "")
    assert out.startswith("usage: start_server [options] -- server-prog")


@pytest.mark.parametrize("word", VERSION)
def test_version_spellings(word: str) -> None:
    assert run([*START_SERVER, word]) == (0, f"{__version__}\n", "")


@pytest.mark.skipif(
    not os.access(PERL_START_SERVER, os.X_OK),
    reason="Perl's start_server not installed",
)
@pytest.mark.parametrize("word", HELP + VERSION)
def test_perl_takes_the_same_spellings(word: str) -> None:
    rc, out, _ = run([PERL_START_SERVER, word])
    assert rc == 0 and out


def test_ambiguous_prefix_is_one_line_and_usage() -> None:
    rc, _, err = run([*START_SERVER, "--s", "true"])
    assert rc == 2
    assert err.splitlines()[0] == (
        "start_server: error: option '--s' is ambiguous "
        "(--signal-on-hup, --signal-on-term, --status-file, --stop)"
    )
    assert err.count("usage:") == 1

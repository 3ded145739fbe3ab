"""TLS files named on the command line: a missing or unreadable --ssl-cert/--ssl-key is
one line naming the option, the file and the error (exit 2), before anything is forked."""

from __future__ import annotations

import os

import pytest

from tests.harness.starman_program import APP, Launcher, error_lines, launcher

__all__ = ["launcher"]


@pytest.mark.parametrize(
    "listen", [["--listen", "127.0.0.1:0:ssl"], ["--listen", "127.0.0.1:0", "--ssl"]]
)
def test_missing_ssl_cert_names_the_file(launcher: Launcher, listen: list[str]) -> None:
    missing = os.path.join(launcher.tmpdir, "no-such-cert.pem")
    server = launcher.run([*listen, "--ssl-cert", missing, APP])
    assert server.proc.wait(timeout=15) == 2
    log = server.log()
    assert error_lines(log) == [
        f"starman: error: cannot read --ssl-cert {missing!r}: No such file or directory"
    ], log
    assert "None" not in log and "Traceback" not in log


def test_missing_ssl_key_names_the_file(launcher: Launcher) -> None:
    cert = os.path.join(launcher.tmpdir, "cert.pem")
    with open(cert, "w") as f:
        f.write("not checked before the key\n")
    missing = os.path.join(launcher.tmpdir, "no-such-key.pem")
    server = launcher.run(
        ["--listen", "127.0.0.1:0:ssl", "--ssl-cert", cert, "--ssl-key", missing, APP]
    )
    assert server.proc.wait(timeout=15) == 2
    assert error_lines(server.log()) == [
        f"starman: error: cannot read --ssl-key {missing!r}: No such file or directory"
    ]


def test_a_directory_as_ssl_cert(launcher: Launcher) -> None:
    server = launcher.run(
        ["--listen", "127.0.0.1:0:ssl", "--ssl-cert", launcher.tmpdir, APP]
    )
    assert server.proc.wait(timeout=15) == 2
    assert error_lines(server.log()) == [
        f"starman: error: cannot read --ssl-cert {launcher.tmpdir!r}: Is a directory"
    ]

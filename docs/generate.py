"""Render docs/options.md, docs/start_server.1 and docs/starman.1 from the option tables.

``python docs/generate.py`` rewrites them; ``python docs/generate.py --check`` exits 1 and
names the stale files instead (tests/unit/test_docs_generated.py runs the same check).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from starman import __version__ as starman_version  # noqa: E402
from starman import access  # noqa: E402
from starman import config as starman_config  # noqa: E402
from start_server import __version__ as start_server_version  # noqa: E402
from start_server import config as start_server_config  # noqa: E402
from start_server.common.options import render_man, render_markdown  # noqa: E402

START_SERVER_SECTIONS = (
    (
        "Signals",
        """HUP: start a new generation of the server program; once it has stayed up for
--interval seconds, send --signal-on-hup to the old generations (after
--kill-old-delay).

TERM: send --signal-on-term to every generation, wait for them to exit, then exit.
INT and the other handled signals: the same with TERM.

Details and differences from Perl: docs/server-starter-compat.md.""",
    ),
    (
        "Environment",
        """SERVER_STARTER_PORT: exported to the server program, KEY=FD pairs separated by
semicolons, in Server::Starter's format.

SERVER_STARTER_GENERATION: exported to the server program, 1 for the first
generation and one more on each restart.

KILL_OLD_DELAY, ENVDIR, ENABLE_AUTO_RESTART, AUTO_RESTART_INTERVAL: read as the
options of the same name (the command line wins over them; they win over the file).""",
    ),
    (
        "Example",
        """  start_server --port 8080 --pid-file /run/app.pid --status-file /run/app.status \\
      -- starman --workers 8 myproject.wsgi:application
  kill -HUP $(cat /run/app.pid)
  start_server --config /etc/app.toml -- starman --config /etc/app.toml""",
    ),
    ("See also", "starman(1), docs/hot-deploy.md, docs/systemd.md, docs/options.md"),
)

STARMAN_SECTIONS = (
    (
        "Signals",
        """HUP: start a new set of workers (reloading the app unless --preload-app); once
every new worker accepts, the old ones drain.

TERM, QUIT: graceful stop: in-flight requests finish within --graceful-timeout.
INT: stop at once.

TTIN, TTOU: one worker more, one fewer (never below 1).

USR1: reopen --error-log and --access-log (for logrotate).""",
    ),
    (
        "Environment",
        """SERVER_STARTER_PORT: listening sockets inherited from start_server; used first.

LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES: sockets passed by systemd socket activation;
used when SERVER_STARTER_PORT is unset.

NOTIFY_SOCKET: starman sends READY=1 once every worker accepts, RELOADING=1 and
STOPPING=1 (systemd Type=notify).

STARMAN_ENV: default for --env. STARMAN_DEBUG=1: same as --log-level debug.""",
    ),
    (
        "Example",
        """  starman --listen 127.0.0.1:8080 --workers 4 docs/examples/hello.py
  starman --listen unix:/run/app.sock --preload-app myproject.wsgi:application
  starman --config /etc/app.toml""",
    ),
    (
        "See also",
        "start_server(1), docs/quickstart.md, docs/systemd.md, docs/options.md",
    ),
)


def render_all() -> dict[str, str]:
    """Every generated file's path (relative to docs/) and its text."""
    ss = start_server_config
    sm = starman_config
    options_md = "\n".join(
        [
            "# Options reference",
            "",
            "Generated from the option tables (`start_server/config.py`, "
            "`starman/config.py`) by `python docs/generate.py`; do not edit by hand. "
            "The same rows give `--help`, the TOML keys and the man pages "
            "([start_server.1](start_server.1), [starman.1](starman.1)).",
            "",
            "One TOML file can configure both programs: `[start_server]` and `[starman]` "
            "tables, keys spelled as the long options:",
            "",
            "```toml",
            "[start_server]",
            'port = ["127.0.0.1:8080"]',
            'status-file = "/run/app/status"',
            "",
            "[starman]",
            "workers = 8",
            'app = "myproject.wsgi:application"',
            "preload-app = true",
            "```",
            "",
            render_markdown(
                "start_server",
                ss.OPTIONS,
                usage=ss.USAGE,
                description=ss.DESCRIPTION,
                toml_table=ss.TOML_TABLE,
            ),
            render_markdown(
                "starman",
                sm.OPTIONS,
                usage=sm.USAGE,
                description=sm.DESCRIPTION,
                toml_table=sm.TOML_TABLE,
            ),
            "Access log directives (`--access-log-format`):",
            "",
            "| Directive | Meaning |",
            "|---|---|",
            *(
                f"| `%{key}` | {meaning} |"
                for key, meaning in access.ACCESS_LOG_DIRECTIVES.items()
            ),
            "",
            "Named formats: "
            + ", ".join(
                f"`{name}` = `{fmt}`" for name, fmt in access.ACCESS_LOG_FORMATS.items()
            )
            + ".",
            "",
        ]
    )
    return {
        "options.md": options_md,
        "start_server.1": render_man(
            "start_server",
            ss.OPTIONS,
            usage=ss.USAGE,
            description=ss.DESCRIPTION,
            summary="superdaemon for hot-deploying server programs",
            version=start_server_version,
            toml_table=ss.TOML_TABLE,
            sections=START_SERVER_SECTIONS,
        ),
        "starman.1": render_man(
            "starman",
            sm.OPTIONS,
            usage=sm.USAGE,
            description=sm.DESCRIPTION,
            summary="preforking WSGI HTTP/1.1 server",
            version=starman_version,
            toml_table=sm.TOML_TABLE,
            sections=STARMAN_SECTIONS,
        ),
    }


def stale_files(docs_dir: str = HERE) -> list[str]:
    """The generated files whose committed text differs from what the tables give."""
    stale = []
    for name, text in render_all().items():
        try:
            with open(os.path.join(docs_dir, name), encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != text:
            stale.append(name)
    return stale


def main(argv: list[str]) -> int:
    """Write the files, or with ``--check`` report the stale ones (exit 1)."""
    if argv[1:] == ["--check"]:
        stale = stale_files()
        for name in stale:
            sys.stderr.write(f"docs/{name} is stale: run python docs/generate.py\n")
        return 1 if stale else 0
    if argv[1:]:
        sys.stderr.write("usage: python docs/generate.py [--check]\n")
        return 2
    for name, text in render_all().items():
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

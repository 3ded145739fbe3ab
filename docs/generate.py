"""Render docs/options.md, docs/start_server.1 and docs/starman.1 from the option tables.

``python docs/generate.py`` rewrites them; ``python docs/generate.py --check`` exits 1 and
names the stale files instead (tests/unit/test_docs_generated.py runs the same check).
The renderers (Markdown and man(7)) live here: the programs never render their own docs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from starman import (  # noqa: E402
    __version__ as starman_version,
    access,
    config as starman_config,
)
from start_server import (  # noqa: E402
    __version__ as start_server_version,
    config as start_server_config,
)
from start_server.common.options import Option, default_text  # noqa: E402

# --------------------------------------------------------------------------- renderers


def _spelling_line(opt: Option, sep: str = " ") -> list[str]:
    """Every way to write the option, with its metavar: ``--port SPEC``, ``-p SPEC``."""
    arg = "" if opt.flag else sep + (opt.metavar or opt.name.upper())
    words = [opt.flag_name + arg]
    words += [a + arg for a in opt.aliases]
    words += [
        s + ("" if opt.flag else " " + (opt.metavar or opt.name.upper()))
        for s in opt.short
    ]
    if opt.negatable:
        words += [s for s in opt.spellings if s.startswith(("--no-", "--disable-"))]
    return words


def _toml_key(opt: Option) -> str:
    return "" if opt.cli_only else opt.name.replace("_", "-")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(
    prog: str,
    options: Sequence[Option],
    *,
    usage: str,
    description: str,
    toml_table: str,
) -> str:
    """One program's section of the options reference, as Markdown."""
    lines = [
        f"## {prog}",
        "",
        "```",
        f"usage: {usage}",
        "```",
        "",
        description,
        "",
        f"TOML: keys of the `[{toml_table}]` table of the `--config` file, spelled as the "
        "long option (`-` or `_`). Precedence: command line > environment > file > default.",
        "",
        "| Option | Default | TOML key | Env | Description |",
        "|---|---|---|---|---|",
    ]
    for opt in options:
        spell = "<br>".join(f"`{w}`" for w in _spelling_line(opt))
        key = f"`{_toml_key(opt)}`" if not opt.cli_only else "CLI only"
        env = f"`{opt.env}`" if opt.env else ""
        lines.append(
            f"| {spell} | {_md_escape(default_text(opt))} | {key} | {env} | "
            f"{_md_escape(opt.help)} |"
        )
    return "\n".join(lines) + "\n"


def _roff(text: str) -> str:
    """Escape text for a roff line: backslashes, hyphens, and a leading dot or quote."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    if out.startswith((".", "'")):
        out = "\\&" + out
    return out


def render_man(
    prog: str,
    options: Sequence[Option],
    *,
    usage: str,
    description: str,
    summary: str,
    version: str,
    toml_table: str,
    sections: Sequence[tuple[str, str]] = (),
) -> str:
    """A man(7) page for ``prog``: NAME, SYNOPSIS, DESCRIPTION, OPTIONS, then ``sections``.

    ``sections`` are (TITLE, text) pairs; blank lines in the text separate paragraphs and
    lines that start with two spaces are shown verbatim. No date, so the output only
    changes when the table does.
    """
    out = [
        f'.TH {prog.upper().replace("-", "_")} 1 "" "{prog} {version}" "User Commands"',
        ".SH NAME",
        f"{_roff(prog)} \\- {_roff(summary)}",
        ".SH SYNOPSIS",
        _roff(usage),
        ".SH DESCRIPTION",
        _roff(description),
        ".SH OPTIONS",
        _roff(
            f"Options can also be set in the [{toml_table}] table of the --config file, "
            "keyed by the long option name. Precedence: command line > environment > "
            "file > default."
        ),
    ]
    for opt in options:
        out.append(".TP")
        out.append(".B " + _roff(", ".join(_spelling_line(opt))))
        text = opt.help.rstrip(".") + ". Default: " + default_text(opt) + "."
        if opt.env:
            text += f" Environment: {opt.env}."
        if opt.cli_only:
            text += " Command line only."
        out.append(_roff(text))
    for title, body in sections:
        out.append(".SH " + _roff(title.upper()))
        for para in body.strip("\n").split("\n\n"):
            para_lines = para.split("\n")
            if all(line.startswith("  ") for line in para_lines):
                out.append(".PP")
                out.append(".nf")
                out += [_roff(line) for line in para_lines]
                out.append(".fi")
            else:
                out.append(".PP")
                out.append(_roff(" ".join(line.strip() for line in para_lines)))
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- the pages

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

"""One declarative option table per program: the row type, converters, argparse, TOML and help.

Pure: no I/O except reading the TOML file named by ``--config``. Used by
``start_server.config`` and ``starman.config``; precedence is CLI > env var > TOML > default.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence

from start_server.common.record import Record

# typing is for mypy only: start_server's long-lived supervisor parses its command line
# with this module and keeps what it imports.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = [
    "ConfigError",
    "Option",
    "OptionParser",
    "UsageError",
    "default_text",
    "help_text",
    "load_toml_table",
    "merge",
    "to_bool",
    "to_float",
    "to_int",
    "to_log_level",
    "to_nonneg_float",
    "to_nonneg_int",
    "to_octal",
    "to_positive_int",
    "to_signal",
    "to_size",
    "to_str",
]


class UsageError(Exception):
    """A bad command line: the CLI prints it with the usage line and exits 2."""


class ConfigError(Exception):
    """A bad configuration file or environment value: one line naming what and where."""


# --------------------------------------------------------------------------- converters
# Each takes the text a user typed and returns the value, or raises ValueError whose
# message says what was expected (the caller adds which option and which input).


def to_str(text: str) -> str:
    """Any string."""
    return text


def to_int(text: str) -> int:
    """A decimal integer (Perl's ``=i``): optional sign, digits only."""
    if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
        raise ValueError("expected an integer")
    return int(text.strip())


def to_nonneg_int(text: str) -> int:
    """A decimal integer >= 0."""
    value = to_int(text)
    if value < 0:
        raise ValueError("expected an integer >= 0")
    return value


def to_positive_int(text: str) -> int:
    """A decimal integer >= 1."""
    value = to_int(text)
    if value < 1:
        raise ValueError("expected an integer >= 1")
    return value


def to_float(text: str) -> float:
    """A decimal number (seconds may be fractional)."""
    if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)", text.strip()):
        raise ValueError("expected a number")
    return float(text.strip())


def to_nonneg_float(text: str) -> float:
    """A decimal number >= 0."""
    value = to_float(text)
    if value < 0:
        raise ValueError("expected a number >= 0")
    return value


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def to_size(text: str) -> int:
    """A byte count: digits with an optional K, M, G or T suffix (powers of 1024)."""
    m = re.fullmatch(r"([0-9]+)\s*([KMGT]?)(?:i?B)?", text.strip(), re.IGNORECASE)
    if not m:
        raise ValueError("expected a size such as 1048576, 512K, 1M or 1G")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).upper()]


def to_octal(text: str) -> int:
    """A file mode in octal, such as 0660."""
    if not re.fullmatch(r"0?o?[0-7]{1,4}", text.strip()):
        raise ValueError("expected an octal mode such as 0660")
    return int(text.strip().replace("o", ""), 8)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def to_bool(text: str) -> bool:
    """A boolean: 1/0, true/false, yes/no, on/off (case-insensitive)."""
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("expected a boolean (1/0, true/false, yes/no, on/off)")


def to_signal(text: str) -> signal.Signals:
    """A signal name (TERM, SIGTERM, term) or number, as Perl's ``--signal-on-*``."""
    name = text.strip().upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name.isdigit():
        try:
            return signal.Signals(int(name))
        except ValueError:
            pass
    else:
        try:
            return signal.Signals["SIG" + name]
        except KeyError:
            pass
    raise ValueError("expected a signal name such as TERM, QUIT or HUP")


LOG_LEVELS = ("debug", "info", "warning", "error")


def to_log_level(text: str) -> str:
    """A logging threshold: debug, info, warning (or warn) or error; returned lowercase."""
    level = text.strip().lower()
    if level == "warn":
        level = "warning"
    if level not in LOG_LEVELS:
        raise ValueError("expected debug, info, warning or error")
    return level


# --------------------------------------------------------------------------- the row


class Option(Record):
    """One row of a program's option table: everything about one option, said once.

    ``name`` is the Settings field and TOML key; the flag is ``--`` + name with ``_`` as
    ``-``. A ``flag`` takes no value (TOML: a boolean); ``negatable`` flags also accept
    ``--no-NAME`` and ``--disable-NAME``/``--enable-NAME``. ``repeat`` collects every use in
    order. ``env`` is a compatibility environment variable (Server::Starter's). ``cli_only``
    rows (``--restart``, ``--help``...) are not accepted in a TOML file. ``doc_default``
    is what the generated docs show as the default when the value is machine-made.
    """

    __slots__ = (
        "name",
        "convert",
        "default",
        "help",
        "metavar",
        "flag",
        "negatable",
        "repeat",
        "env",
        "short",
        "aliases",
        "cli_only",
        "doc_default",
    )

    def __init__(
        self,
        name: str,
        convert: Callable[[str], Any],
        default: Any,
        help: str,
        metavar: str | None = None,
        flag: bool = False,
        negatable: bool = False,
        repeat: bool = False,
        env: str | None = None,
        short: tuple[str, ...] = (),
        aliases: tuple[str, ...] = (),
        cli_only: bool = False,
        doc_default: str | None = None,
    ) -> None:
        self.name = name
        self.convert = convert
        self.default = default
        self.help = help
        self.metavar = metavar
        self.flag = flag
        self.negatable = negatable
        self.repeat = repeat
        self.env = env
        self.short = short
        self.aliases = aliases
        self.cli_only = cli_only
        self.doc_default = doc_default

    @property
    def flag_name(self) -> str:
        """The long option as typed: ``--kill-old-delay``."""
        return "--" + self.name.replace("_", "-")

    @property
    def spellings(self) -> tuple[str, ...]:
        """Every accepted spelling on the command line."""
        names = [self.flag_name, *self.aliases, *self.short]
        if self.negatable:
            base = self.name.replace("_", "-")
            names += ["--no-" + base]
            if not base.startswith(("enable-", "disable-")):
                names += ["--enable-" + base, "--disable-" + base]
        return tuple(names)


def default_text(opt: Option) -> str:
    """The default as ``--help`` and the docs show it: ``doc_default`` if the row has one,
    else its value (``none`` when unset, ``on``/``off`` for a flag)."""
    if opt.doc_default is not None:
        return opt.doc_default
    value = opt.default
    if opt.flag:
        return "on" if value else "off"
    if value is None or value == [] or value == ():
        return "none"
    if isinstance(value, signal.Signals):
        return value.name[3:]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int) and opt.convert is to_size:
        for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
            if value and value % size == 0:
                return f"{value // size}{unit}"
    return str(value)


# What --help leaves out: an unset value or a flag that is off is not worth a note.
_UNSHOWN_DEFAULTS = ("none", "off")


def help_text(opt: Option) -> str:
    """The row's help as ``--help`` shows it: with ``(default: X)`` appended, as
    argparse's ArgumentDefaultsHelpFormatter would, when the row has a default."""
    shown = default_text(opt)
    if shown in _UNSHOWN_DEFAULTS:
        return opt.help
    return f"{opt.help} (default: {shown})"


def _describe_error(opt: Option, raw: object, exc: ValueError) -> str:
    return f"invalid {opt.flag_name} value {str(raw)!r}: {exc}"


def convert_value(opt: Option, raw: str) -> Any:
    """Convert one command-line or env string; raise UsageError naming the option."""
    try:
        return opt.convert(raw)
    except ValueError as exc:
        raise UsageError(_describe_error(opt, raw, exc)) from None


# --------------------------------------------------------------------------- argparse


def _terminal_columns() -> int:
    """shutil.get_terminal_size's width: $COLUMNS, else stdout's terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0 and sys.__stdout__ is not None:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, told its width so it does not import shutil to ask.

    argparse builds a formatter for every add_argument, and without a width it imports
    shutil (with bz2, lzma, fnmatch), which start_server's long-lived supervisor, which
    parses its command line with this module, would keep.
    """

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_terminal_columns() - 2)  # argparse's own margin


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (with a did-you-mean) instead of exiting."""

    def __init__(self, *args: Any, known: Sequence[str] = (), **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._known = list(known)

    def error(self, message: str) -> NoReturn:
        m = re.search(r"unrecognized arguments: (\S+)", message)
        if m:
            word = m.group(1).split("=", 1)[0]
            import difflib  # only for this error: it stays out of start_server's RSS

            close = difflib.get_close_matches(word, self._known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UsageError(f"unknown option {word!r}{hint}")
        raise UsageError(message)


class OptionParser:
    """Build an argparse parser from an option table and merge CLI, env and TOML.

    Methods for the caller: ``parse(argv) -> (cli_values, positionals)`` where
    ``cli_values`` holds only what the command line set; ``format_help()``.

    ``getopt_long`` also takes the spellings Perl's Getopt::Long accepts by default
    (``-version``, ``--vers``, ``-h``: ``start_server.common.getoptlong``); an ambiguous
    prefix may still mean one of the options named in ``prefer``.
    """

    def __init__(
        self,
        prog: str,
        options: Sequence[Option],
        *,
        usage: str,
        description: str,
        positionals: Sequence[tuple[str, str, str]] = (),
        allow_abbrev: bool = False,
        getopt_long: bool = False,
        prefer: Iterable[str] = (),
    ) -> None:
        self.prog = prog
        self.options = tuple(options)
        self._getopt_long = getopt_long
        self._prefer = frozenset(prefer)
        self._by_dest = {o.name: o for o in self.options}
        known = [s for o in self.options for s in o.spellings if s.startswith("--")]
        self._parser = _Parser(
            prog=prog,
            usage=usage,
            description=description,
            add_help=False,
            allow_abbrev=allow_abbrev,
            known=known,
            formatter_class=_Formatter,
        )
        for name, nargs, help_text in positionals:
            self._parser.add_argument(name, nargs=nargs, help=help_text)
        for opt in self.options:
            self._add(opt)

    def _add(self, opt: Option) -> None:
        p = self._parser
        names = [opt.flag_name, *opt.aliases, *opt.short]
        if opt.flag:
            p.add_argument(
                *names,
                dest=opt.name,
                action="store_true",
                default=argparse.SUPPRESS,
                help=help_text(opt).replace("%", "%%"),
            )
            if opt.negatable:
                base = opt.name.replace("_", "-")
                neg = ["--no-" + base]
                if not base.startswith(("enable-", "disable-")):
                    p.add_argument(
                        "--enable-" + base,
                        dest=opt.name,
                        action="store_true",
                        default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS,
                    )
                    neg.append("--disable-" + base)
                p.add_argument(
                    *neg,
                    dest=opt.name,
                    action="store_false",
                    default=argparse.SUPPRESS,
                    help=argparse.SUPPRESS,
                )
            return
        p.add_argument(
            *names,
            dest=opt.name,
            action="append" if opt.repeat else "store",
            default=argparse.SUPPRESS,
            metavar=opt.metavar or opt.name.upper(),
            help=help_text(opt).replace("%", "%%"),
        )

    def _getopt_words(self, argv: Sequence[str]) -> list[str]:
        """argv with Getopt::Long spellings written out in full (``getopt_long``)."""
        from start_server.common.getoptlong import SpellingError, expand_long_options

        names: dict[str, bool] = {}
        prefer: set[str] = set()
        for opt in self.options:
            for spelling in opt.spellings:
                if spelling.startswith("--"):
                    names[spelling[2:].lower()] = not opt.flag
                    if opt.name in self._prefer:
                        prefer.add(spelling[2:].lower())
        try:
            return expand_long_options(argv, names, prefer)
        except SpellingError as exc:
            raise UsageError(str(exc)) from None

    def parse(self, argv: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Parse argv; return (option values set on the CLI, converted; positionals)."""
        if self._getopt_long:
            argv = self._getopt_words(argv)
        ns = self._parser.parse_args(list(argv))
        raw = vars(ns)
        values: dict[str, Any] = {}
        positionals: dict[str, Any] = {}
        for key, val in raw.items():
            opt = self._by_dest.get(key)
            if opt is None:
                positionals[key] = val
            elif opt.flag:
                values[key] = bool(val)
            elif opt.repeat:
                values[key] = [convert_value(opt, v) for v in val]
            else:
                values[key] = convert_value(opt, val)
        return values, positionals

    def format_help(self) -> str:
        """The ``--help`` text, from the table."""
        return self._parser.format_help()


# --------------------------------------------------------------------------- env and TOML


def values_from_env(
    options: Iterable[Option], env: Mapping[str, str]
) -> dict[str, Any]:
    """Values of the rows that name a compatibility env var set (non-empty) in ``env``."""
    values: dict[str, Any] = {}
    for opt in options:
        if opt.env and env.get(opt.env, "") != "":
            raw = env[opt.env]
            try:
                values[opt.name] = (
                    to_bool(raw) if opt.flag else _convert_repeat(opt, [raw])
                )
            except ValueError as exc:
                raise ConfigError(
                    f"invalid environment variable {opt.env}={raw!r}: {exc}"
                ) from None
    return values


def _convert_repeat(opt: Option, raws: list[str]) -> Any:
    converted = [opt.convert(r) for r in raws]
    return converted if opt.repeat else converted[0]


def _coerce_toml(opt: Option, value: object) -> Any:
    """Turn a TOML value into the option's type, or raise ValueError."""
    if opt.flag:
        if isinstance(value, bool):
            return value
        raise ValueError("expected true or false")
    if opt.repeat:
        items = value if isinstance(value, list) else [value]
        return [_coerce_scalar(opt, v) for v in items]
    return _coerce_scalar(opt, value)


def _coerce_scalar(opt: Option, value: object) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a value, not a boolean")
    if isinstance(value, (int, float, str)):
        return opt.convert(str(value))
    raise ValueError(f"expected a string or number, not {type(value).__name__}")


def load_toml_table(path: str, table: str, options: Sequence[Option]) -> dict[str, Any]:
    """Read ``[table]`` of a TOML file into option values; unknown keys are errors.

    Keys are the long option names, with ``-`` or ``_``. Other tables are ignored, so one
    file can hold ``[start_server]`` and ``[starman]``.
    """
    # Imported here, not at the top: only --config needs them, and start_server's
    # long-lived supervisor keeps whatever it imports.
    import difflib

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on old Pythons only
        import tomli as tomllib

    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path!r}: {exc.strerror or exc}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path!r}: {exc}") from None
    section = doc.get(table, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [{table}] must be a table")
    by_name = {o.name: o for o in options if not o.cli_only}
    values: dict[str, Any] = {}
    for key, value in section.items():
        name = key.replace("-", "_")
        opt = by_name.get(name)
        if opt is None:
            close = difflib.get_close_matches(name, list(by_name), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0].replace('_', '-')!r}?)" if close else ""
            raise ConfigError(f"{path}: unknown key {key!r} in [{table}]{hint}")
        try:
            values[name] = _coerce_toml(opt, value)
        except ValueError as exc:
            raise ConfigError(
                f"{path}: invalid value {value!r} for key {key!r} in [{table}]: {exc}"
            ) from None
    return values


def merge(
    options: Sequence[Option],
    cli: Mapping[str, Any],
    env: Mapping[str, Any],
    toml: Mapping[str, Any],
) -> dict[str, Any]:
    """Every option's value by precedence: CLI > env var > TOML > default."""
    merged: dict[str, Any] = {}
    for opt in options:
        for source in (cli, env, toml):
            if opt.name in source:
                merged[opt.name] = source[opt.name]
                break
        else:
            default = opt.default
            merged[opt.name] = list(default) if isinstance(default, list) else default
    return merged

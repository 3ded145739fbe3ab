"""Perl's Getopt::Long spellings of long options, written out in full for argparse.

Getopt::Long (Perl's start_server parses with its defaults) takes one dash or two
(``-version``), any case (``--PORT``), and a unique prefix of a long name (``--vers``,
``-h``); the word after an option that takes a value is that value even if it starts
with a dash. Pure: argv in, argv out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

__all__ = ["SpellingError", "expand_long_options"]


class SpellingError(Exception):
    """An ambiguous prefix, or a value given to an option that takes none."""


def _resolve(
    typed: str, word: str, names: Collection[str], prefer: Collection[str]
) -> str | None:
    """The long name ``typed`` (lowercase, no dashes) means; None if it means none.

    An exact name wins; then a unique prefix. A prefix several names share is an error
    naming them, unless exactly one of them is in ``prefer``.
    """
    if typed in names:
        return typed
    matches = sorted(n for n in names if n.startswith(typed))
    if len(matches) > 1:
        preferred = [n for n in matches if n in prefer]
        if len(preferred) == 1:
            return preferred[0]
        listed = ", ".join("--" + n for n in matches)
        raise SpellingError(f"option {word!r} is ambiguous ({listed})")
    return matches[0] if matches else None


def expand_long_options(
    argv: Sequence[str], names: Mapping[str, bool], prefer: Collection[str] = ()
) -> list[str]:
    """argv with every Getopt::Long spelling written ``--name`` or ``--name=value``.

    ``names`` maps each long name (lowercase, without dashes) to whether it takes a
    value; ``prefer`` holds the names an ambiguous prefix may still mean (the program's
    Perl options, so that a prefix unique in Perl stays so when we add options).
    Stops at ``--`` or the first word that is not an option (the command starts
    there); a word that means no option is left for the parser to report.
    """
    words = list(argv)
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--" or not word.startswith("-") or word == "-":
            out += words[i - 1 :]
            break
        spelled, eq, value = word.partition("=")
        typed = spelled.lstrip("-").lower()
        # Three dashes, or nothing after the dashes, is no option for Getopt::Long.
        bare = spelled.startswith("---") or not typed
        name = None if bare else _resolve(typed, word, names, prefer)
        if name is None:
            out.append(word)
            continue
        takes_value = names[name]
        if not takes_value and eq:
            raise SpellingError(f"option --{name} takes no value: {word!r}")
        if takes_value and not eq and i < len(words):
            # Joined with = so that argparse does not take a dashed value for an option.
            eq, value = "=", words[i]
            i += 1
        out.append(f"--{name}{eq}{value}")
    return out

"""Writes docs/cli.md from the command line's own parser, so the page cannot drift from it.

``python scripts/cli_docs.py`` rewrites the page; ``--check`` fails when it is stale (the test
suite runs that). The page is built from the parser's actions rather than from ``--help``,
whose layout differs between Python versions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from jobattach.cli import _parser

PAGE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"

_INTRO = """\
# Command line

`jobattach` is installed with the package. Every command exits 0 on success, 1 on an error
(printed as `jobattach: error: ...` on stderr, naming the path or key and what to check) and 130
when interrupted; `--json` makes its output a JSON document on stdout. Credentials, the endpoint
and the region come from boto3's chain (see the README's configuration section).

This page is generated from the parser by `scripts/cli_docs.py`; a test checks it is current.
"""


def _commands(
    parser: argparse.ArgumentParser, summary: str = ""
) -> Iterator[tuple[argparse.ArgumentParser, str]]:
    """The parser, then each subcommand's, depth first, with the one-line help of each."""
    yield parser, summary
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield from _commands(sub, helps.get(name, ""))


def _argument(action: argparse.Action) -> str:
    """The argument an option takes, or the positional's name, as usage spells it."""
    if action.option_strings and action.nargs == 0:
        return ""
    if action.choices is not None and action.metavar is None:
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    if action.nargs in ("+", argparse.ONE_OR_MORE):
        return f"{metavar}..."
    return metavar


def _notes(action: argparse.Action) -> str:
    """The help text, with what usage does not show: choices, default, required, repeatable."""
    text = (action.help or "") % {"default": action.default}
    extra = []
    if action.choices is not None and action.metavar is not None:
        extra.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    if action.option_strings and action.required:
        extra.append("required")
    repeatable = isinstance(action, (argparse._AppendAction, argparse._ExtendAction))
    if repeatable and "repeat" not in text:
        extra.append("repeatable")
    shown = action.default not in (None, False, [], "", argparse.SUPPRESS)
    if action.option_strings and shown and "%(default)" not in (action.help or ""):
        extra.append(f"default `{action.default}`")
    return "; ".join(p for p in [text, *extra] if p)


def _section(parser: argparse.ArgumentParser, summary: str) -> list[str]:
    lines = [f"## `{parser.prog}`", ""]
    text = (summary or parser.description or "").rstrip(".")
    if text:
        lines += [text[0].upper() + text[1:] + ".", ""]
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            names = ", ".join(f"`{n}`" for n in action.choices)
            rows.append(f"| `{action.metavar}` | | one of {names} |")
            continue
        name = ", ".join(action.option_strings)
        argument = _argument(action)
        if not action.option_strings:
            name, argument = argument, ""
            if action.nargs == "?":
                name = f"[{name}]"
        cell = f"`{argument}`" if argument else ""
        notes = _notes(action).replace("|", "\\|")  # a table cell's bar
        rows.append(f"| `{name}` | {cell} | {notes} |")
    if rows:
        lines += ["| argument | takes | what it does |", "|---|---|---|", *rows, ""]
    return lines


def render() -> str:
    lines = [_INTRO]
    for parser, summary in _commands(_parser()):
        lines += _section(parser, summary)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv == ["--check"]:
        if PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE} is stale: run python scripts/cli_docs.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

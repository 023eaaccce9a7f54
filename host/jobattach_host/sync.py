"""Where a job's objects are and where its roots land: the component's rules, called from the
host."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Optional, Union

from . import engine
from .engine import (
    Destination,
    Layout,
    PathMappingRule,
    layout,
    manifest_root,
    outputs_prefix,
    queue_outputs,
    queue_outputs_prefix,
    select_outputs,
    session_root_name,
)
from .errors import ValidationError
from .sandbox import StrPath

__all__ = [
    "Destination",
    "Layout",
    "PathMappingRule",
    "check_holdable",
    "check_submittable",
    "destination_of",
    "layout",
    "manifest_root",
    "map_path",
    "outputs_prefix",
    "queue_outputs",
    "queue_outputs_prefix",
    "refused_entries",
    "select_outputs",
    "session_root_name",
    "this_platform",
]


def map_path(rules: Sequence[PathMappingRule], path: str) -> str | None:
    """``path`` mapped by the most specific rule (the rest joined with this system's
    separator), or None when none applies."""
    return engine.map_path(rules, path, os.sep)


def this_platform() -> str:
    """The component's name for this machine's kind of file system: ``windows``, ``macos``, or
    ``linux`` for every other POSIX system (a name there is bytes)."""
    if sys.platform == "win32":
        return "windows"
    return "macos" if sys.platform == "darwin" else "linux"


_SYSTEMS = {"linux": "Linux", "macos": "macOS", "windows": "Windows"}
#: Refused entries named in one message; any more are counted.
_NAMED = 1000
_LONG_PREFIX = "\\\\?\\"

#: What a download writes: a manifest's encoding (either format, all of it), or rows of
#: ``(path, mtime in µs or None)``.
Entries = Union[str, bytes, Sequence[tuple[str, Optional[int]]]]


def destination_of(root: StrPath) -> Destination:
    """The facts of the file system ``root`` is on (or would be on: the nearest folder that
    exists above it answers)."""
    text = os.path.abspath(os.fspath(root))
    if os.name == "nt":  # no pathconf: the component knows Windows' limits
        units = len(text.encode("utf-16-le", "surrogatepass")) // 2
        return Destination("windows", units, long_paths=text.startswith(_LONG_PREFIX))
    where = text
    while not os.path.isdir(where) and os.path.dirname(where) != where:
        where = os.path.dirname(where)
    try:
        length = len(os.fsencode(text))
    except UnicodeEncodeError:  # a lone surrogate for no byte: its name is refused elsewhere
        length = len(text.encode("utf-8", "surrogatepass"))
    path_max, name_max = _pathconf(where, "PC_PATH_MAX"), _pathconf(where, "PC_NAME_MAX")
    return Destination(this_platform(), length, path_max, name_max)


def _pathconf(where: str, name: str) -> int | None:
    try:
        return os.pathconf(where, name)
    except (OSError, ValueError):
        return None


def refused_entries(
    entries: Entries, destination: Destination | str | None = None, *, lengths_only: bool = False
) -> list[tuple[str, str]]:
    """What ``destination`` (a platform's name for a root of no length with its usual limits;
    default: this machine's) cannot hold of a download, in one call to the component: every
    refused entry's ``(path, reason)``. ``lengths_only`` for paths found on this system (a
    submission's): only their lengths and depth are checked."""
    if not isinstance(destination, Destination):
        destination = Destination(destination or this_platform())
    if isinstance(entries, bytes):
        text = entries.decode("ascii")  # a manifest's encoding is ASCII
    elif isinstance(entries, str):
        text = entries
    else:
        text = engine.entry_rows(entries)
    return engine.refused_entries(destination, text, lengths_only=lengths_only)


def check_holdable(downloads: Mapping[StrPath, Entries]) -> None:
    """Raises one ``ValidationError`` naming every entry, under every destination of
    ``downloads``, that its file system cannot hold (names, lengths, depth, times), and why.
    A download calls it before it writes anything."""
    _check(downloads, "of the files to download cannot be written on", "downloaded")


def check_submittable(roots: Mapping[str, Sequence[str]]) -> None:
    """Raises one ``ValidationError`` naming every path (``/``-separated), below each root of
    ``roots``, that a download to that root on this system could not hold: too long, too
    deep. A submission calls it before it hashes or sends anything."""
    rows: dict[StrPath, Entries] = {root: [(p, None) for p in ps] for root, ps in roots.items()}
    what = "of the paths to submit could not be downloaded to their root on"
    _check(rows, what, "sent", lengths_only=True)


def _check(
    downloads: Mapping[StrPath, Entries], what: str, done: str, *, lengths_only: bool = False
) -> None:
    refused = [
        (os.path.join(dest, path), why)
        for dest, entries in downloads.items()
        for path, why in refused_entries(entries, destination_of(dest), lengths_only=lengths_only)
    ]
    if not refused:
        return
    # Paths as JSON spells them: a control character or a byte that is not UTF-8 shows.
    named = "; ".join(f"{json.dumps(path)} ({why})" for path, why in refused[:_NAMED])
    more = f"; and {len(refused) - _NAMED} more" if len(refused) > _NAMED else ""
    raise ValidationError(
        f"{len(refused)} {what} {_SYSTEMS[this_platform()]}, so nothing was {done}: {named}{more}"
    )

"""How long and how deep a path this system can hold, checked before anything moves.

A manifest may name paths the destination cannot hold; writing them would fail midway, with
other files already written. So downloads and submissions refuse them first, naming each:

- the whole path, as the system counts it, must be shorter than ``PATH_MAX`` (which counts the
  terminating NUL): ``os.pathconf(..., "PC_PATH_MAX")`` where it answers (4,096 bytes on Linux,
  1,024 on macOS), else 4,096; on Windows 260 UTF-16 units (``MAX_PATH``), or 32,767 when the
  destination is given with the ``\\\\?\\`` long-path prefix;
- each name at most ``NAME_MAX`` (``PC_NAME_MAX``; 255 bytes, or 255 UTF-16 units on Windows);
- at most ``MAX_DEPTH`` levels below the destination's root (the system sets no such limit of
  its own, but deeper trees break the tools that walk them: Python's ``Path.mkdir(parents=True)``,
  which the official downloader uses, recurses once a level and fails near 1,000).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple

from .errors import ValidationError

#: Levels of folders a path may have below its root.
MAX_DEPTH = 1_000
#: Where ``os.pathconf`` does not answer (the POSIX values Linux uses).
_PATH_MAX, _NAME_MAX = 4_096, 255
_WINDOWS_PATH_MAX, _WINDOWS_LONG_PATH_MAX = 260, 32_767
_LONG_PREFIX = "\\\\?\\"


class Limits(NamedTuple):
    """What one destination can hold: ``path`` and ``name`` count bytes (UTF-16 units on
    Windows), ``path`` with the terminating NUL, as ``PATH_MAX`` does."""

    path: int
    name: int
    depth: int = MAX_DEPTH


def limits_of(root: str | os.PathLike[str]) -> Limits:
    """The limits of the file system ``root`` is on (or would be on: the nearest folder that
    exists above it answers)."""
    text = os.fspath(root)
    if os.name == "nt":
        long = text.startswith(_LONG_PREFIX)
        return Limits(_WINDOWS_LONG_PATH_MAX if long else _WINDOWS_PATH_MAX, _NAME_MAX)
    where = os.path.abspath(text)
    while not os.path.isdir(where) and os.path.dirname(where) != where:
        where = os.path.dirname(where)
    return Limits(
        _pathconf(where, "PC_PATH_MAX", _PATH_MAX), _pathconf(where, "PC_NAME_MAX", _NAME_MAX)
    )


def _pathconf(where: str, name: str, default: int) -> int:
    try:
        value = os.pathconf(where, name)
    except (OSError, ValueError):
        return default
    return value if value > 0 else 1 << 30  # -1: no limit


def _size(text: str) -> int:
    if text.isascii():
        return len(text)
    if os.name == "nt":
        return len(text.encode("utf-16-le", "surrogatepass")) // 2
    try:
        return len(os.fsencode(text))
    except UnicodeEncodeError:  # a lone surrogate for no byte: refused as a name elsewhere
        return len(text.encode("utf-8", "surrogatepass"))


# TODO(component): a rule about a manifest's paths, which belongs with the download plan's
# other rules; here until the component takes it.
def too_long(dest_root: str | os.PathLike[str], rel_paths: Iterable[str]) -> list[str]:
    """Those of ``rel_paths`` (``/``-separated, below ``dest_root``) this system cannot hold
    there: too long a path or name, or too deep (see the module's doc)."""
    root = os.path.abspath(os.fspath(dest_root))
    limit = limits_of(root)
    base = _size(root) + 1  # the separator after it
    refused = []
    for rel in rel_paths:
        # Most paths are short ASCII: every limit is then plainly met, without looking closer.
        if rel.isascii() and base + len(rel) < limit.path and len(rel) <= limit.name:
            continue
        names = rel.split("/")
        if (
            base + _size(rel) >= limit.path
            or len(names) > limit.depth
            or max(map(_size, names)) > limit.name
        ):
            refused.append(rel)
    return refused


def check_fits(dest_root: str | os.PathLike[str], rel_paths: Iterable[str]) -> None:
    """Raises ``ValidationError`` naming every path of ``rel_paths`` that :func:`too_long`
    refuses below ``dest_root``."""
    root = os.fspath(dest_root)
    refused = too_long(root, rel_paths)
    if refused:
        raise refusal([os.path.join(root, p) for p in refused], limits_of(root))


def refusal(paths: list[str], limit: Limits) -> ValidationError:
    """The error naming ``paths``, which ``limit`` refuses."""
    unit = "UTF-16 units" if os.name == "nt" else "bytes"
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    return ValidationError(
        f"{len(paths)} path{'s are' if len(paths) > 1 else ' is'} too long or too deep for this"
        f" system (a path under {limit.path} {unit}, names of at most {limit.name},"
        f" {limit.depth} levels below the root): {shown}; map the root to a shorter place, or"
        " shorten the paths"
    )

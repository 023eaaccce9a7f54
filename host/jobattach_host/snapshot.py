"""The snapshot plan: which files of a root go into a manifest, as the component decides."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Union

from . import engine
from .host_files import list_paths
from .sandbox import Instance, StrPath, instance_for

#: Glob patterns: several, one, or None for none.
Patterns = Union[Sequence[str], str, None]


def patterns(value: Patterns) -> list[str]:
    """``value`` as a list of patterns (a lone string is one pattern, not its characters)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def plan_options(
    root: StrPath, s: Instance, include: Patterns, exclude: Patterns, format: str | None
) -> engine.SnapshotOptions:
    """The component's snapshot options for ``root``, granted by ``s``."""
    top = os.fspath(s.host_dirs[s.roots[0]])
    given = {os.path.abspath(root), os.path.abspath(top), os.path.realpath(top)}
    return engine.SnapshotOptions(
        include=patterns(include),
        exclude=patterns(exclude),
        format=format,
        # Where absolute symlinks into the root point: the root as given, and resolved.
        # POSIX paths only: the component reads link texts as /-separated paths.
        host_roots=sorted(given) if os.sep == "/" else [],
    )


class PlannedFile(NamedTuple):
    """A file the manifest will hold (a tuple: ten thousand are made in 1 ms, not 6)."""

    path: str
    size: int
    #: The manifest's mtime: integer microseconds, rounded down.
    mtime: int
    mtime_ns: int
    ctime_ns: int
    #: Recorded as runnable (newer format only).
    runnable: bool
    #: Hash in chunks of this many bytes (newer format, large files), or 0 for one digest.
    chunk: int
    #: Where the content is read when not at ``path``: the file an absolute symlink leads to.
    source: str | None


@dataclass(frozen=True)
class Plan:
    files: list[PlannedFile]
    #: Symlinks kept as such (newer format): path and root-relative target.
    symlinks: list[tuple[str, str]]
    #: Directories to list (newer format).
    dirs: list[str]
    #: Paths left out, by reason (``symlink-outside-root``, ``empty-directory``, ...).
    skipped: dict[str, list[str]]
    #: Files dropped by the include and exclude patterns.
    excluded: int


def plan(
    root: StrPath,
    *,
    include: Patterns = (),
    exclude: Patterns = (),
    format: str = "v2023-03-03",
    only: Sequence[str] | None = None,
) -> Plan:
    """Lists ``root`` and applies the engine's snapshot rules for ``format``, in one call.

    With ``only``, just those ``/``-separated paths below ``root`` are listed (a job's inputs).
    """
    s = instance_for(root)
    options = plan_options(root, s, include, exclude, format)
    listing = None if only is None else list_paths(s.host_dirs[s.roots[0]], list(only))
    doc = engine.plan_snapshot(s, options, listing)
    return Plan(
        files=[
            PlannedFile(path, size, us, int(ns), int(cns), runnable, chunk, source)
            for path, size, us, ns, cns, runnable, chunk, source in doc["files"]
        ],
        symlinks=[(path, target) for path, target in doc["symlinks"]],
        dirs=doc["dirs"],
        skipped=doc["skipped"],
        excluded=doc["excluded"],
    )

"""Planning a job's submission: the host finds what each path is; the component decides."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from . import engine
from .errors import FileAccessError
from .sync import check_submittable


@dataclass(frozen=True)
class AssetRootGroup:
    """Paths of one asset root: inputs to upload, output directories, references (relative)."""

    root: str
    location: str | None
    inputs: list[str]
    outputs: list[str]
    references: list[str]


@dataclass(frozen=True)
class Grouping:
    groups: list[AssetRootGroup]
    #: Inputs that did not exist, kept as references.
    missing: list[str]
    #: Paths left out because they are under a SHARED location.
    skipped_shared: int


def _kind(path: str) -> str:
    """``file``, ``directory`` or ``missing``; ``too-long`` for a path the system refuses by its
    length. Another error (a folder that may not be searched, a loop of links) raises
    ``FileAccessError`` naming the path."""
    try:
        return "directory" if stat.S_ISDIR(os.stat(path).st_mode) else "file"
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            return "too-long"
        raise FileAccessError(f"cannot read: {e.strerror}", path=path) from e


def _absolute(path: str, cwd: str) -> str:
    # os.path.abspath, with the working directory read once rather than once a path. Not
    # resolved: symlinked directories keep the names the user gave (as the official code).
    return os.path.normpath(os.path.join(cwd, path))


def group_paths(
    inputs: Iterable[str | os.PathLike[str]],
    outputs: Iterable[str | os.PathLike[str]] = (),
    references: Iterable[str | os.PathLike[str]] = (),
    *,
    locations: Iterable[tuple[str, str, str]] = (),
    require_paths_exist: bool = False,
) -> Grouping:
    """Groups paths into asset roots as the official submitter does. ``locations`` are
    ``(name, path, "LOCAL"|"SHARED")``; raises ``ValidationError`` naming every unusable input
    (those too long or too deep for this system included: ``sync.check_submittable``), and
    ``FileAccessError`` for an input that cannot be looked at."""
    cwd = os.getcwd()
    absolute_inputs = [_absolute(os.fspath(p), cwd) for p in inputs]
    kinds = [_kind(p) for p in absolute_inputs]
    request = engine.GroupRequest(
        style="windows" if os.name == "nt" else "posix",
        inputs=list(zip(absolute_inputs, kinds)),
        outputs=[_absolute(os.fspath(p), cwd) for p in outputs],
        references=[_absolute(os.fspath(p), cwd) for p in references],
        locations=list(locations),
        require_paths_exist=require_paths_exist,
    )
    doc = engine.group(request)
    groups = [
        AssetRootGroup(g["root"], g["location"], g["inputs"], g["outputs"], g["references"])
        for g in doc["groups"]
    ]
    # What a download below a root of this length could not hold either (an output folder may
    # be the root itself, no path below it).
    below: dict[str, list[str]] = {}
    for g in groups:
        below.setdefault(g.root, []).extend(
            p.replace(os.sep, "/") for p in g.inputs + g.outputs if p
        )
    check_submittable(below)
    return Grouping(
        groups=groups,
        missing=doc["missing"],
        skipped_shared=doc["skipped_shared"],
    )

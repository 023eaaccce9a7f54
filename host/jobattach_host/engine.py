"""The one layer that calls the engine component: typed Python functions over its WIT exports.

Everything else in the host and in ``jobattach`` calls these, never the component itself.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, get_args

from wasmtime import component as wc

from .errors import ValidationError
from .sandbox import session_for

# --- Downloads: the plan, output patterns and internal names (wit/download.wit) -------------

#: What to do with a local file that exists and differs from the manifest (``conflict-policy``).
ConflictPolicy = Literal["overwrite", "skip", "error"]
CONFLICT_POLICIES: tuple[ConflictPolicy, ...] = get_args(ConflictPolicy)

#: The kinds of names a download gives its own files (``internal-kind``).
InternalKind = Literal["staging", "temporary"]


def conflict_policy(value: str) -> ConflictPolicy:
    """``value`` as a conflict policy; a ``ValidationError`` naming the choices otherwise."""
    for policy in CONFLICT_POLICIES:
        if value == policy:
            return policy
    raise ValidationError(f"on_conflict must be one of {', '.join(CONFLICT_POLICIES)}")


#: What stands at a manifest path: path, kind (``"f"`` a regular file), size, mtime in µs.
Found = tuple[str, str, int, int]


@dataclass(frozen=True)
class DownloadDestination:
    """One destination of a download (the WIT ``destination``)."""

    #: The merged v2023-03-03 manifest landing there, encoded.
    manifest: str
    #: What stands at the manifest's paths, as found without following symlinks.
    found: Sequence[Found]
    #: The folder's own path and a separator: a manifest path after it is what people see.
    shown: str
    #: The digests of the files :func:`download_plan` asked to hash here, in its order.
    digests: Sequence[str] | None = None


class Placement(NamedTuple):
    """A file to put in place: ``copy`` when another place takes the downloaded file itself."""

    path: str
    digest: str
    mtime_us: int
    copy: bool


@dataclass(frozen=True)
class DestinationPlan:
    #: Each distinct content to download once, ``(digest, size)``.
    contents: list[tuple[str, int]]
    #: Every file to put in place, in path order.
    places: list[Placement]


@dataclass(frozen=True)
class DownloadPlan:
    """What a download does, decided by the component (the WIT ``download-plan``)."""

    files: int
    bytes: int
    unchanged_files: int
    downloaded_files: int
    downloaded_bytes: int
    #: Distinct contents to download over all destinations, and their bytes.
    contents: int
    content_bytes: int
    #: The shown paths of the files that differed, under ``overwritten`` or ``skipped``.
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    #: One per destination, in the order given.
    destinations: list[DestinationPlan] = field(default_factory=list)


def _record(**fields: Any) -> wc.Record:
    """A WIT record of ``fields`` (``_`` in a name stands for WIT's ``-``)."""
    r = wc.Record()
    for name, value in fields.items():
        setattr(r, name.replace("_", "-"), value)
    return r


@dataclass(frozen=True)
class HashFirst:
    """The digests a plan needs first: per destination, the ``(path, size)`` of the found
    files whose digest decides (regular files of their entry's size and mtime)."""

    files: list[list[tuple[str, int]]]


def _destination(d: DownloadDestination) -> wc.Record:
    digests = None if d.digests is None else json.dumps(list(d.digests))
    return _record(
        manifest=d.manifest,
        found=json.dumps(list(d.found)),
        digests=digests,
        shown=json.dumps(d.shown),  # a path need not be Unicode (a lone surrogate crosses)
    )


def download_plan(
    destinations: Sequence[DownloadDestination], policy: ConflictPolicy
) -> DownloadPlan | HashFirst:
    """The download to ``destinations``, or the files to hash first (then plan again with
    their digests); under ``"error"``, files that differ are refused with a
    ``ValidationError`` naming them."""
    given = [_destination(d) for d in destinations]
    outcome: Any = session_for().call("download", "plan", given, policy)
    # wasmtime-py gives a variant's payload untagged when the cases' Python types differ.
    if isinstance(outcome, wc.Variant):
        outcome = outcome.payload
    if isinstance(outcome, list):  # hash
        return HashFirst([[(p, size) for p, size in json.loads(rows)] for rows in outcome])
    r = outcome
    bulk = json.loads(r.plan)
    return DownloadPlan(
        files=r.files,
        bytes=r.bytes,
        unchanged_files=getattr(r, "unchanged-files"),
        downloaded_files=getattr(r, "downloaded-files"),
        downloaded_bytes=getattr(r, "downloaded-bytes"),
        contents=r.contents,
        content_bytes=getattr(r, "content-bytes"),
        conflicts=bulk["conflicts"],
        destinations=[
            DestinationPlan(
                contents=[(digest, size) for digest, size in d["contents"]],
                places=[Placement(*p) for p in d["places"]],
            )
            for d in bulk["destinations"]
        ],
    )


def output_patterns(directories: Sequence[str], *, windows: bool) -> list[str] | None:
    """Snapshot include patterns for every file below a root's output ``directories`` (None:
    the whole root). A lone surrogate (a name byte that is not UTF-8) becomes U+FFFD, as the
    snapshot's own patterns read it."""
    given = [_lossy(d) for d in directories]
    found = session_for().call(
        "download", "output-patterns", given, "windows" if windows else "posix"
    )
    return None if found is None else list(found)


def internal_name(kind: InternalKind) -> str:
    """A fresh name of ``kind`` for a download's own file (random each call)."""
    return str(session_for().call("download", "internal-name", kind, secrets.token_bytes(8)))


def internal_kinds(names: Sequence[str]) -> list[InternalKind | None]:
    """Which kind of internal name each of ``names`` has the shape of, if any. A name that is
    not Unicode (a byte that is not UTF-8, as a lone surrogate) is no internal name, and
    cannot cross as a WIT string."""
    sendable = [n for n in names if _unicode(n)]
    found = iter(session_for().call("download", "internal-kinds", sendable) if sendable else ())
    return [next(found) if _unicode(n) else None for n in names]


def _lossy(text: str) -> str:
    return text if _unicode(text) else re.sub("[\ud800-\udfff]", "\ufffd", text)


def _unicode(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

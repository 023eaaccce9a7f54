"""The ``Manifest`` type: an immutable v2023-03-03 manifest, encoded by the component.

Python never applies the format's rules: decoding and encoding both go through the
component's ``canonicalize``, and the manifest crosses the boundary as one ASCII string.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobattach_host import session_for

VERSION = "2023-03-03"
HASH_ALG = "xxh128"


@dataclass(frozen=True)
class ManifestEntry:
    """One file: its root-relative ``/``-separated path, xxh128, size and mtime (µs)."""

    path: str
    hash: str
    size: int
    mtime: int


@dataclass(frozen=True, eq=False)
class Manifest:
    """A validated manifest. Build one with :meth:`decode`, :meth:`from_entries` or
    :func:`jobattach.create_manifest`."""

    entries: tuple[ManifestEntry, ...]
    _encoded: str = field(repr=False)
    _hash: str = field(repr=False)

    version: str = VERSION
    hash_alg: str = HASH_ALG

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    @classmethod
    def decode(cls, data: bytes | str) -> Manifest:
        """Decodes and validates manifest bytes; raises ``ValidationError`` naming the problem."""
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return cls._from_component(text)

    @classmethod
    def from_entries(cls, entries: Iterable[ManifestEntry]) -> Manifest:
        """A manifest of these entries (in any order), validated by the component."""
        items = list(entries)
        doc = {
            "hashAlg": HASH_ALG,
            "manifestVersion": VERSION,
            "paths": [vars(e) for e in items],
            "totalSize": sum(e.size for e in items),
        }
        # ensure_ascii keeps lone surrogates (names that are not UTF-8) transportable.
        return cls._from_component(json.dumps(doc, ensure_ascii=True))

    @classmethod
    def _from_component(cls, text: str) -> Manifest:
        encoded, digest = session_for().call("manifest", "canonicalize", text)
        return cls._from_canonical(str(encoded), str(digest))

    @classmethod
    def _from_canonical(cls, encoded: str, digest: str) -> Manifest:
        rows = json.loads(encoded)["paths"]
        entries = tuple(ManifestEntry(e["path"], e["hash"], e["size"], e["mtime"]) for e in rows)
        return cls(entries, encoded, digest)

    def encode(self) -> bytes:
        """The exact bytes the official encoder writes (ASCII, no trailing newline)."""
        return self._encoded.encode("ascii")

    def hash(self) -> str:
        """xxh3-128 of :meth:`encode`: the ``inputManifestHash``."""
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Manifest) and self._encoded == other._encoded

    def __hash__(self) -> int:
        return hash(self._encoded)

    def __len__(self) -> int:
        return len(self.entries)


def decode_manifest(data: bytes | str) -> Manifest:
    """Same as :meth:`Manifest.decode`."""
    return Manifest.decode(data)


@dataclass(frozen=True)
class ManifestDiff:
    """What changed between two manifests, or between a manifest and a directory.

    In a diff against a directory, ``hash`` of the new side is empty where nothing was hashed.
    """

    added: tuple[ManifestEntry, ...]
    modified: tuple[tuple[ManifestEntry, ManifestEntry], ...]
    deleted: tuple[ManifestEntry, ...]
    unchanged: int

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.deleted)

    def as_dict(self) -> dict[str, object]:
        return {
            "added": [vars(e) for e in self.added],
            "modified": [{"old": vars(o), "new": vars(n)} for o, n in self.modified],
            "deleted": [vars(e) for e in self.deleted],
            "unchanged": self.unchanged,
        }

    @classmethod
    def _from_json(cls, text: str) -> ManifestDiff:
        doc = json.loads(text)

        def entry(e: dict[str, Any]) -> ManifestEntry:
            return ManifestEntry(e["path"], e["hash"] or "", e["size"], e["mtime"])

        return cls(
            added=tuple(map(entry, doc["added"])),
            modified=tuple((entry(c["old"]), entry(c["new"])) for c in doc["modified"]),
            deleted=tuple(map(entry, doc["deleted"])),
            unchanged=doc["unchanged"],
        )


def diff_manifests(old: Manifest, new: Manifest) -> ManifestDiff:
    """Added, modified (size or hash changed) and deleted entries from ``old`` to ``new``."""
    text = session_for().call("manifest", "diff", old._encoded, new._encoded)
    return ManifestDiff._from_json(text)


def diff_directory(
    manifest: Manifest,
    root: str | os.PathLike[str],
    *,
    by_hash: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> ManifestDiff:
    """What changed in ``root`` since ``manifest``: by size and mtime, or by hash on request."""
    s = session_for(root)
    options = json.dumps({"include": list(include), "exclude": list(exclude)})
    text = s.call("snapshot", "diff", s.roots[0], manifest._encoded, options, by_hash)
    return ManifestDiff._from_json(text)


def merge_manifests(manifests: Sequence[Manifest]) -> Manifest:
    """One manifest of a root from several, later ones winning for a shared path."""
    encoded, digest = session_for().call("manifest", "merge", [m._encoded for m in manifests])
    return Manifest._from_canonical(str(encoded), str(digest))

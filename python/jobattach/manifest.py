"""The ``Manifest`` type: an immutable v2023-03-03 manifest, encoded by the component.

Python never applies the format's rules: decoding and encoding both go through the
component's ``canonicalize``, and the manifest crosses the boundary as one ASCII string.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

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
        rows = json.loads(encoded)["paths"]
        entries = tuple(ManifestEntry(e["path"], e["hash"], e["size"], e["mtime"]) for e in rows)
        return cls(entries, str(encoded), str(digest))

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

"""The ``Manifest`` type: an immutable manifest of either format, encoded by the component.

Python never applies the formats' rules: decoding, building and converting all go through
the component, and a manifest crosses the boundary as one ASCII string plus a plain view of
its entries.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from jobattach_host import ValidationError, engine, instance_for
from jobattach_host.choices import V2023 as V2023  # the format names, defined with the options
from jobattach_host.choices import V2025_DIFF as V2025_DIFF
from jobattach_host.choices import V2025_SNAPSHOT as V2025_SNAPSHOT
from jobattach_host.choices import ManifestFormat, check_choice
from jobattach_host.snapshot import Patterns, patterns, plan_options

HASH_ALG: Final = "xxh128"
#: Marks a Manifest made from what the component returned.
_COMPONENT = object()


@dataclass(frozen=True)
class ManifestEntry:
    """One file: its root-relative ``/``-separated path, xxh128, size and mtime (µs).

    The newer format adds the rest: a file over 256 MiB has ``chunkhashes`` instead of a
    ``hash``, a symlink has its root-relative target in ``symlink`` (and no hash, size or
    mtime), ``runnable`` marks executables, and a diff manifest marks deletions.
    """

    path: str
    hash: str | None
    size: int | None
    mtime: int | None
    runnable: bool = False
    chunkhashes: tuple[str, ...] | None = None
    symlink: str | None = None
    deleted: bool = False

    def _view(self) -> dict[str, object]:
        view: dict[str, object] = {"path": self.path}
        for key in ("hash", "size", "mtime", "symlink"):
            if getattr(self, key) is not None:
                view[key] = getattr(self, key)
        if self.chunkhashes is not None:
            view["chunkhashes"] = list(self.chunkhashes)
        if self.runnable:
            view["runnable"] = True
        if self.deleted:
            view["deleted"] = True
        return view

    @classmethod
    def _from_view(cls, v: dict[str, Any]) -> ManifestEntry:
        chunks = v.get("chunkhashes")
        return cls(
            v["path"],
            v.get("hash"),
            v.get("size"),
            v.get("mtime"),
            runnable=v.get("runnable", False),
            chunkhashes=tuple(chunks) if chunks is not None else None,
            symlink=v.get("symlink"),
            deleted=v.get("deleted", False),
        )


@dataclass(frozen=True)
class ManifestDir:
    """A directory of a newer-format manifest (deleted only in a diff manifest)."""

    path: str
    deleted: bool = False


@dataclass(frozen=True, eq=False)
class Manifest:
    """A validated manifest. Build one with :meth:`decode`, :meth:`from_entries` or
    :func:`jobattach.create_manifest`."""

    #: ``v2023-03-03``, ``v2025-12-snapshot`` or ``v2025-12-diff``.
    format: ManifestFormat
    #: The entries as the component returned them; :attr:`entries` makes objects of them
    #: on first use, so a large manifest decodes without building them unless asked.
    _rows: tuple[dict[str, Any], ...] = field(repr=False)
    dirs: tuple[ManifestDir, ...] = field(default=())
    #: The hash of the manifest a diff manifest applies to.
    parent_hash: str | None = None
    _encoded: str = field(default="", repr=False)
    _hash: str = field(default="", repr=False)

    hash_alg: str = HASH_ALG
    _made_by: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self._made_by is not _COMPONENT:  # only what the component validated is a Manifest
            raise TypeError("make a Manifest with Manifest.decode, from_entries or create_manifest")

    @functools.cached_property
    def entries(self) -> tuple[ManifestEntry, ...]:
        """The files (and, in the newer format, symlinks), sorted as the format sorts them."""
        if self.format == V2023:
            return tuple(
                ManifestEntry(r["path"], r["hash"], r["size"], r["mtime"]) for r in self._rows
            )
        return tuple(ManifestEntry._from_view(r) for r in self._rows)

    @property
    def version(self) -> str:
        """Same as :attr:`format`."""
        return self.format

    @property
    def total_size(self) -> int:
        """The sum of the entries' sizes (the manifest's ``totalSize``)."""
        return sum(r.get("size") or 0 for r in self._rows)

    @classmethod
    def decode(cls, data: bytes | str) -> Manifest:
        """Decodes and validates manifest bytes of either format; raises ``ValidationError``
        naming the problem."""
        try:
            # A WIT string carries Unicode only: bytes must be UTF-8, text free of lone
            # surrogates (manifests escape those, and every other non-ASCII unit, as \uXXXX).
            text = data.decode("utf-8") if isinstance(data, bytes) else data
            text.encode("utf-8")
        except (UnicodeDecodeError, UnicodeEncodeError) as e:
            why = f"malformed manifest: not UTF-8 text ({e.reason} at position {e.start})"
            raise ValidationError(why, kind="invalid-input") from None
        return cls._from_canonical(engine.canonicalize(text))

    @classmethod
    def from_entries(
        cls,
        entries: Iterable[ManifestEntry],
        *,
        format: ManifestFormat = V2023,
        dirs: Iterable[ManifestDir] = (),
        parent_hash: str | None = None,
    ) -> Manifest:
        """A manifest of these entries (in any order), validated by the component;
        ``dirs`` and ``parent_hash`` are for the newer format's manifests."""
        check_choice("format", format, ManifestFormat)
        return cls._build(format, [e._view() for e in entries], dirs, parent_hash)

    @classmethod
    def _build(
        cls,
        format: str,
        files: list[dict[str, object]],
        dirs: Iterable[ManifestDir] = (),
        parent_hash: str | None = None,
    ) -> Manifest:
        """A manifest of entries given as views (``ManifestEntry._view``'s form)."""
        view = {"parent": parent_hash, "dirs": [[d.path, d.deleted] for d in dirs], "files": files}
        # ensure_ascii keeps lone surrogates (names that are not UTF-8) transportable.
        text = json.dumps(view, ensure_ascii=True)
        return cls._from_canonical(engine.build_manifest(format, text))

    @classmethod
    def _from_canonical(cls, c: engine.Canonical) -> Manifest:
        if not c.entries:  # v2023-03-03: the encoding itself lists the entries
            rows = tuple(json.loads(c.encoded)["paths"])
            return cls(
                cast(ManifestFormat, c.format),
                rows,
                _encoded=c.encoded,
                _hash=c.hash,
                _made_by=_COMPONENT,
            )
        view = json.loads(c.entries)
        return cls(
            format=cast(ManifestFormat, c.format),
            _rows=tuple(view["files"]),
            dirs=tuple(ManifestDir(p, deleted) for p, deleted in view["dirs"]),
            parent_hash=view["parent"],
            _encoded=c.encoded,
            _hash=c.hash,
            _made_by=_COMPONENT,
        )

    def convert(self, format: ManifestFormat) -> Manifest:
        """This manifest in another format; ``ValidationError`` if anything would be lost."""
        check_choice("format", format, ManifestFormat)
        return Manifest._from_canonical(engine.convert_manifest(self._encoded, format))

    def encode(self) -> bytes:
        """The exact bytes the reference encoder writes (ASCII, no trailing newline)."""
        return self._encoded.encode("ascii")

    def hash(self) -> str:
        """xxh3-128 of :meth:`encode` (for v2023-03-03, the ``inputManifestHash``)."""
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Manifest) and self._encoded == other._encoded

    def __hash__(self) -> int:
        return hash(self._encoded)

    def __len__(self) -> int:
        return len(self._rows)


def decode_manifest(data: bytes | str) -> Manifest:
    """Same as :meth:`Manifest.decode`."""
    return Manifest.decode(data)


@dataclass(frozen=True)
class ManifestDiff:
    """What changed between two manifests, or between a manifest and a directory.

    In a diff against a directory, ``hash`` of the new side is None where nothing was hashed.
    """

    added: tuple[ManifestEntry, ...]
    modified: tuple[tuple[ManifestEntry, ManifestEntry], ...]
    deleted: tuple[ManifestEntry, ...]
    unchanged: int

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.deleted)

    def as_dict(self) -> dict[str, object]:
        """The differences as plain JSON-ready values (what ``manifest diff --json`` prints)."""
        return {
            "added": [e._view() for e in self.added],
            "modified": [{"old": o._view(), "new": n._view()} for o, n in self.modified],
            "deleted": [e._view() for e in self.deleted],
            "unchanged": self.unchanged,
        }

    @classmethod
    def _from_doc(cls, doc: dict[str, Any]) -> ManifestDiff:

        def entry(e: dict[str, Any]) -> ManifestEntry:
            return ManifestEntry(e["path"], e["hash"], e["size"], e["mtime"])

        return cls(
            added=tuple(map(entry, doc["added"])),
            modified=tuple((entry(c["old"]), entry(c["new"])) for c in doc["modified"]),
            deleted=tuple(map(entry, doc["deleted"])),
            unchanged=doc["unchanged"],
        )


def diff_manifests(old: Manifest, new: Manifest) -> ManifestDiff:
    """Added, modified (size or hash changed) and deleted entries from ``old`` to ``new``."""
    return ManifestDiff._from_doc(engine.diff_manifests(old._encoded, new._encoded))


def diff_directory(
    manifest: Manifest,
    root: str | os.PathLike[str],
    *,
    by_hash: bool = False,
    include: Patterns = (),
    exclude: Patterns = (),
) -> ManifestDiff:
    """What changed in ``root`` since ``manifest``: by size and mtime, or by hash on request."""
    s = instance_for(root)
    options = plan_options(root, s, include, exclude, None)
    return ManifestDiff._from_doc(engine.diff_tree(s, manifest._encoded, options, by_hash))


def merge_manifests(manifests: Sequence[Manifest]) -> Manifest:
    """One manifest of a root from several, later ones winning for a shared path."""
    return Manifest._from_canonical(engine.merge_manifests([m._encoded for m in manifests]))


def manifest_outputs(inputs: Manifest, current: Manifest) -> Manifest:
    """The entries of ``current`` that are new or whose mtime grew since ``inputs``."""
    return Manifest._from_canonical(engine.manifest_outputs(inputs._encoded, current._encoded))


def select_manifest(manifest: Manifest, include: Patterns = (), exclude: Patterns = ()) -> Manifest:
    """The entries of a v2023-03-03 ``manifest`` whose paths ``include`` matches (none: all)
    and ``exclude`` does not, by the snapshot's glob rules."""
    picked = engine.select_manifest(manifest._encoded, patterns(include), patterns(exclude))
    return Manifest._from_canonical(picked)

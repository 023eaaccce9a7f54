"""Snapshots: a manifest of a directory, byte for byte what the official encoder writes.

The component decides what goes in (``jobattach_host.snapshot.plan``) and hashes; digests of
unchanged files come from the persistent hash cache.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jobattach_host import hash_files
from jobattach_host.hash_cache import HashCache
from jobattach_host.snapshot import plan

from .manifest import Manifest, ManifestEntry


@dataclass(frozen=True)
class SnapshotResult:
    manifest: Manifest
    #: Paths not in the manifest, by reason: ``symlink-to-directory``, ``symlink-outside-root``,
    #: ``broken-symlink``, ``special-file``, ``empty-directory``, ``unsupported-name``.
    skipped: dict[str, list[str]]
    #: Files dropped by the include and exclude patterns.
    excluded: int
    #: Files whose digest was computed, and those served by the hash cache.
    hashed: int
    from_cache: int
    seconds: float


def create_manifest(
    root: str | os.PathLike[str],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    cache: HashCache | bool = True,
    workers: int | None = None,
) -> SnapshotResult:
    """A v2023-03-03 manifest of every regular file below ``root``, dotfiles included.

    ``include`` and ``exclude`` are glob patterns (``*``, ``?``, ``**``, ``[...]``; without
    a ``/`` they match file names anywhere). ``cache`` is a :class:`HashCache`, True for the
    default one, or False to hash everything.
    """
    t0 = time.perf_counter()
    top = Path(root).resolve()
    p = plan(top, include=include, exclude=exclude)
    keys = [(f.path, f.size, f.mtime_ns, f.ctime_ns) for f in p.files]
    store = HashCache() if cache is True else (cache or None)
    try:
        digests: list[str | None] = store.lookup(top, keys) if store else [None] * len(keys)
        missing = [i for i, d in enumerate(digests) if d is None]
        # Sizes from the listing spare a stat per file, and pin what the manifest records.
        sized = [(p.files[i].path, p.files[i].size) for i in missing]
        fresh = hash_files(top, sized, workers=workers)
        for i, digest in zip(missing, fresh):
            digests[i] = digest
        if store:
            store.store(top, [(keys[i], d) for i, d in zip(missing, fresh)])
    finally:
        if cache is True and store:
            store.close()
    manifest = Manifest.from_entries(
        ManifestEntry(f.path, str(d), f.size, f.mtime) for f, d in zip(p.files, digests)
    )
    return SnapshotResult(
        manifest=manifest,
        skipped=p.skipped,
        excluded=p.excluded,
        hashed=len(missing),
        from_cache=len(keys) - len(missing),
        seconds=time.perf_counter() - t0,
    )

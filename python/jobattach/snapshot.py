"""Snapshots: a manifest of a directory, byte for byte what the official encoder writes.

The component decides what goes in (``jobattach_host.snapshot.plan``), the hashing kernel
hashes it (``jobattach_host.hashing``); digests of unchanged files come from the persistent
hash cache.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from jobattach_host.choices import ManifestFormat, SkipReason, check_choice
from jobattach_host.errors import Cancelled, FileAccessError
from jobattach_host.hash_cache import HashCache
from jobattach_host.hashing import Digest, Item, digests
from jobattach_host.snapshot import Patterns, Plan, PlannedFile, plan
from jobattach_host.upload import Tally

from .manifest import V2023, Manifest, ManifestDir
from .progress import ProgressCallback, Reporter


@dataclass(frozen=True)
class SnapshotResult:
    """A snapshot's manifest, what it left out, and how its digests were found."""

    manifest: Manifest
    #: Paths not in the manifest, by reason: ``symlink-to-directory``, ``symlink-outside-root``,
    #: ``broken-symlink``, ``special-file``, ``empty-directory``, ``unsupported-name``.
    skipped: dict[SkipReason, list[str]]
    #: Files dropped by the include and exclude patterns.
    excluded: int
    #: Files whose digest was computed, and those whose digest the hash cache served.
    hashed_files: int
    cached_files: int
    #: Seconds the snapshot took.
    total_time: float


def create_manifest(
    root: str | os.PathLike[str],
    *,
    include: Patterns = (),
    exclude: Patterns = (),
    format: ManifestFormat = V2023,
    cache: HashCache | bool = True,
    workers: int | None = None,
    progress_callback: ProgressCallback | None = None,
) -> SnapshotResult:
    """A manifest of every regular file below ``root``, dotfiles included.

    ``format`` is ``v2023-03-03`` (symlinks to files inside the root are followed) or
    ``v2025-12-snapshot`` (symlinks kept as symlinks, directories listed, executables marked
    runnable, files over 256 MiB hashed in chunks). ``include`` and ``exclude`` are glob
    patterns, one or several (``*``, ``?``, ``**``, ``[...]``; without a ``/`` they match file
    names anywhere). ``cache`` is a :class:`HashCache`, True for the default one, or False to hash
    everything. ``workers`` is how many threads hash (default: one per core, at most eight).
    ``progress_callback`` gets a report at most ten times a second ("scanning",
    then "hashing"); returning False cancels with ``Cancelled`` (digests already computed are
    kept in the cache).
    """
    t0 = time.perf_counter()
    check_choice("format", format, ManifestFormat)
    report = Reporter(progress_callback)
    if not report("scanning", 0, 0, 0, 0):
        raise Cancelled("the snapshot was cancelled while scanning")
    top = Path(os.path.realpath(root))  # not resolve(), which raises on a loop of links
    # Listed as given, so absolute symlinks may name the root by that path or the resolved one.
    p = plan(os.path.abspath(root), include=include, exclude=exclude, format=format)
    size = sum(f.size for f in p.files)
    if not report("scanning", len(p.files), 0, size, 0):
        raise Cancelled("the snapshot was cancelled while scanning")
    tally = Tally(report.counts("hashing"), len(p.files), size) if progress_callback else None
    return snapshot_of_plan(
        top, p, format=format, cache=cache, workers=workers, started=t0, tally=tally
    )


def snapshot_of_plan(
    top: Path,
    p: Plan,
    *,
    format: ManifestFormat = V2023,
    cache: HashCache | bool = True,
    workers: int | None = None,
    started: float | None = None,
    tally: Tally | None = None,
) -> SnapshotResult:
    """Hashes what a plan holds (digests from the cache where they are still valid) and
    builds its manifest. ``tally`` counts the files and bytes done, those the cache served
    at once, the others batch by batch; once it is cancelled, ``Cancelled`` is raised."""
    t0 = time.perf_counter() if started is None else started
    keys = [(f.path, f.size, f.mtime_ns, f.ctime_ns, f.chunk) for f in p.files]
    store = HashCache(lenient=True) if cache is True else (cache or None)
    writing: Future[None] | None = None
    built = False
    try:
        found: list[Digest | None] = store.lookup(top, keys) if store else [None] * len(keys)
        missing = [i for i, d in enumerate(found) if d is None]
        # Sizes from the listing spare a stat per file, and pin what the manifest records.
        todo = [p.files[i] for i in missing]
        sources = [f.source or f.path for f in todo]
        items: list[Item] = [(src, f.size, f.chunk) for src, f in zip(sources, todo)]
        hashed: dict[int, Digest] = {}  # index in `missing` -> digest, batch by batch
        if tally:  # what the cache served is done at once
            served = [f for f, d in zip(p.files, found) if d is not None]
            tally.add(sum(f.size for f in served), files=len(served))

        def keep(start: int, batch: list[Digest]) -> None:
            hashed.update(zip(range(start, start + len(batch)), batch))
            if tally:
                tally.add(0, files=len(batch))  # their bytes were counted as they were hashed

        try:
            cancelled = tally.cancelled if tally else None
            count = (lambda n: tally.add(n, files=0)) if tally else None
            digests(
                top,
                items,
                workers=workers,
                done=keep,
                cancelled=cancelled,
                planned=True,
                hashed=count,
            )
        except FileAccessError as e:
            if e.kind != "permission-denied":
                raise
            # Name every file that cannot be read, not only the first one found: fixing
            # permissions one rerun at a time would be slow.
            raise _unreadable(top, sources, e) from None
        finally:
            # Kept even when a file failed the snapshot: a rerun hashes only what is left.
            # Written on a thread of its own while the manifest is built.
            if store:
                rows = [(keys[missing[j]], d) for j, d in sorted(hashed.items())]
                writing = _in_background(store.store, top, rows)
        for j, digest in hashed.items():
            found[missing[j]] = digest
        if tally and tally.cancelled.is_set():  # after the last batch began: nothing returned
            raise Cancelled("cancelled while hashing")
        # Views straight from the plan: a ManifestEntry per file would cost 6 µs each.
        views = [_view(f, d) for f, d in zip(p.files, found) if d is not None]
        views += [{"path": path, "symlink": target} for path, target in p.symlinks]
        manifest = Manifest._build(format, views, [ManifestDir(d) for d in p.dirs])
        built = True
    finally:
        failed = writing.exception() if writing is not None else None
        if cache is True and store:
            store.close()
        if failed is not None and built:  # else the error already on its way is the news
            raise failed
    return SnapshotResult(
        manifest=manifest,
        skipped=cast("dict[SkipReason, list[str]]", p.skipped),  # the component's reasons
        excluded=p.excluded,
        hashed_files=len(missing),
        cached_files=len(keys) - len(missing),
        total_time=time.perf_counter() - t0,
    )


def _in_background(fn: Callable[..., None], *args: object) -> Future[None]:
    """``fn(*args)`` on a thread of its own, which ends with it."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="jobattach-cache")
    try:
        return pool.submit(fn, *args)
    finally:
        pool.shutdown(wait=False)


def _unreadable(top: Path, paths: list[str], first: FileAccessError) -> FileAccessError:
    """``first`` with every other path of ``paths`` this process may not read added."""
    unique = dict.fromkeys(paths)  # two links may lead to one file
    others = [p for p in unique if p != first.path and not os.access(top / p, os.R_OK)]
    if not others:
        return first
    shown = ", ".join(others[:10]) + (f" and {len(others) - 10} more" if len(others) > 10 else "")
    why = f"{first.reason} (and {len(others)} more cannot be read: {shown})"
    return FileAccessError(why, kind=first.kind, path=first.path)


def _view(f: PlannedFile, digest: Digest) -> dict[str, object]:
    """The file's entry as ``ManifestEntry._view`` writes it."""
    view: dict[str, object] = {"path": f.path, "size": f.size, "mtime": f.mtime}
    if isinstance(digest, list):
        view["chunkhashes"] = digest
    else:
        view["hash"] = digest
    if f.runnable:
        view["runnable"] = True
    return view

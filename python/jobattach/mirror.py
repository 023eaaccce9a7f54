"""``sync(source, dest)``: mirror a directory to an S3 prefix or a folder on a host over SSH
(:mod:`jobattach.ssh`) or back, or to another directory, as rclone or s5cmd do.

Objects are stored under their paths relative to the source. The component plans (what to
copy, keep and delete); files move by path with boto3. Downloads, and copies between two
directories, land under a temporary name and are renamed into place with the source's
modification time, so an unchanged tree syncs with no transfer either way. Between two
directories every file is read through the handles of the source's folders and written
through those of the destination's, never through a symlink.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from jobattach_host import engine, hash_files
from jobattach_host.choices import Phase
from jobattach_host.destination import (
    Staging,
    Tree,
    copy_fds,
    is_staging,
    open_file,
    open_root,
    staging_names,
)
from jobattach_host.errors import (
    Cancelled,
    FileAccessError,
    FileChangedError,
    StorageError,
    ValidationError,
)
from jobattach_host.gcs_store import DIGEST_KEY, GcsConfig
from jobattach_host.host_files import list_tree
from jobattach_host.s3config import ClientOptions, S3Config
from jobattach_host.snapshot import Patterns, patterns
from jobattach_host.storage import Bucket, Sink, Transfer
from jobattach_host.sync import check_holdable
from jobattach_host.upload import Content, Tally, upload_unchanged

from .progress import ProgressCallback, Reporter
from .ssh import SshConfig
from .sync_paths import GcsPath, LocalPath, S3Path, SshPath, SyncPath, parse_path


@dataclass(frozen=True)
class SyncOptions:
    """How :func:`sync_with_options` mirrors; :func:`sync` takes the same as keywords."""

    #: Remove destination files the source lacks.
    delete: bool = False
    #: Plan and count, change nothing.
    dry_run: bool = False
    #: Glob patterns of the relative paths to keep (all when empty), and of those to leave
    #: out (``*``, ``?``, ``**``, ``[...]``; without a ``/`` they match file names anywhere).
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    #: Compare files of the same size by xxh3-128 instead of by time; uploads then record
    #: each object's digest in its metadata (``xxh128``) for later comparisons.
    by_hash: bool = False
    #: Credentials, endpoint and client options (default: boto3's chain).
    s3: S3Config = field(default_factory=S3Config)
    #: Credentials, endpoint and client options for ``gs://`` (default: the default chain).
    gcs: GcsConfig = field(default_factory=GcsConfig)
    #: How to reach and trust a host when a side is ``user@host:/path`` or ``ssh://...``.
    ssh: SshConfig = field(default_factory=SshConfig)
    #: Gets a report of the transfer ("uploading" or "downloading") at most ten times a
    #: second; returning False cancels it (:class:`Cancelled`): files already copied stay,
    #: nothing partial does.
    progress_callback: ProgressCallback | None = None


@dataclass(frozen=True)
class SyncStats:
    """What a :func:`sync` did (or, in a dry run, would do), counted as
    :mod:`jobattach.progress` says."""

    #: The source's files (those the patterns keep), and their bytes.
    total_files: int
    total_bytes: int
    #: Files copied (to be copied, in a dry run): missing, or different, at the destination.
    processed_files: int
    processed_bytes: int
    #: Files the destination holds already, unchanged.
    skipped_files: int
    skipped_bytes: int
    #: Destination files the source lacks, removed (``delete=True``).
    deleted_files: int
    #: Source paths no manifest-style relative path can carry, left alone.
    unsupported: list[str]
    #: True when nothing was changed (``dry_run=True``).
    dry_run: bool
    #: Seconds the sync took.
    total_time: float


def sync(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    delete: bool = False,
    dry_run: bool = False,
    include: Patterns = (),
    exclude: Patterns = (),
    by_hash: bool = False,
    s3: S3Config | None = None,
    gcs: GcsConfig | None = None,
    ssh: SshConfig | None = None,
    progress_callback: ProgressCallback | None = None,
) -> SyncStats:
    """Mirrors ``source`` to ``dest``, a local directory and ``s3://bucket/prefix`` either
    way, or two local directories, as ``rclone sync`` or ``s5cmd sync`` do (see the module's
    doc).

    Args:
        source: What to copy from: a local directory, ``s3://`` or ``gs://bucket/prefix``, or
            a folder on a host, ``user@host:/path`` or ``ssh://user@host:port/path``.
        dest: Where to copy to: a local directory, or (from a local one) an S3 or GCS prefix
            or a folder on a host.
        delete: Remove destination files the source lacks (refused when the source holds no
            files at all, which is more likely a mistyped source than a wish).
        dry_run: Plan and count, change nothing.
        include: Glob patterns (one, or several) of the relative paths to keep (all when
            empty).
        exclude: Glob patterns (one, or several) of the relative paths to leave out.
        by_hash: Compare files of the same size by xxh3-128 instead of by time.
        s3: Credentials, endpoint and client options (default: boto3's chain).
        gcs: The same for ``gs://bucket/prefix`` (default: the default credential chain).
        ssh: How to reach and trust the host of an SSH side (default: the agent, the
            user's known_hosts, strictly).
        progress_callback: Gets a :class:`ProgressReport` at most ten times a second;
            returning False cancels with ``Cancelled`` (files already copied stay, whole).

    Returns:
        What was copied, left alone and deleted.
    """
    options = SyncOptions(
        delete=delete,
        dry_run=dry_run,
        include=tuple(patterns(include)),
        exclude=tuple(patterns(exclude)),
        by_hash=by_hash,
        s3=s3 or S3Config(),
        gcs=gcs or GcsConfig(),
        ssh=ssh or SshConfig(),
        progress_callback=progress_callback,
    )
    return sync_with_options(source, dest, options)


def sync_with_options(
    source: str | os.PathLike[str], dest: str | os.PathLike[str], options: SyncOptions
) -> SyncStats:
    """:func:`sync` with its options gathered in a :class:`SyncOptions`."""
    t0 = time.perf_counter()
    src, dst = parse_path(source), parse_path(dest)
    if not isinstance(src, LocalPath) and not isinstance(dst, LocalPath):
        kinds = (type(src).__name__[: -len("Path")], type(dst).__name__[: -len("Path")])
        raise ValidationError(f"sync goes from or to a local directory, not {' to '.join(kinds)}")
    if isinstance(src, LocalPath) and not src.path.is_dir():
        raise FileAccessError("the source directory does not exist", path=str(src.path))
    if isinstance(src, LocalPath) and isinstance(dst, LocalPath):
        _refuse_overlap(src, dst)
    with contextlib.ExitStack() as stack:
        remote = None
        if not isinstance(src, LocalPath):
            remote = stack.enter_context(_remote(src, options, source=True))
        elif not isinstance(dst, LocalPath):
            remote = stack.enter_context(_remote(dst, options, source=False))
        return _mirror(src, dst, remote, options, t0)
    raise AssertionError("unreachable")  # pragma: no cover (mypy: with may swallow)


def _mirror(
    src: SyncPath, dst: SyncPath, remote: Remote | None, options: SyncOptions, t0: float
) -> SyncStats:
    """Plans with the component and carries the plan out, ``remote`` being the side that is
    not a local directory (None: both are)."""
    src_items, dst_items = _side_listing(src, remote), _side_listing(dst, remote)
    request = engine.MirrorRequest(
        source=[(p, s, m) for p, (s, m, _) in src_items.items()],
        dest=[(p, s, m) for p, (s, m, _) in dst_items.items()],
        delete=options.delete,
        by_hash=options.by_hash,
        include=patterns(options.include),
        exclude=patterns(options.exclude),
        # deleting files and keeping none is refused unless a dry run (names for its message)
        dry_run=options.dry_run,
        source_name=str(src),
        dest_name=str(dst),
    )
    plan = engine.plan_mirror(request)
    copy, gone, unchanged = plan.copy, plan.delete, plan.unchanged
    if isinstance(dst, LocalPath):  # what it will hold: refused before anything is written
        kept_paths = copy + unchanged + plan.compare
        check_holdable({dst.path: [(p, src_items[p][1]) for p in kept_paths]})
    digests: dict[str, str] = {}
    if options.by_hash:  # the component hashes local sides; the remote says what it knows
        local = src if isinstance(src, LocalPath) else dst
        assert isinstance(local, LocalPath)
        wanted = plan.compare + (copy if not isinstance(dst, LocalPath) else [])
        digests = dict(zip(wanted, hash_files(local.path, wanted)))
        if remote is not None:
            other = remote.digests(plan.compare)
        else:  # two directories: both sides hashed here
            assert isinstance(dst, LocalPath)
            other = dict(zip(plan.compare, hash_files(dst.path, plan.compare)))
        for p in plan.compare:
            (unchanged if other.get(p) == digests[p] else copy).append(p)
    if not options.dry_run:
        phase: Phase = (
            "copying"
            if remote is None
            else "uploading"
            if isinstance(src, LocalPath)
            else "downloading"
        )
        total = sum(src_items[p][0] for p in copy)
        tally = Tally(Reporter(options.progress_callback).counts(phase), len(copy), total)
        if isinstance(src, LocalPath) and isinstance(dst, LocalPath):
            _copy(src, dst, copy, src_items, tally)
        elif isinstance(src, LocalPath) and remote is not None:
            remote.upload(src, copy, digests, src_items, tally)
        elif isinstance(dst, LocalPath) and remote is not None:
            remote.download(dst, copy, src_items, tally)
        if tally.cancelled.is_set():
            raise Cancelled(f"the sync was cancelled while {phase}")
        if remote is not None and not isinstance(dst, LocalPath):
            remote.delete(gone)
        elif isinstance(dst, LocalPath):
            _delete_local(dst, gone)

    def size(paths: list[str]) -> int:
        return sum(src_items[p][0] for p in paths)

    return SyncStats(
        total_files=len(copy) + len(unchanged),
        total_bytes=size(copy) + size(unchanged),
        processed_files=len(copy),
        processed_bytes=size(copy),
        skipped_files=len(unchanged),
        skipped_bytes=size(unchanged),
        deleted_files=len(gone),
        unsupported=plan.unsupported,
        dry_run=options.dry_run,
        total_time=time.perf_counter() - t0,
    )


#: A listed file: size, mtime in microseconds, and (local files) ctime in nanoseconds.
Listed = tuple[int, int, "int | None"]


class Remote(Protocol):
    """The side of a sync that is not a local directory: an S3 prefix, or a folder on a host
    over SSH. Relative paths come from the component's plan."""

    def listing(self) -> dict[str, Listed]:
        """Path -> what is known of every file below the remote root."""

    def digests(self, paths: list[str]) -> dict[str, str]:
        """The xxh3-128 digests the remote knows of ``paths`` (missing: not known)."""

    def upload(
        self,
        src: LocalPath,
        paths: list[str],
        digests: dict[str, str],
        items: dict[str, Listed],
        tally: Tally,
    ) -> None:
        """Copies ``paths`` of ``src`` here with their modification times."""

    def download(
        self, dst: LocalPath, paths: list[str], items: dict[str, Listed], tally: Tally
    ) -> None:
        """Copies ``paths`` from here into ``dst`` with their modification times."""

    def delete(self, paths: list[str]) -> None:
        """Removes ``paths`` here; gone already is no error."""


@contextlib.contextmanager
def _remote(where: SyncPath, options: SyncOptions, *, source: bool) -> Iterator[Remote]:
    """The remote side ``where`` names, open for the sync; ``source``: it is read from (else
    written to, unless a dry run)."""
    if isinstance(where, S3Path):
        yield S3Remote(where, Bucket(where.bucket, options.s3))
    elif isinstance(where, SshPath):
        from .ssh import connect

        with connect(where, options.ssh, source, options.dry_run) as remote:
            yield remote
    elif isinstance(where, GcsPath):
        from .gcs import GcsRemote

        yield GcsRemote(where, options.gcs)
    else:
        raise ValidationError(f"{where}: this jobattach syncs with S3, SSH and local directories")


def _side_listing(where: SyncPath, remote: Remote | None) -> dict[str, Listed]:
    if isinstance(where, LocalPath):
        return _listing(where)
    assert remote is not None
    return remote.listing()


@dataclass(frozen=True)
class S3Remote:
    """An S3 prefix as a side of a sync; files move by path with boto3."""

    where: S3Path
    bucket: Bucket

    def listing(self) -> dict[str, Listed]:
        n = len(self.where.prefix)
        listed = self.bucket.listing(self.where.prefix)
        return {k[n:]: (s, m, None) for k, s, m in listed if not k.endswith("/")}

    def digests(self, paths: list[str]) -> dict[str, str]:
        """The ``xxh128`` each object's metadata records (none for objects written without)."""
        found = self.bucket.metadata_many([self.where.key(rel) for rel in paths])
        return {rel: m[DIGEST_KEY] for rel, m in zip(paths, found) if m and m.get(DIGEST_KEY)}

    def upload(
        self,
        src: LocalPath,
        paths: list[str],
        digests: dict[str, str],
        items: dict[str, Listed],
        tally: Tally,
    ) -> None:
        _upload(src, self.where, self.bucket, paths, digests, items, tally)

    def download(
        self, dst: LocalPath, paths: list[str], items: dict[str, Listed], tally: Tally
    ) -> None:
        _download(self.where, dst, self.bucket, paths, items, tally)

    def delete(self, paths: list[str]) -> None:
        self.bucket.delete(self.where.key(p) for p in paths)


def _listing(where: LocalPath) -> dict[str, Listed]:
    """Path -> what is known of every file below the local directory ``where``."""
    try:
        if not where.path.exists():
            return {}
        if not where.path.is_dir():
            raise FileAccessError("is not a directory", path=str(where.path))
    except OSError as e:  # a parent that may not be searched
        raise FileAccessError(f"cannot list: {e.strerror}", path=str(where.path)) from e
    top = Path(os.path.realpath(where.path))
    rows = json.loads(list_tree(top))
    # A download's staging folder (in the top folder) is no part of the tree; a user's folder
    # of its name is.
    folders = [p for p, kind, *_ in rows if kind == "d" and "/" not in p]
    staging = {p for p in staging_names(folders) if _staging(top / p)}
    return {
        p: (size, int(mtime_ns) // 1000, int(ctime_ns))  # nanoseconds are strings of digits
        for p, kind, size, mtime_ns, ctime_ns, *_ in rows
        if kind == "f" and p.partition("/")[0] not in staging
    }


def _staging(path: Path) -> bool:
    try:
        return is_staging(path.lstat())
    except OSError:
        return True  # gone since it was listed: a staging folder removed as its download ended


def _upload(
    src: LocalPath,
    dst: S3Path,
    bucket: Bucket,
    paths: list[str],
    digests: dict[str, str],
    items: dict[str, Listed],
    tally: Tally,
) -> None:
    """Uploads ``paths``; a file whose size, mtime or ctime changed while it was sent (its
    object may be torn, or not match the digest recorded with it) is deleted again and named."""
    contents = [Content("", src.path / rel, *items[rel]) for rel in paths]
    transfers = [
        Transfer(dst.key(rel), c.path, c.size, recorded(digests.get(rel)), digests.get(rel))
        for rel, c in zip(paths, contents)
    ]
    upload_unchanged(bucket, contents, transfers, tally, "Sync")


def recorded(digest: str | None) -> dict[str, str] | None:
    """The metadata that records an upload's xxh3-128 for later ``by_hash`` comparisons."""
    return {DIGEST_KEY: digest} if digest else None


def _download(
    src: S3Path,
    dst: LocalPath,
    bucket: Bucket,
    paths: list[str],
    items: dict[str, Listed],
    tally: Tally,
) -> None:
    def fetch(sinks: list[Sink], placed: Callable[[int], None]) -> None:
        transfers = [
            Transfer(src.key(rel), dst.path / rel, items[rel][0], sink=sink)
            for rel, sink in zip(paths, sinks)
        ]
        bucket.download_files(
            transfers, done=placed, cancelled=tally.cancelled, progress=tally.moved
        )

    download_into(dst, paths, items, tally, src.key, fetch)


def download_into(
    dst: LocalPath,
    paths: list[str],
    items: dict[str, Listed],
    tally: Tally,
    shown: Callable[[str], str],
    fetch: Callable[[list[Sink], Callable[[int], None]], None],
) -> None:
    """``fetch(sinks, placed)`` writes each object into this process's staging folder and
    calls ``placed(i)`` once it is complete: then, of its listed size, it is renamed into place
    through the handles of its folders with the object's time; nothing partial stays behind."""
    with open_root(dst.path) as root, Tree(root) as tree:
        lock = threading.Lock()  # transfers end on many threads; one places at a time
        with Staging(root, avoid=[p.partition("/")[0] for p in paths]) as staging:

            def placed(i: int) -> None:
                size, mtime, _ = items[paths[i]]
                got = staging.size(str(i))
                if got != size:
                    why = f"the object has {got} bytes where its listing says {size}"
                    raise StorageError(why, path=shown(paths[i]))
                with lock:
                    found = tree.parent(paths[i], create=True)
                    assert found is not None  # made when missing
                    # the object's time, so the next sync sees it current
                    staging.place(str(i), *found, mtime * 1000, copy=False)
                tally.add(size, i)

            fetch([staging.create(str(i)) for i in range(len(paths))], placed)


def _refuse_overlap(src: LocalPath, dst: LocalPath) -> None:
    """Two directories one of which holds the other would sync into themselves."""
    a, b = os.path.realpath(src.path), os.path.realpath(dst.path)
    if a == b or b.startswith(os.path.join(a, "")) or a.startswith(os.path.join(b, "")):
        raise ValidationError(
            f"{src} and {dst} overlap: one is the other or holds it, so a sync would copy"
            " into what it reads"
        )


def _copy(
    src: LocalPath, dst: LocalPath, paths: list[str], items: dict[str, Listed], tally: Tally
) -> None:
    """Each file read through the handles of the source's folders (a symlink swapped in is
    refused), copied by the kernel into this process's staging folder in the destination,
    then renamed into place with the source's modification time to the nanosecond. A file
    that changed while it was copied is taken out again and named: nothing partial stays."""
    changed: list[str] = []
    with contextlib.ExitStack() as stack:
        src_tree = stack.enter_context(Tree(stack.enter_context(open_root(src.path))))
        root = stack.enter_context(open_root(dst.path))
        tree = stack.enter_context(Tree(root))
        staging = stack.enter_context(Staging(root, avoid=[p.partition("/")[0] for p in paths]))
        for i, rel in enumerate(paths):
            if tally.cancelled.is_set():
                return
            size = items[rel][0]
            st = _copy_in(src_tree, rel, staging, str(i), src.path / rel)
            if not as_listed(st, items[rel]):
                changed.append(str(src.path / rel))
                continue
            found = tree.parent(rel, create=True)
            assert found is not None  # made when missing
            staging.place(str(i), *found, st.st_mtime_ns, copy=False)
            tally.add(size, i)
    refuse_changed(changed, "copied")


def as_listed(st: os.stat_result, listed: Listed) -> bool:
    """Whether a local file is as it was listed (size, mtime and ctime)."""
    return (st.st_size, st.st_mtime_ns // 1000, st.st_ctime_ns) == listed


def refuse_changed(changed: list[str], verb: str) -> None:
    """Names the local files that changed while they were ``verb`` (and were not written)."""
    if changed:
        raise FileChangedError(
            f"{len(changed)} files changed while they were {verb} and were not written (run"
            f" the sync again once they are final): {', '.join(changed)}",
            path=changed[0],
        )


def _copy_in(tree: Tree, rel: str, staging: Staging, name: str, shown: Path) -> os.stat_result:
    """Copies the source file ``rel`` into ``staging`` as ``name``; what the source was
    once copied (its size and times, to tell a change)."""
    with read_local(tree, rel, shown) as (fd, st), staging.create(name)() as out:
        copy_fds(fd, out.fileno(), st.st_size)
        return os.fstat(fd)


@contextlib.contextmanager
def read_local(tree: Tree, rel: str, shown: Path) -> Iterator[tuple[int, os.stat_result]]:
    """The source file ``rel`` open for reading through the handles of its folders (a
    symlink swapped in is refused), and what it was when opened."""
    try:
        found = tree.parent(rel, create=False)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "its folder is gone")
        fd = open_file(*found)
    except OSError as e:
        raise FileAccessError(f"cannot read: {e.strerror}", path=str(shown)) from e
    try:
        yield fd, os.fstat(fd)
    finally:
        os.close(fd)


def _delete_local(dst: LocalPath, paths: list[str]) -> None:
    with open_root(dst.path) as root, Tree(root) as tree:
        for p in paths:
            try:
                tree.unlink(p)  # gone already is what --delete wanted
            except OSError as e:
                why = f"cannot delete: {e.strerror}"
                raise FileAccessError(why, path=str(dst.path / p)) from e


__all__ = [
    "ClientOptions",
    "GcsConfig",
    "GcsPath",
    "LocalPath",
    "S3Path",
    "SshConfig",
    "SshPath",
    "SyncOptions",
    "SyncPath",
    "SyncStats",
    "parse_path",
    "sync",
    "sync_with_options",
]

"""Moving a submission's content to S3: skip what is there, upload the rest in parallel.

Content-addressed: an object per distinct digest. What S3 holds is learnt from the S3-check
cache (verified by a sample) and then from concurrent HEAD requests for the rest, never one
request per file in sequence. A key is recorded in the cache only once S3 confirmed it.

Content PUTs are create-only (``If-None-Match: *``): an object already there, another
submission's, is never replaced, and counts as there. Each small one carries its digest as S3's
XXHASH128 checksum, so S3 itself refuses a body that does not hash to its name.

A file is hashed well before it is sent, and may be rewritten in between; so after each
upload the file must still have the size, mtime and ctime it was hashed with. When it has not,
and for every upload a failed or cancelled batch left unfinished (it may have reached the
server), what the upload may have left under the key is checked, and deleted only when the
object is the one this upload made (its ETag, a conditional delete) and not exactly the content
its name says (read back and hashed, where that is cheap): an object under a digest is always
the content that digest names, and one another submission relies on stays.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from .errors import AttachmentError, Cancelled, FileChangedError, StorageError
from .hashing import hash_file
from .s3_check_cache import S3CheckCache
from .transport import Sent

if TYPE_CHECKING:  # the storage modules load boto3, which local snapshots never need
    from .storage import Bucket, Transfer


@dataclass
class UploadStats:
    files: int = 0
    bytes: int = 0
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    skipped_files: int = 0
    skipped_bytes: int = 0


#: Called with (files done, files to do, bytes done, bytes to do); returning False cancels.
Progress = Callable[[int, int, int, int], bool]


class Content(NamedTuple):
    """A file to upload, and what it was when hashed: after it is sent it must still be so."""

    digest: str
    path: str | os.PathLike[str]
    size: int
    #: As the manifest records it (µs); None: not checked.
    mtime: int | None
    #: A rewrite that restores size and mtime (``cp -p``, ``rsync -t``) still changes ctime.
    ctime_ns: int | None = None


class Tally:
    """Counts work finished on many threads and tells ``progress`` of each step, in order;
    ``cancelled`` is set once it returns False, for workers to check as they go."""

    def __init__(self, progress: Progress | None, files: int, total: int) -> None:
        self.progress, self.files, self.total = progress, files, total
        self.files_done = self.done = 0
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        self._moved: dict[int, int] = {}  # bytes already counted of files still in flight
        with self._lock:
            self._tell()

    def add(self, size: int, item: int | None = None, *, files: int = 1) -> None:
        """``files`` more done, of ``size`` bytes in all (less what :meth:`moved` already
        counted of ``item``)."""
        with self._lock:
            self.files_done += files
            self.done += size - self._moved.pop(item, 0) if item is not None else size
            self._tell()

    def moved(self, item: int, nbytes: int) -> None:
        """``nbytes`` more of the large file ``item`` moved (negative when a part is retried)."""
        with self._lock:
            self._moved[item] = self._moved.get(item, 0) + nbytes
            self.done += nbytes
            self._tell()

    def _tell(self) -> None:
        if self.progress is None:
            return
        if self.progress(self.files_done, self.files, self.done, self.total) is False:
            self.cancelled.set()


def upload_contents(
    bucket: Bucket,
    key_of: Callable[[str], str],
    files: Sequence[Content],
    *,
    under: str | None = None,
    check_cache: S3CheckCache | None = None,
    progress: Progress | None = None,
) -> UploadStats:
    """Uploads each distinct content of ``files`` that S3 lacks. ``under`` is the prefix all
    content keys share, which lets a listing find many at once.

    Raises :class:`Cancelled` when ``progress`` returns False; uploads already made stay (and
    are recorded), so a rerun does not send them again. Raises ``FileChangedError`` as
    :func:`upload_unchanged` does.
    """
    first: dict[str, Content] = {}
    for f in files:
        first.setdefault(f.digest, f)
    keys = {d: key_of(d) for d in first}
    present = check_cache.trusted(bucket, list(keys.values())) if check_cache else set()
    unknown = [k for k in keys.values() if k not in present]
    found = bucket.existing(unknown, under=under)
    if check_cache:
        check_cache.record(bucket.name, found)
    there = present | found
    todo = [f for d, f in first.items() if keys[d] not in there]
    stats = UploadStats(files=len(files), bytes=sum(f.size for f in files))
    tally = Tally(progress, len(todo), sum(f.size for f in todo))
    lock = threading.Lock()

    confirmed: list[str] = []  # uploaded, not yet recorded in the check cache

    def flush() -> None:
        if check_cache and confirmed:
            check_cache.record(bucket.name, confirmed)
        confirmed.clear()

    def sent(i: int, made: bool) -> None:
        with lock:  # one writer at a time, in batches: a transaction per file would crawl
            confirmed.append(keys[todo[i].digest])
            if len(confirmed) >= 256:
                flush()
            if made:  # else another writer's, found there: skipped
                stats.uploaded_files += 1
                stats.uploaded_bytes += todo[i].size

    from .storage import Transfer

    transfers = [
        Transfer(keys[f.digest], f.path, f.size, digest=f.digest, create_only=True) for f in todo
    ]
    try:
        upload_unchanged(bucket, todo, transfers, tally, "Submit", sent=sent)
    finally:
        flush()  # what did go up is remembered even when an upload failed
    if tally.cancelled.is_set():
        raise Cancelled("the upload was cancelled")
    stats.skipped_files = stats.files - stats.uploaded_files
    stats.skipped_bytes = stats.bytes - stats.uploaded_bytes
    return stats


def upload_unchanged(
    bucket: Bucket,
    contents: Sequence[Content],
    transfers: Sequence[Transfer],
    tally: Tally,
    redo: str,
    *,
    sent: Callable[[int, bool], None] | None = None,
) -> None:
    """Uploads ``transfers`` (of ``contents``), counted by ``tally`` and stopped by its
        cancellation. ``sent(i, made)`` hears of each file still as it was hashed once its object
        is there (``made``: by this upload, not found there). For the files found changed, and,
        when the batch fails or is cancelled, for those it left unfinished, what their uploads
        may have left is checked (:func:`_discard`); ``FileChangedError`` then names the changed
    files whose uploads finished."""
    changed: dict[int, Sent] = {}
    lock = threading.Lock()

    def outcome(i: int, what: Sent) -> None:
        if not _unchanged(contents[i]):
            with lock:
                changed[i] = what
        elif what.there and sent is not None:
            sent(i, what.etag is not None)

    def done(i: int) -> None:
        tally.add(contents[i].size, i)

    try:
        bucket.upload_files(
            transfers,
            done=done,
            cancelled=tally.cancelled,
            progress=tally.moved,
            outcome=outcome,
        )
    finally:
        _discard(bucket, [(transfers[i], changed[i]) for i in sorted(changed)])
    finished = [i for i in sorted(changed) if changed[i].there]  # the others: cancelled
    if finished:
        raise _changed_error([os.fspath(contents[i].path) for i in finished], redo)


def _discard(bucket: Bucket, uploads: list[tuple[Transfer, Sent]]) -> None:
    """Takes out of S3 what these uploads of changed files may have left that no one can
    vouch for (:func:`_discard_one`); raises ``StorageError`` naming the keys it could not
    check (S3 unreachable), which may hold other content than their names say."""
    unchecked: list[tuple[str, Exception]] = []
    for transfer, what in uploads:
        try:
            _discard_one(bucket, transfer, what)
        except (StorageError, AttachmentError) as e:
            unchecked.append((transfer.key, e))
    if unchecked:
        (key, error), more = unchecked[0], len(unchecked) - 1
        others = f" (and {more} more)" if more else ""
        raise StorageError(
            f"could not check what was sent of a file that changed meanwhile{others}: {error};"
            " the object may not hold the content its name says: delete it",
            path=key,
        ) from error


def _discard_one(bucket: Bucket, transfer: Transfer, what: Sent) -> None:
    """Deletes the object at the upload's key only when it shows to be this upload's (its
    ETag, or maybe ours with no other writer's to show) and not sound: one that holds exactly
    the content of ``transfer.digest`` stays, as another submission may rely on it. Small
    objects are read back and hashed to tell; a large one this upload made is deleted by
    its ETag (reading it back costs as much as sending it again)."""
    if what.etag is None and not what.maybe_ours:
        return  # refused as existing: the object there is another writer's
    found = bucket.version(transfer.key)
    if found is None:
        return
    etag, size = found
    if what.etag is not None and etag != what.etag:
        return  # replaced since by another writer
    cheap = size < bucket.config.options.multipart_threshold
    if transfer.digest and (cheap or what.etag is None):
        if _holds(bucket, transfer.key, size, transfer.digest):
            return
    elif what.etag is None:
        return  # neither shown to be ours nor shown to be unsound
    bucket.delete_version(transfer.key, etag)


def _holds(bucket: Bucket, key: str, size: int, digest: str) -> bool:
    """Whether the object at ``key`` hashes to ``digest``, read back to a scratch file (when
    it has the content's ``size`` at all: a torn one often has not)."""
    found = bucket.version(key)
    if found is None or found[1] != size:
        return False
    with tempfile.TemporaryDirectory(prefix="jobattach-check-") as scratch:
        path = os.path.join(scratch, "object")
        bucket.download_file(key, path, size=size)
        return hash_file(path) == digest


def _unchanged(f: Content) -> bool:
    """Whether ``f.path`` is still what it was when hashed: its size, mtime and ctime."""
    try:
        st = os.stat(f.path)
    except OSError:
        return False  # gone: what was read of it cannot be vouched for
    return (
        st.st_size == f.size
        and f.mtime in (None, st.st_mtime_ns // 1000)
        and f.ctime_ns in (None, st.st_ctime_ns)
    )


def _changed_error(paths: list[str], redo: str) -> FileChangedError:
    """The error for files found changed once sent, whose objects were deleted again."""
    others = f" (and {len(paths) - 1} more: {', '.join(paths[1:6])})" if len(paths) > 1 else ""
    why = (
        f"changed while it was being sent{others}; nothing sent of it stays in S3 unless it is"
        f" exactly the content that was hashed. {redo} again once the files are final"
    )
    return FileChangedError(why, path=paths[0])

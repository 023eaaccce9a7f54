"""Moving a submission's content to S3: skip what is there, upload the rest in parallel.

Content-addressed: an object per distinct digest. What S3 holds is learnt from the S3-check
cache (verified by a sample) and then from concurrent HEAD requests for the rest, never one
request per file in sequence. A key is recorded in the cache only once S3 confirmed it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import AttachmentError
from .s3_check_cache import S3CheckCache
from .storage import Bucket, Transfer


@dataclass
class UploadStats:
    files: int = 0
    bytes: int = 0
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    skipped_files: int = 0
    skipped_bytes: int = 0


class Cancelled(AttachmentError):
    """The caller's progress callback asked to stop."""


#: Called with (files done, files to do, bytes done, bytes to do); returning False cancels.
Progress = Callable[[int, int, int, int], bool]


class Tally:
    """Counts transfers finished on many threads and tells ``progress`` of each, in order;
    ``cancelled`` is set once it returns False, for workers to check before each transfer."""

    def __init__(self, progress: Progress | None, files: int, total: int) -> None:
        self.progress, self.files, self.total = progress, files, total
        self.files_done = self.done = 0
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        with self._lock:
            self._tell()

    def add(self, size: int) -> None:
        with self._lock:
            self.files_done += 1
            self.done += size
            self._tell()

    def _tell(self) -> None:
        if self.progress is None:
            return
        if self.progress(self.files_done, self.files, self.done, self.total) is False:
            self.cancelled.set()


def upload_contents(
    bucket: Bucket,
    key_of: Callable[[str], str],
    files: Sequence[tuple[str, str | os.PathLike[str], int]],
    *,
    under: str | None = None,
    check_cache: S3CheckCache | None = None,
    progress: Progress | None = None,
) -> UploadStats:
    """Uploads each distinct content of ``files`` (digest, local path, size) that S3 lacks.
    ``under`` is the prefix all content keys share, which lets a listing find many at once.

    Raises :class:`Cancelled` when ``progress`` returns False; uploads already made stay (and
    are recorded), so a rerun does not send them again.
    """
    first: dict[str, tuple[str | os.PathLike[str], int]] = {}
    for digest, path, size in files:
        first.setdefault(digest, (path, size))
    keys = {d: key_of(d) for d in first}
    present = check_cache.trusted(bucket, list(keys.values())) if check_cache else set()
    unknown = [k for k in keys.values() if k not in present]
    found = bucket.existing(unknown, under=under)
    if check_cache:
        check_cache.record(bucket.name, found)
    there = present | found
    todo = [(d, p, n) for d, (p, n) in first.items() if keys[d] not in there]
    stats = UploadStats(files=len(files), bytes=sum(n for _, _, n in files))
    tally = Tally(progress, len(todo), sum(n for _, _, n in todo))
    lock = threading.Lock()

    confirmed: list[str] = []  # uploaded, not yet recorded in the check cache

    def flush() -> None:
        if check_cache and confirmed:
            check_cache.record(bucket.name, confirmed)
        confirmed.clear()

    def sent(i: int) -> None:
        digest, _, size = todo[i]
        with lock:  # one writer at a time, in batches: a transaction per file would crawl
            confirmed.append(keys[digest])
            if len(confirmed) >= 256:
                flush()
            stats.uploaded_files += 1
            stats.uploaded_bytes += size
        tally.add(size)

    transfers = [Transfer(keys[d], p, n) for d, p, n in todo]
    try:
        bucket.upload_files(transfers, done=sent, cancelled=tally.cancelled)
    finally:
        flush()  # what did go up is remembered even when an upload failed
    if tally.cancelled.is_set():
        raise Cancelled("the upload was cancelled")
    stats.skipped_files = stats.files - stats.uploaded_files
    stats.skipped_bytes = stats.bytes - stats.uploaded_bytes
    return stats

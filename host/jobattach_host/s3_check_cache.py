"""Which content objects S3 is known to hold, so re-submissions skip asking it.

A key is recorded only after S3 confirmed it (an upload that succeeded, or a HEAD that found
it). Lifecycle rules or a wiped bucket can remove objects behind the cache's back, so every
use checks a random sample of the keys it would trust against S3; one missing key empties the
cache for that bucket.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .component import cache_dir
from .sqlite import Cache, CacheError

if TYPE_CHECKING:
    from .storage import Bucket

_SCHEMA = """
CREATE TABLE IF NOT EXISTS present (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    confirmed REAL NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID
"""

#: Keys of the cache checked against S3 before it is trusted.
SAMPLE = 30
#: A key confirmed longer ago is asked of S3 again (lifecycle rules delete by age; the
#: official cache keeps entries as long).
EXPIRY_SECONDS = 30 * 24 * 3600


class S3CheckCache(Cache):
    """Keys known to exist, per bucket, in SQLite (WAL: several processes may share it).

    ``path`` defaults to ``s3-check-v1.sqlite3`` in ``$JOBATTACH_CACHE_DIR`` (else
    ``~/.cache/jobattach``). ``lenient`` turns SQLite failures into a warning and a cache that
    knows nothing; without it they raise :class:`CacheError`. Close it with :meth:`close`.
    """

    def __init__(self, path: Path | None = None, *, lenient: bool = False) -> None:
        path = path if path is not None else cache_dir() / "s3-check-v1.sqlite3"
        super().__init__(path, _SCHEMA, lenient=lenient)

    def known(self, bucket: str, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` the cache holds, confirmed within ``EXPIRY_SECONDS`` (asked in
        batches: a bucket may hold millions)."""
        wanted = list(dict.fromkeys(keys))
        since = time.time() - EXPIRY_SECONDS

        def select(db: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for i in range(0, len(wanted), 500):
                batch = wanted[i : i + 500]
                marks = ",".join("?" * len(batch))
                sql = (
                    "SELECT key FROM present WHERE bucket = ? AND confirmed >= ?"
                    f" AND key IN ({marks})"
                )
                found.update(k for (k,) in db.execute(sql, (bucket, since, *batch)))
            return found

        return self._run(select, set())

    def record(self, bucket: str, keys: Iterable[str], *, at: float | None = None) -> None:
        """Remembers ``keys`` as confirmed in S3 ``at`` that time (default: now)."""
        when = time.time() if at is None else at
        rows = [(bucket, k, when) for k in keys]
        if rows:
            self._write("INSERT OR REPLACE INTO present VALUES (?, ?, ?)", rows)

    def forget(self, bucket: str, keys: Iterable[str] | None = None) -> None:
        """Drops ``keys`` recorded for ``bucket`` (objects deleted: the next submission then
        asks S3), or every key (as when a sample of them is found missing)."""
        if keys is None:
            self._write("DELETE FROM present WHERE bucket = ?", [(bucket,)])
        else:
            self._write(
                "DELETE FROM present WHERE bucket = ? AND key = ?", [(bucket, k) for k in keys]
            )

    def trusted(self, bucket: Bucket, keys: Sequence[str]) -> set[str]:
        """The keys of ``keys`` the cache vouches for, after a sample of them was found in S3;
        an empty set (and an emptied cache) when the sample finds one missing."""
        known = self.known(bucket.name, keys)
        sample = random.sample(sorted(known), min(SAMPLE, len(known)))
        if sample and bucket.existing(sample) != set(sample):
            self.forget(bucket.name)
            return set()
        return known


def official_cache() -> Path:
    """Where the official package keeps its S3-check cache by default (its ``CacheDB``):
    ``~/.deadline/job_attachments/s3_check_cache.db``."""
    return Path(os.path.expanduser("~")) / ".deadline" / "job_attachments" / "s3_check_cache.db"


def forget_official(bucket: str, keys: Iterable[str], path: Path | None = None) -> None:
    """Drops ``keys`` of ``bucket`` from the official package's S3-check cache at ``path``
    (default :func:`official_cache`), so that its next submission asks S3 for them too; a
    cache that does not exist is left so. Its table is ``s3checkV1``, its keys
    ``bucket/key`` (deadline.job_attachments 0.1.5's ``S3CheckCache``)."""
    path = path if path is not None else official_cache()
    rows = [(f"{bucket}/{k}",) for k in keys]
    if not rows or not path.is_file():
        return
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=60)
    except sqlite3.Error as e:
        raise CacheError(f"cannot use this cache: {e}", path=str(path)) from e
    try:
        with db:
            if db.execute(_OFFICIAL_TABLE).fetchone():
                db.executemany("DELETE FROM s3checkV1 WHERE s3_key = ?", rows)
    except sqlite3.Error as e:
        raise CacheError(f"cannot use this cache: {e}", path=str(path)) from e
    finally:
        db.close()


_OFFICIAL_TABLE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 's3checkV1'"

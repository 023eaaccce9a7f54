"""The SQLite set-up both persistent caches share, and what they do when SQLite fails.

A cache only saves time. The default one (``lenient``) must never fail the work it serves: a
corrupt database is replaced, and one that cannot be used at all (a read-only directory, a
full disk) is left out with a warning. A cache the caller opened by path fails loudly, with a
``CacheError`` naming the file.
"""

from __future__ import annotations

import sqlite3
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from .errors import FileAccessError

T = TypeVar("T")


class CacheError(FileAccessError):
    """A persistent cache could not be opened, read or written."""


class Cache:
    """A database at ``path`` with ``schema``, used from one thread at a time. ``lenient``
    (the default caches' setting) turns SQLite failures into a warning and a cache that knows
    nothing; otherwise they raise ``CacheError``."""

    def __init__(self, path: Path, schema: str, *, lenient: bool) -> None:
        self.path, self._schema, self._lenient = path, schema, lenient
        self._db: sqlite3.Connection | None = None
        try:
            self._db = _open(path, schema)
        except sqlite3.DatabaseError as e:
            if _corrupt(e) and lenient:
                self._replace()
            else:
                self._failed(e)
        except OSError as e:
            self._failed(e)

    def _replace(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        try:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._db = _open(self.path, self._schema)
        except (sqlite3.Error, OSError) as e:  # another user's file in a shared directory
            self._failed(e)

    def _run(self, work: Callable[[sqlite3.Connection], T], fallback: T) -> T:
        """``work`` on the database; if SQLite fails, ``fallback`` (lenient) or a CacheError.
        A default cache found damaged past its header is replaced for the next run."""
        if self._db is None:
            return fallback
        try:
            return work(self._db)
        except sqlite3.Error as e:
            if _corrupt(e) and self._lenient:
                self._replace()
            else:
                self._failed(e)
            return fallback

    def _write(self, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        """``sql`` for each of ``rows``, in one transaction (many writers share the file)."""

        def write(db: sqlite3.Connection) -> None:
            with db:  # BEGIN ... COMMIT, or ROLLBACK on error
                db.execute("BEGIN IMMEDIATE")
                db.executemany(sql, rows)

        self._run(write, None)

    def _failed(self, e: Exception) -> None:
        error = CacheError(f"cannot use this cache: {e}", path=str(self.path))
        if not self._lenient:
            raise error from e
        warnings.warn(f"{error}; going on without it", RuntimeWarning, stacklevel=4)
        if self._db is not None:
            self._db.close()
            self._db = None

    def close(self) -> None:
        """Closes the database file."""
        if self._db is not None:
            self._db.close()
            self._db = None


def _corrupt(e: sqlite3.Error) -> bool:
    """Not a database, or a damaged one (not a lock, a full disk or a permission)."""
    return type(e) is sqlite3.DatabaseError


def _open(path: Path, schema: str) -> sqlite3.Connection:
    """Opens (creating) a database in WAL mode, so several processes may share it.

    The connection is used from one thread at a time, not always the one that opened it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA synchronous=NORMAL")
        deadline = time.monotonic() + 60
        while True:
            # Switching to WAL takes an exclusive lock without waiting on the busy timeout, so
            # a process that creates the database while another does retries for a moment.
            try:
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                db.execute(schema)
                return db
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
    except BaseException:
        db.close()
        raise

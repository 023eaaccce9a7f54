"""A persistent cache of file digests, so snapshots of unchanged trees skip hashing.

An entry is valid only for the exact size, ``mtime_ns`` and ``ctime_ns`` it was recorded
with: a rewrite changes ``ctime`` even when the writer restores the mtime, so a changed file
is never served a stale digest. SQLite in WAL mode lets several processes share the cache;
each snapshot reads once and writes its new digests in one transaction.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

from .component import cache_dir
from .sqlite import Cache

#: (path relative to the root, size, mtime_ns, ctime_ns, chunk size or 0 for one digest)
Key = tuple[str, int, int, int, int]
#: One digest, or the digests of each chunk.
Digest = Union[str, list[str]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    root BLOB NOT NULL,
    path BLOB NOT NULL,
    chunk INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    xxh128 TEXT NOT NULL,
    PRIMARY KEY (root, path, chunk)
) WITHOUT ROWID
"""


def _blob(text: str) -> bytes:
    # Names that are not UTF-8 arrive as lone surrogates; keep them exactly.
    return text.encode("utf-8", "surrogatepass")


class HashCache(Cache):
    """Digests keyed by root, path, size, mtime_ns and ctime_ns. Use from one thread at a time.

    ``path`` defaults to ``digests-v1.sqlite3`` in ``$JOBATTACH_CACHE_DIR`` (else
    ``~/.cache/jobattach``). ``lenient`` turns SQLite failures into a warning and a cache that
    knows nothing; without it they raise :class:`CacheError`. Close it with :meth:`close`.
    """

    def __init__(self, path: Path | None = None, *, lenient: bool = False) -> None:
        path = path if path is not None else cache_dir() / "digests-v1.sqlite3"
        super().__init__(path, _SCHEMA, lenient=lenient)

    def lookup(self, root: str | os.PathLike[str], keys: Sequence[Key]) -> list[Digest | None]:
        """The cached digest of each key, or None where there is none or it is stale."""
        r = _blob(os.fspath(root))
        rows: list[tuple[bytes, int, int, int, int, str]] = self._run(
            lambda db: db.execute(
                "SELECT path, size, mtime_ns, ctime_ns, chunk, xxh128 FROM digests WHERE root = ?",
                (r,),
            ).fetchall(),
            [],
        )
        known = {(bytes(p), s, m, c, k): h for p, s, m, c, k, h in rows}
        found = [known.get((_blob(p), s, m, c, k)) for p, s, m, c, k in keys]
        return [h.split(",") if h and k else h for h, (*_, k) in zip(found, keys)]

    def store(self, root: str | os.PathLike[str], entries: Sequence[tuple[Key, Digest]]) -> None:
        """Records digests, all in one transaction."""
        if not entries:
            return
        r = _blob(os.fspath(root))
        rows = [
            (r, _blob(p), k, s, m, c, h if isinstance(h, str) else ",".join(h))
            for (p, s, m, c, k), h in entries
        ]
        self._write("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

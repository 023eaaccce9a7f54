"""The SQLite set-up both persistent caches share."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def open_db(path: Path, schema: str) -> sqlite3.Connection:
    """Opens (creating) a database in WAL mode, so several processes may share it.

    The connection is used from one thread at a time, not always the one that opened it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA synchronous=NORMAL")
    deadline = time.monotonic() + 60
    while True:
        # Switching to WAL takes an exclusive lock without waiting on the busy timeout, so a
        # process that creates the database while another does retries for a moment.
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute(schema)
            return db
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)

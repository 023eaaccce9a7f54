"""The objects VIRTUAL mounts serve, on local disk: fetched once, verified, bounded in size.

A folder of the session holds each object under its digest. An object is fetched into a
temporary file there (large ones by ranged parts, several in flight: the transport downloads
use), its size checked and its content hashed, and only then renamed to its digest: a reader
never gets unverified bytes, and content that does not match is deleted and refused. Several
mounts of a session (processes of their own) share the folder: a lock file per digest keeps
two from fetching the same object at once, and the rename is atomic, so either result stands.

Recency is a file's mtime, bumped on each open; once an object is added and the folder holds
more than its bound, the least recently used are deleted until it fits, never the one just
added (so an object larger than the bound is kept until the next one arrives). A reader with a
file open keeps reading it after it is deleted, as POSIX has it, so eviction never breaks a
mount of another process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import StorageError, ValidationError
from .hashing import hash_files
from .sandbox import Grant
from .storage import Bucket, Transfer

_DIGEST = re.compile(r"[0-9a-f]{32}")
_PART = ".part"  # a fetch under way: "<digest>.<random>.part"
_LOCK = ".lock"  # "<digest>.lock"
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_REWRITE = os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
#: Seconds after which a temporary file is taken as a killed process's, and deleted.
_STALE_AFTER = 3600


@dataclass
class CacheStats:
    """What this process's cache did: objects fetched (and their bytes), opens it served
    from what was there, objects it evicted."""

    fetched: int = 0
    fetched_bytes: int = 0
    hits: int = 0
    evicted: int = 0


class ObjectCache:
    """Verified objects in ``folder`` (see the module's doc), fetched from ``bucket`` under
    ``data_key(digest)``, at most ``limit`` bytes of them kept. Thread-safe."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        bucket: Bucket,
        data_key: Callable[[str], str],
        *,
        limit: int,
    ) -> None:
        self.path = os.fspath(folder)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        self.bucket = bucket
        self.data_key = data_key
        self.limit = limit
        self.stats = CacheStats()
        self._guard = threading.Lock()
        self._fetching: dict[str, Future[None]] = {}

    def open(self, digest: str, size: int) -> int:
        """A new read-only descriptor of the object's verified content, fetched first when
        it is not here; the caller closes it. ``StorageError`` when the object is missing or
        its bytes are not what ``digest`` and ``size`` say."""
        if not _DIGEST.fullmatch(digest):
            raise ValidationError(f"not a digest: {digest!r}")
        while True:
            fd = self._cached(digest, size)
            if fd is not None:
                with self._guard:
                    self.stats.hits += 1
                return fd
            with self._guard:
                running = self._fetching.get(digest)
                if running is None:
                    running = self._fetching[digest] = Future()
                    mine = True
                else:
                    mine = False
            if not mine:
                running.result()  # the other thread's fetch, or its error
                continue  # then open what it placed (unless evicted meanwhile)
            try:
                with self._locked(digest):
                    if (fd := self._cached(digest, size)) is None:  # another process's fetch
                        self._fetch(digest, size)
                        fd = self._cached(digest, size)
                running.set_result(None)
            except BaseException as e:
                running.set_exception(e)
                raise
            finally:
                with self._guard:
                    del self._fetching[digest]
            if fd is not None:
                self._evict(keep=digest)
                return fd

    def _cached(self, digest: str, size: int) -> int | None:
        """The object's file opened, its recency bumped; None when nothing of the right size
        is there (a file of another size, or anything but a file, is deleted)."""
        try:
            fd = os.open(digest, _OPEN, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError:  # a symlink or a folder planted at the name: never followed
            self._remove(digest)
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            os.close(fd)
            self._remove(digest)
            return None
        with contextlib.suppress(OSError):
            os.utime(fd)
        return fd

    @contextlib.contextmanager
    def _locked(self, digest: str) -> Iterator[None]:
        fd = os.open(digest + _LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600, dir_fd=self.fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _fetch(self, digest: str, size: int) -> None:
        """Fetches the object into a temporary file, checks it, and names it by its digest."""
        part = f"{digest}.{secrets.token_hex(8)}{_PART}"
        key = self.data_key(digest)

        def sink() -> IO[bytes]:  # (re)opened empty by each attempt of the transfer
            return os.fdopen(os.open(part, _REWRITE, 0o600, dir_fd=self.fd), "wb")

        os.close(os.open(part, _NEW, 0o600, dir_fd=self.fd))
        try:
            where = os.path.join(self.path, part)
            self.bucket.download_files([Transfer(key, where, size, sink=sink)])
            got = os.stat(part, dir_fd=self.fd, follow_symlinks=False).st_size
            if got != size:
                why = f"the object has {got} bytes where the manifest says {size}"
                raise StorageError(why, path=key)
            (found,) = hash_files(Grant(Path(self.path)), [(part, size)])
            if found != digest:
                why = f"the content of {key} does not match its hash (it hashes to {found})"
                raise StorageError(why, path=key)
            os.rename(part, digest, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            self._remove(part)
            raise
        with self._guard:
            self.stats.fetched += 1
            self.stats.fetched_bytes += size

    def _evict(self, *, keep: str) -> None:
        """Deletes the least recently used objects while the folder holds more than its
        bound, never ``keep``; and temporaries a killed process left."""
        objects, total, now = [], 0, time.time()
        with os.scandir(self.fd) as it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if entry.name.endswith(_PART) and now - st.st_mtime > _STALE_AFTER:
                    self._remove(entry.name)
                elif _DIGEST.fullmatch(entry.name) and stat.S_ISREG(st.st_mode):
                    objects.append((st.st_mtime_ns, entry.name, st.st_size))
                    total += st.st_size
        for _, name, size in sorted(objects):
            if total <= self.limit:
                break
            if name == keep:
                continue
            self._remove(name)
            self._remove(name + _LOCK)
            total -= size
            with self._guard:
                self.stats.evicted += 1

    def _remove(self, name: str) -> None:
        # Whatever stands there (a folder planted at a digest's name, say): then the rename
        # onto it fails, and the read with it.
        with contextlib.suppress(OSError):
            try:
                os.unlink(name, dir_fd=self.fd)
            except IsADirectoryError:
                os.rmdir(name, dir_fd=self.fd)

    def close(self) -> None:
        os.close(self.fd)

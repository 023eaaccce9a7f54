"""The ``gs://bucket/prefix`` side of a :func:`jobattach.sync`: planned as the S3 side is,
moved by google-cloud-storage (:mod:`jobattach_host.gcs_store`).

Uploads record each file's modification time in the object's metadata (as rclone does) and,
``by_hash``, its xxh3-128; downloads are checked against the crc32c GCS lists for every
object and land through :func:`jobattach.mirror.download_into` as S3's do.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import IO

from jobattach_host.errors import Cancelled, FileAccessError, FileChangedError, StorageError
from jobattach_host.gcs_store import DIGEST_KEY, Counted, GcsBucket, GcsConfig, Listed, each
from jobattach_host.gcs_store import mtime_metadata as _mtime_metadata
from jobattach_host.storage import Sink
from jobattach_host.upload import Tally

from . import mirror
from .sync_paths import GcsPath, LocalPath


class GcsRemote:
    """A sync's bucket side in Google Cloud Storage."""

    def __init__(self, where: GcsPath, config: GcsConfig) -> None:
        self.where, self.store = where, GcsBucket(where.bucket, config)
        self._objects: dict[str, Listed] = {}
        self._workers = config.options.max_pool_connections

    def listing(self) -> dict[str, mirror.Listed]:
        n = len(self.where.prefix)
        self._objects = {o.name[n:]: o for o in self.store.listing(self.where.prefix)}
        return {rel: (o.size, o.mtime_us, None) for rel, o in self._objects.items()}

    def digests(self, paths: list[str]) -> dict[str, str]:
        found = {rel: self._objects[rel].metadata.get(DIGEST_KEY) for rel in paths}
        return {rel: d for rel, d in found.items() if d}

    def upload(
        self,
        src: LocalPath,
        paths: list[str],
        digests: dict[str, str],
        items: dict[str, mirror.Listed],
        tally: Tally,
    ) -> None:
        """Sends each file with its time (and digest); a file whose size, mtime or ctime
        changed while it was sent is deleted again (only the generation sent) and named."""
        changed: list[str] = []
        lock = threading.Lock()

        def send(i: int) -> None:
            rel = paths[i]
            size, mtime_us, _ = items[rel]
            metadata = _mtime_metadata(mtime_us) | (mirror.recorded(digests.get(rel)) or {})
            name = self.where.key(rel)
            try:
                file = open(src.path / rel, "rb")  # noqa: SIM115 (closed below, on any path)
            except OSError as e:
                raise FileAccessError(f"cannot read: {e.strerror}", path=str(src.path / rel)) from e
            with file:
                try:
                    made: int | None = self.store.upload(
                        name, Counted(file, _mover(tally, i)), size, metadata
                    )
                except StorageError:
                    if _as_listed(file, items[rel]):
                        raise
                    made = None  # it changed under the upload: no object was made
                if not _as_listed(file, items[rel]):
                    if made is not None:
                        self.store.delete(name, made)
                    with lock:
                        changed.append(str(src.path / rel))
                    return
            tally.add(size, i)

        each(range(len(paths)), send, self._workers, tally.cancelled)
        if changed:
            raise FileChangedError(
                f"{len(changed)} files changed while they were uploaded and were not kept (run"
                f" the sync again once they are final): {', '.join(changed)}",
                path=changed[0],
            )

    def download(
        self, dst: LocalPath, paths: list[str], items: dict[str, mirror.Listed], tally: Tally
    ) -> None:
        def fetch(sinks: list[Sink], placed: Callable[[int], None]) -> None:
            def get(i: int) -> None:
                self.store.download(self._objects[paths[i]], sinks[i], _mover(tally, i))
                placed(i)

            each(range(len(paths)), get, self._workers, tally.cancelled)

        mirror.download_into(dst, paths, items, tally, self._shown, fetch)

    def delete(self, paths: list[str]) -> None:
        names = [self.where.key(p) for p in paths]
        each(range(len(names)), lambda i: self.store.delete(names[i]), self._workers, _never())

    def _shown(self, rel: str) -> str:
        return self.store.shown(self.where.key(rel))


def _as_listed(file: IO[bytes], listed: mirror.Listed) -> bool:
    """Whether the open file is still as listed: size, mtime and ctime."""
    st = os.fstat(file.fileno())
    return (st.st_size, st.st_mtime_ns // 1000, st.st_ctime_ns) == listed


def _mover(tally: Tally, i: int) -> Callable[[int], None]:
    """Counts bytes of file ``i`` as they move; once cancelled, stops the transfer."""

    def moved(n: int) -> None:
        if tally.cancelled.is_set():
            raise Cancelled("the sync was cancelled")
        tally.moved(i, n)

    return moved


def _never() -> threading.Event:
    return threading.Event()

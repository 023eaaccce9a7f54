"""Google Cloud Storage through google-cloud-storage: the settings (:class:`GcsConfig`) and
the object I/O a sync needs (:class:`GcsBucket`): list a prefix, upload files with their
modification times, download into sinks checked against the listed crc32c, delete.

The library is imported only when a ``gs://`` side is used (the ``gcs`` extra).
"""

from __future__ import annotations

import base64
import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from .errors import Cancelled, StorageError
from .s3config import ClientOptions
from .storage import Sink

if TYPE_CHECKING:
    from google.cloud.storage import Bucket as _Bucket

#: The file's modification time in an object's metadata, as rclone writes and reads it
#: first (RFC 3339, nanoseconds); rclone and gsutil also read ``goog-reserved-file-mtime``
#: (Unix seconds), which is written too so that gsutil sees the time. Listing reads ``mtime``,
#: then ``goog-reserved-file-mtime``, then the object's own update time, in rclone's order.
MTIME_KEY = "mtime"
GSUTIL_MTIME_KEY = "goog-reserved-file-mtime"
#: The content's xxh3-128, recorded by ``by_hash`` uploads as the S3 path records it.
DIGEST_KEY = "xxh128"


@dataclass(frozen=True)
class GcsConfig:
    """Credentials, endpoint and client options for ``gs://`` (default: the default
    credential chain, ``google.auth.default()``)."""

    #: A service account's key file (JSON), or its parsed contents.
    credentials_file: str | None = None
    credentials_info: dict[str, Any] | None = field(default=None, hash=False)
    #: Send no credentials (public buckets, emulators).
    anonymous: bool = False
    #: The project billed for requests (default: the credentials').
    project: str | None = None
    #: Another endpoint than Google's (an emulator, a private endpoint); the library also
    #: reads ``STORAGE_EMULATOR_HOST``.
    endpoint_url: str | None = None
    #: Shared with S3. Used here: ``max_pool_connections`` (HTTP pool and transfers at once),
    #: ``connect_timeout``/``read_timeout`` (each request's), ``stall_timeout`` (the deadline
    #: of the library's retries, which back off exponentially), ``multipart_threshold`` and
    #: ``multipart_chunksize`` (files this large are sent as resumable uploads of chunks this
    #: large). No equivalent: ``retry_mode`` and ``max_attempts`` (google's retries are bounded
    #: by time, not count), ``min_rate``/``min_rate_seconds``.
    options: ClientOptions = field(default_factory=ClientOptions)


class Listed(NamedTuple):
    """An object below the listed prefix."""

    name: str
    size: int
    mtime_us: int
    generation: int
    #: The base64 checksums GCS keeps (md5 is missing for composite objects).
    crc32c: str | None
    md5: str | None
    metadata: dict[str, str]


def _library() -> Any:
    try:
        from google.cloud import storage
    except ImportError:
        raise StorageError(
            "gs:// needs google-cloud-storage: pip install 'jobattach[gcs]'"
        ) from None
    return storage


def _credentials(config: GcsConfig) -> Any:
    if config.anonymous:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()  # type: ignore[no-untyped-call]
    if config.credentials_file or config.credentials_info:
        from google.oauth2 import service_account

        made: Any = service_account.Credentials
        if config.credentials_file:
            return made.from_service_account_file(config.credentials_file)
        return made.from_service_account_info(config.credentials_info)
    return None  # the library's default chain


class GcsBucket:
    """One bucket, through one client shared by the transfer threads."""

    def __init__(self, name: str, config: GcsConfig) -> None:
        storage = _library()
        from google.api_core.retry import Retry
        from google.cloud.storage.retry import DEFAULT_RETRY

        opts = config.options
        project = config.project or ("<none>" if config.anonymous else None)
        client_options = {"api_endpoint": config.endpoint_url} if config.endpoint_url else None
        try:
            client = storage.Client(
                project=project, credentials=_credentials(config), client_options=client_options
            )
        except Exception as e:  # no default credentials, an unreadable key file
            raise StorageError(f"gs://{name}: cannot make a client: {e}") from e
        self._pool(client, opts.max_pool_connections)
        self.bucket: _Bucket = client.bucket(name)
        self.name, self.options = name, opts
        self.timeout = (opts.connect_timeout, opts.read_timeout)
        retry: Retry = DEFAULT_RETRY.with_timeout(opts.stall_timeout)
        self.retry = retry

    @staticmethod
    def _pool(client: Any, size: int) -> None:
        import requests.adapters

        adapter = requests.adapters.HTTPAdapter(pool_connections=size, pool_maxsize=size)
        for scheme in ("http://", "https://"):
            client._http.mount(scheme, adapter)

    def listing(self, prefix: str) -> list[Listed]:
        """The objects below ``prefix`` (not those ending in ``/``, folder markers)."""
        try:
            blobs = self.bucket.client.list_blobs(
                self.bucket, prefix=prefix, timeout=self.timeout, retry=self.retry
            )
            return [_listed(b) for b in blobs if not b.name.endswith("/")]
        except Exception as e:
            raise self._error(e, prefix) from e

    def upload(
        self, name: str, file: IO[bytes] | Counted, size: int, metadata: dict[str, str]
    ) -> int:
        """Sends ``size`` bytes of ``file`` as ``name``, crc32c-checked by the library (a
        resumable upload compares the server's and deletes the object on a mismatch; a
        single request sends it along); the new object's generation."""
        blob = self.bucket.blob(name)
        blob.metadata = metadata
        if size >= self.options.multipart_threshold:
            quantum = 256 * 1024  # GCS's chunks are multiples of this
            blob.chunk_size = max(quantum, self.options.multipart_chunksize // quantum * quantum)
        try:
            blob.upload_from_file(
                file, size=size, checksum="crc32c", timeout=self.timeout, retry=self.retry
            )
        except Cancelled:
            raise
        except Exception as e:
            raise self._error(e, name) from e
        return int(blob.generation)

    def download(self, obj: Listed, sink: Sink, moved: Callable[[int], None]) -> None:
        """Writes the generation of ``obj`` that was listed into ``sink``; its bytes must hash
        to the listed crc32c (else md5), or a ``StorageError`` says so."""
        blob = self.bucket.blob(obj.name, generation=obj.generation)
        with sink() as out:
            writer = _Checked(out, moved)
            try:
                blob.download_to_file(
                    writer,
                    if_generation_match=obj.generation,  # replaced since listed: refused
                    checksum=None,  # checked below, against the listing, as written
                    timeout=self.timeout,
                    retry=self.retry,
                )
            except Cancelled:
                raise
            except Exception as e:
                raise self._error(e, obj.name) from e
        if obj.crc32c is not None and writer.crc32c() != obj.crc32c:
            why = f"the bytes read have crc32c {writer.crc32c()} where GCS lists {obj.crc32c}"
            raise StorageError(why, path=self.shown(obj.name))
        if obj.crc32c is None and obj.md5 is not None and writer.md5() != obj.md5:
            raise StorageError("the bytes read do not match its md5", path=self.shown(obj.name))

    def delete(self, name: str, generation: int | None = None) -> None:
        """Removes ``name`` (only ``generation`` of it, when given); gone already is fine."""
        from google.api_core.exceptions import NotFound, PreconditionFailed

        try:
            self.bucket.blob(name).delete(
                if_generation_match=generation, timeout=self.timeout, retry=self.retry
            )
        except (NotFound, PreconditionFailed):
            pass  # gone, or replaced by another writer: not ours to remove
        except Exception as e:
            raise self._error(e, name) from e

    def shown(self, name: str) -> str:
        return f"gs://{self.name}/{name}"

    def _error(self, e: Exception, name: str) -> StorageError:
        return StorageError(str(e), path=self.shown(name))


def each(
    items: Sequence[int], call: Callable[[int], None], workers: int, stop: threading.Event
) -> None:
    """``call(i)`` for every item on ``workers`` threads; the first failure stops the rest
    (those not begun are not begun) and is raised."""
    failed = threading.Event()

    def run(i: int) -> None:
        if not (stop.is_set() or failed.is_set()):
            try:
                call(i)
            except BaseException:
                failed.set()
                raise

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        futures = [pool.submit(run, i) for i in items]
    for f in futures:  # all ended: those after a failure at once
        error = f.exception()
        if error is not None:
            raise error


class _Checked:
    """A file written to that keeps the checksums of what went through it and says how much
    moved (raising ``Cancelled`` when told to stop)."""

    def __init__(self, out: IO[bytes], moved: Callable[[int], None]) -> None:
        import hashlib

        import google_crc32c

        self._out, self._moved = out, moved
        self._crc: Any = google_crc32c.Checksum()  # type: ignore[no-untyped-call]
        self._md5 = hashlib.md5(usedforsecurity=False)

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self._crc.update(data)
        self._md5.update(data)
        self._moved(len(data))
        return len(data)

    def flush(self) -> None:
        self._out.flush()

    def tell(self) -> int:
        return self._out.tell()

    def crc32c(self) -> str:
        return base64.b64encode(self._crc.digest()).decode()

    def md5(self) -> str:
        return base64.b64encode(self._md5.digest()).decode()


class Counted:
    """A file read from that says how much moved (raising ``Cancelled`` when told to stop)."""

    def __init__(self, file: IO[bytes], moved: Callable[[int], None]) -> None:
        self._file, self._moved = file, moved

    def read(self, n: int = -1) -> bytes:
        data = self._file.read(n)
        self._moved(len(data))
        return data

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)


def mtime_metadata(mtime_us: int) -> dict[str, str]:
    """The metadata recording a file's modification time (see :data:`MTIME_KEY`)."""
    seconds, us = divmod(mtime_us, 1_000_000)
    when = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return {MTIME_KEY: f"{when}.{us * 1000:09d}Z", GSUTIL_MTIME_KEY: str(seconds)}


_RFC3339 = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", re.IGNORECASE
)


def parse_mtime(text: str) -> int | None:
    """Microseconds since the epoch of an RFC 3339 time (any fraction), or None."""
    found = _RFC3339.match(text.strip())
    if not found:
        return None
    base, fraction, zone = found.groups()
    zone = "+00:00" if zone.upper() == "Z" else zone
    whole = datetime.fromisoformat(base + zone)
    return int(whole.timestamp()) * 1_000_000 + int((fraction or "0")[:6].ljust(6, "0"))


def _listed(blob: Any) -> Listed:
    metadata: dict[str, str] = dict(blob.metadata or {})
    mtime = parse_mtime(metadata.get(MTIME_KEY, ""))
    if mtime is None and metadata.get(GSUTIL_MTIME_KEY, "").isdigit():
        mtime = int(metadata[GSUTIL_MTIME_KEY]) * 1_000_000
    if mtime is None:
        updated = blob.updated
        mtime = int(updated.timestamp()) * 1_000_000 + updated.microsecond
    return Listed(
        blob.name,
        int(blob.size),
        mtime,
        int(blob.generation),
        blob.crc32c,
        blob.md5_hash,
        metadata,
    )

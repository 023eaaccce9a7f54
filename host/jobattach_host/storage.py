"""``Bucket``: the operations the host performs on one bucket, over the transports.

Which transport makes each request, and what happens when a fast one cannot, is decided by
``transport.Router``; retries by ``retry``; configuration lives in ``s3config``. Every
failure becomes a ``StorageError`` naming the operation and the key.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from . import s3loop
from .boto_transport import BotoTransport, status, storage_errors
from .errors import FileAccessError, FileChangedError, StorageError
from .pace import MinimumRate
from .s3config import S3Config
from .s3wire import EXISTS_STATUS, Wire, digest_of
from .transport import UNFINISHED, DigestMismatch, Limits, Request, Router, Sent

#: Opens a download's file, empty, for writing (again on each retry).
Sink = Callable[[], IO[bytes]]


class Transfer(NamedTuple):
    """One object moved between S3 and a local file."""

    key: str
    path: str | os.PathLike[str]
    #: The content's size when known: only objects known to be small go many at a time.
    size: int | None = None
    #: Uploads: the object's user metadata.
    metadata: Mapping[str, str] | None = None
    #: Uploads: the xxh3-128 the content must hash to, sent as S3's XXHASH128 checksum.
    digest: str | None = None
    #: Uploads: never replace an object; a key that exists counts as there (``Sent``).
    create_only: bool = False
    #: Downloads: opens the file written to (``path`` is then only named in messages).
    sink: Sink | None = None


class Listed(NamedTuple):
    """An object of a listing."""

    key: str
    size: int
    #: Its last modification, microseconds since the epoch.
    modified: int
    etag: str
    #: The algorithms of the checksums S3 keeps for it (``XXHASH128``, ``CRC64NVME``...), as
    #: the listing names them; empty where the server names none.
    checksums: tuple[str, ...]


class Stored(NamedTuple):
    """An object as a HEAD with checksums enabled shows it."""

    etag: str
    #: The xxh3-128 (32 hex digits) that its full-object XXHASH128 checksum says; None
    #: when it has none (another algorithm, or per part: a multipart upload's).
    xxh128: str | None


class Bucket:
    """One bucket, and the operations the host performs on it. Thread-safe."""

    def __init__(self, name: str, config: S3Config | None = None) -> None:
        self.name = name
        self.config = config or S3Config()
        self._connection = self.config._connection()
        self.client = self._connection.client
        o = self.config.options
        self._boto = BotoTransport(
            self.client,
            name,
            self._connection.completions,
            self.config.transfer_config(),
            o.max_attempts,
            o.patience(),
        )
        wire = self._wire_for()
        settings = s3loop.Settings(o.max_pool_connections, o.connect_timeout, o.read_timeout)
        limits = Limits(
            o.max_pool_connections, o.multipart_threshold, o.min_rate, o.min_rate_seconds
        )
        self._transport = Router(
            self._boto, wire, s3loop.Loop.for_wire(wire, settings) if wire else None, limits
        )

    def _wire_for(self) -> Wire | None:
        try:
            return Wire.for_bucket(
                self.client,
                self._connection.credentials,
                self.name,
                self.config.options.max_attempts,
                self._connection.owner,
                self.config.options.patience(),
            )
        except (BotoCoreError, ValueError):  # a name botocore refuses: boto3 will say so
            return None

    def create(self) -> None:
        """Creates the bucket if it does not exist yet."""
        with storage_errors("create bucket", self.name):
            try:
                self.client.head_bucket(Bucket=self.name)
            except ClientError as e:
                if status(e) != 404:
                    raise
                region = self.client.meta.region_name
                if region in (None, "us-east-1"):  # the one region S3 refuses a constraint for
                    self.client.create_bucket(Bucket=self.name)
                else:
                    self.client.create_bucket(
                        Bucket=self.name,
                        CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
                    )

    def check(self) -> None:
        """Fails fast, before long work, when S3 cannot be reached or says the bucket does not
        exist (a refusal to say, 403, passes: uploading may still be allowed)."""
        with storage_errors("check bucket", self.name):
            try:
                self.client.head_bucket(Bucket=self.name)
            except ClientError as e:
                if status(e) == 404:
                    raise StorageError("the bucket does not exist", path=self.name) from e
                if status(e) != 403:
                    raise

    def keys(self, prefix: str) -> set[str]:
        """Every key under ``prefix``, by one paginated listing."""
        return {key for key, _, _ in self.listing(prefix)}

    def listing(self, prefix: str) -> list[tuple[str, int, int]]:
        """(key, size, last modified in microseconds) of every object under ``prefix``."""
        return [(o.key, o.size, o.modified) for o in self.objects(prefix)]

    def objects(self, prefix: str) -> list[Listed]:
        """Every object under ``prefix``, by one paginated listing."""
        out: list[Listed] = []
        with storage_errors("list", prefix):
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.name, Prefix=prefix):
                for obj in page.get("Contents", []):
                    modified = int(obj["LastModified"].timestamp() * 1_000_000)
                    etag, algorithms = obj.get("ETag", ""), tuple(obj.get("ChecksumAlgorithm", ()))
                    out.append(Listed(obj["Key"], int(obj["Size"]), modified, etag, algorithms))
        return out

    def delete(self, keys: Iterable[str]) -> None:
        """Deletes objects, a thousand per request."""
        todo = list(keys)
        for i in range(0, len(todo), 1000):
            batch = todo[i : i + 1000]
            with storage_errors("delete", batch[0]):
                reply = self.client.delete_objects(
                    Bucket=self.name, Delete={"Objects": [{"Key": k} for k in batch]}
                )
            if reply.get("Errors"):
                first = reply["Errors"][0]
                raise StorageError(f"S3 delete failed ({first.get('Code')})", path=first.get("Key"))

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists (one HEAD request)."""
        return self.metadata(key) is not None

    def existing(
        self, keys: Iterable[str], *, under: str | None = None, page_size: int = 1000
    ) -> set[str]:
        """Which of ``keys`` exist, checked by concurrent HEAD requests (never one by one).

        With ``under`` (a prefix of all the keys) and many keys, a listing of that prefix
        answers first: one request per ``page_size`` keys instead of one per key. It is
        bounded to two pages per ``page_size`` keys asked, so a huge bucket costs little
        before the HEAD requests take over for what the listing did not reach.
        """
        todo = list(dict.fromkeys(keys))
        found: set[str] = set()
        if under is not None and len(todo) > page_size:
            listed, complete = self._list_bounded(under, 2 * len(todo) // page_size, page_size)
            found = {k for k in todo if k in listed}
            if complete:
                return found
            todo = [k for k in todo if k not in listed]
        return found | {k for k, meta in zip(todo, self.metadata_many(todo)) if meta is not None}

    def _list_bounded(self, prefix: str, pages: int, page_size: int) -> tuple[set[str], bool]:
        """Keys under ``prefix`` from at most ``pages`` pages, and whether that was all."""
        listed: set[str] = set()
        with storage_errors("list", prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            config: Any = {"PageSize": page_size}
            for i, page in enumerate(
                paginator.paginate(Bucket=self.name, Prefix=prefix, PaginationConfig=config)
            ):
                listed.update(obj["Key"] for obj in page.get("Contents", []))
                if not page.get("IsTruncated"):
                    return listed, True
                if i + 1 >= pages:
                    return listed, False
        return listed, True

    def upload_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        metadata: Mapping[str, str] | None = None,
        progress: Callable[[int], None] | None = None,
        cancelled: threading.Event | None = None,
        digest: str | None = None,
        create_only: bool = False,
    ) -> Sent:
        """Uploads a local file by path, in parallel parts above the multipart threshold, and
        says what it did (``Sent``): with ``create_only``, a key that exists is left as it is.

        Smaller files go up in one PUT of their bytes, read whole (below the threshold, so
        bounded), by the direct path when it can: the transfer manager's machinery costs
        milliseconds of CPU per file, more than the request itself. Such a PUT carries
        ``digest`` as S3's XXHASH128 checksum, so S3 refuses a body that does not hash to it.
        ``progress`` hears of the bytes as they go (a retried part's as a negative count;
        through boto3 a small file's once sent), and may raise to stop the transfer with its
        exception. A large file stops (its parts aborted, ``Cancelled`` raised) once
        ``cancelled`` is set.
        """
        try:
            if os.stat(path).st_size >= self.config.options.multipart_threshold:
                return self._boto.upload_in_parts(
                    key, path, metadata, create_only, progress, cancelled
                )
            with open(path, "rb") as f:
                data = f.read()
            return self._transport.put(
                key, data, metadata, digest=digest, create_only=create_only, moved=progress
            )
        except DigestMismatch as e:
            raise FileChangedError(
                "does not hold the content that was hashed: S3 refused it, as its"
                " XXHASH128 differs; submit again once the files are final",
                path=os.fspath(path),
            ) from e.__cause__
        except OSError as e:
            raise FileAccessError(
                f"cannot read for upload: {e.strerror}", path=os.fspath(path)
            ) from e

    def download_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        size: int | None = None,
        progress: Callable[[int], None] | None = None,
        cancelled: threading.Event | None = None,
        sink: Sink | None = None,
    ) -> None:
        """Downloads an object to a local path (or to the file ``sink`` opens), in parallel
        ranges when it is large.

        An object known (``size``) to be below the multipart threshold comes in one GET
        streamed to the file: the transfer manager would first ask for its size, a second
        request, and spend milliseconds of CPU per file. A connection dropped mid-stream is
        retried like a failed request (its bytes counted again). An object not of the
        expected ``size`` is refused before any of it is written. ``progress`` and
        ``cancelled`` as for ``upload_file``.
        """
        try:
            if size is None or size >= self.config.options.multipart_threshold:
                if sink is None:
                    self._boto.download(key, os.fspath(path), size, progress, cancelled)
                else:
                    with sink() as f:
                        self._boto.download(key, f, size, progress, cancelled)
            else:
                with sink() if sink else open(path, "wb") as f:
                    self._transport.get_to(key, f, progress, size)
        except OSError as e:
            why = f"cannot write the download: {e.strerror}"
            raise FileAccessError(why, path=os.fspath(path)) from e

    def download_files(
        self,
        transfers: Sequence[Transfer],
        *,
        done: Callable[[int], None] | None = None,
        cancelled: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Downloads many objects to local paths: those known to be small many at a time on one
        event loop (s3loop), the others as ``download_file`` does, in parallel. ``done(i)`` as
        each finishes and ``progress(i, bytes)`` as a large one goes, from any thread; nothing
        more starts, and large ones stop, once ``cancelled`` is set. A batch slower than
        ``ClientOptions.min_rate`` fails with a ``StorageError`` (see ``pace``)."""

        def one(i: int, pace: MinimumRate) -> None:
            t = transfers[i]
            moved = pace.mover(i)
            self.download_file(
                t.key, t.path, size=t.size, progress=moved, cancelled=pace.cancelled, sink=t.sink
            )

        requests = [Request("GET", t.key, t.path, sink=t.sink, size=t.size) for t in transfers]
        sizes = [t.size for t in transfers]
        self._transport.many("download", requests, sizes, one, done, cancelled, progress=progress)

    def upload_files(
        self,
        transfers: Sequence[Transfer],
        *,
        done: Callable[[int], None] | None = None,
        cancelled: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
        outcome: Callable[[int, Sent], None] | None = None,
    ) -> None:
        """Uploads many local files, as ``download_files`` downloads objects. ``outcome(i,
        sent)`` hears what each upload did before its ``done``; and when the batch fails or is
        cancelled, of each upload started and never finished too (``UNFINISHED``: it may have
        reached the server), before the error is raised."""

        def one(i: int, pace: MinimumRate) -> Sent:
            t = transfers[i]
            return self.upload_file(
                t.key,
                t.path,
                metadata=t.metadata,
                progress=pace.mover(i),
                cancelled=pace.cancelled,
                digest=t.digest,
                create_only=t.create_only,
            )

        def unfinished(started: list[int]) -> None:
            for i in started:
                if outcome is not None:
                    outcome(i, UNFINISHED)

        requests = [
            Request("PUT", t.key, t.path, t.metadata, t.digest, t.create_only) for t in transfers
        ]
        sizes = [t.size for t in transfers]
        self._transport.many(
            "upload", requests, sizes, one, done, cancelled, outcome, unfinished, progress=progress
        )

    def metadata_many(self, keys: Sequence[str]) -> list[dict[str, str] | None]:
        """``metadata`` of each key (None where there is no such object), many at a time."""
        found: list[dict[str, str] | None] = [None] * len(keys)

        def each(i: int, result: Any) -> None:
            found[i] = result

        requests = [Request("HEAD", k) for k in keys]
        self._transport.many(
            "check",
            requests,
            [0] * len(keys),
            lambda i, _: self.metadata(keys[i]),
            None,
            None,
            each,
        )
        return found

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        """Writes a small object (a manifest) with optional user metadata."""
        extra: dict[str, Any] = {"Metadata": dict(metadata or {})}
        if content_type:
            extra["ContentType"] = content_type
        with storage_errors("put", key):
            self.client.put_object(Bucket=self.name, Key=key, Body=data, **extra)

    def version(self, key: str) -> tuple[str, int] | None:
        """The ETag and size of the object at ``key``, or None when there is none."""
        with storage_errors("check", key):
            try:
                reply = self.client.head_object(Bucket=self.name, Key=key)
            except ClientError as e:
                if status(e) == 404:
                    return None
                raise
            return str(reply["ETag"]), int(reply["ContentLength"])

    def stored(self, key: str) -> Stored | None:
        """The object at ``key`` with its stored checksum (one HEAD), or None when there is
        none. S3 checks a checksum sent with a PUT against the body before it keeps it;
        an emulator may keep what the client claimed unchecked (moto does)."""
        with storage_errors("check", key):
            try:
                reply = self.client.head_object(Bucket=self.name, Key=key, ChecksumMode="ENABLED")
            except ClientError as e:
                if status(e) == 404:
                    return None
                raise
        whole = reply.get("ChecksumType") != "COMPOSITE"
        value = reply.get("ChecksumXXHASH128")
        return Stored(str(reply["ETag"]), digest_of(value) if whole and value else None)

    def stored_many(self, keys: Sequence[str]) -> list[Stored | None]:
        """``stored`` of each key, by concurrent HEADs, in ``keys``' order."""
        if not keys:
            return []
        with ThreadPoolExecutor(
            self._transport.workers(len(keys)), thread_name_prefix="s3-head"
        ) as pool:
            return list(pool.map(self.stored, keys))

    def delete_version(self, key: str, etag: str) -> bool:
        """Deletes the object at ``key`` only while it is the one whose ETag is ``etag``, so
        that an object another writer put there since stays; whether it did. S3 checks the
        ETag itself (a conditional DeleteObject, ``If-Match``); for a server that ignores
        If-Match (``rclone serve s3``), the ETag is also read just before, which leaves only
        the moment between that HEAD and the DELETE for another writer's object to be lost."""
        found = self.version(key)
        if found is None or found[0].strip('"') != etag.strip('"'):  # rclone lists it bare
            return False
        with storage_errors("delete", key):
            try:
                self.client.delete_object(Bucket=self.name, Key=key, IfMatch=found[0])
            except ClientError as e:
                if status(e) in (404, EXISTS_STATUS):  # gone, or no longer that object
                    return False
                raise
        return True

    @property
    def expected_owner(self) -> str | None:
        """The account every request expects to own the bucket, or None when unchecked."""
        return self._connection.owner()

    def metadata(self, key: str) -> dict[str, str] | None:
        """An object's user metadata, or None when there is no such object."""
        return self._transport.head(key)

    def get_bytes(self, key: str) -> tuple[bytes, dict[str, str]]:
        """Reads a small object and its user metadata."""
        with storage_errors("get", key):
            reply = self.client.get_object(Bucket=self.name, Key=key)
            return reply["Body"].read(), dict(reply.get("Metadata", {}))

    def get_many(self, keys: Sequence[str]) -> list[tuple[bytes, dict[str, str]]]:
        """Reads many small objects and their metadata by concurrent GETs, in ``keys``' order."""
        with ThreadPoolExecutor(
            self._transport.workers(len(keys)), thread_name_prefix="s3-get"
        ) as pool:
            return list(pool.map(self.get_bytes, keys))

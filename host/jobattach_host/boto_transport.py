"""The boto3 transport: any request and any reply, and the transfer manager for large files.

Files move by path (boto3 reads and writes them itself), so their bytes never pass through the
component boundary. Throttling and server errors are retried by botocore's retry modes, bounded
by the one retry policy's stall timeout (``retry``).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from typing import IO, TYPE_CHECKING, Any

from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    IncompleteReadError,
    ResponseStreamingError,
)
from s3transfer.exceptions import CancelledError as TransferCancelled
from s3transfer.exceptions import RetriesExceededError
from s3transfer.subscribers import BaseSubscriber

from .errors import Cancelled, StorageError
from .retry import Attempts, Failed, Patience, longest_backoff
from .s3wire import EXISTS_STATUS, checksum, unexpected_size
from .transport import HINTS, DigestMismatch, Moved, Sent

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1 << 20


class BotoTransport:
    """Requests for the objects of one bucket through boto3 (a ``Transport``), and the large
    transfers only its transfer manager makes."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        completions: Completions,
        transfer: TransferConfig,
        attempts: int,
        patience: Patience,
    ) -> None:
        self.client, self.bucket = client, bucket
        self._completions, self._transfer = completions, transfer
        self._attempts, self._patience = attempts, patience

    def head(self, key: str) -> dict[str, str] | None:
        with storage_errors("check", key):
            try:
                reply = self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as e:
                if status(e) == 404:
                    return None
                raise
            return dict(reply.get("Metadata", {}))

    def get_to(
        self, key: str, out: IO[bytes], moved: Moved | None = None, size: int | None = None
    ) -> None:
        """One GET streamed to ``out``; a connection dropped mid-stream is retried like a
        failed request, by the retry policy."""
        attempts = Attempts(self._attempts, self._patience)
        with storage_errors("download", key):
            while True:
                out.seek(0)
                out.truncate()
                try:
                    reply = self.client.get_object(Bucket=self.bucket, Key=key)
                    with closing(reply["Body"]) as body:
                        if size is not None and reply["ContentLength"] != size:
                            why = unexpected_size(reply["ContentLength"], size)
                            raise StorageError(f"S3 download failed ({why})", path=key)
                        for chunk in iter(functools.partial(body.read, MiB), b""):
                            out.write(chunk)
                            if moved is not None:
                                moved(len(chunk))
                    return
                except (ResponseStreamingError, IncompleteReadError) as e:
                    try:
                        delay = attempts.retry(type(e).__name__, self._patience.wait_of(e))
                    except Failed:
                        raise e from None
                    time.sleep(delay)

    def put(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        *,
        digest: str | None = None,
        create_only: bool = False,
        moved: Moved | None = None,
    ) -> Sent:
        """One PutObject of ``data``; ``moved`` hears of its bytes once sent."""
        extra: dict[str, Any] = {"Metadata": dict(metadata)} if metadata else {}
        if digest:
            extra["ChecksumXXHASH128"] = checksum(digest)
            extra["ChecksumAlgorithm"] = "XXHASH128"  # as put_headers: the value is kept
        if create_only:
            extra["IfNoneMatch"] = "*"
        with storage_errors("upload", key):
            try:
                reply = self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
            except ClientError as e:
                if digest and e.response.get("Error", {}).get("Code") == "BadDigest":
                    raise DigestMismatch(key) from e
                return existing(e, create_only)
        if moved is not None:
            moved(len(data))
        return Sent(reply.get("ETag"), there=True, maybe_ours=True)

    def upload_in_parts(
        self,
        key: str,
        path: str | os.PathLike[str],
        metadata: Mapping[str, str] | None,
        create_only: bool,
        progress: Callable[[int], None] | None,
        cancelled: threading.Event | None,
    ) -> Sent:
        """A multipart upload by the transfer manager, its completion create-only when asked.

        It carries no XXHASH128 checksum: S3 keeps a full-object checksum of a multipart
        upload only for the CRC algorithms (combined from the parts'), and XXHASH128 per part
        (a COMPOSITE checksum, which needs awscrt in botocore) would check each part, never
        the content's name. The parts carry botocore's default CRC32, and the host's checks
        (the file still as hashed once sent) stand.
        """
        extra: dict[str, Any] = {"Metadata": dict(metadata)} if metadata else {}
        self._completions.start(self.bucket, key, create_only)
        try:
            with storage_errors("upload", key):
                try:
                    self._managed(
                        lambda tm, watch: tm.upload(
                            os.fspath(path), self.bucket, key, extra, watch
                        ),
                        progress,
                        cancelled,
                    )
                except ClientError as e:
                    return existing(e, create_only)
        finally:
            etag = self._completions.end(self.bucket, key)
        return Sent(etag, there=True, maybe_ours=True)

    def download(
        self,
        key: str,
        target: str | IO[bytes],
        size: int | None,
        progress: Callable[[int], None] | None,
        cancelled: threading.Event | None,
    ) -> None:
        """Downloads an object to ``target`` (a path, or an open file) in parallel ranges.
        With ``size``, the object is checked to have it first (the HEAD the transfer manager
        would make), refused before any byte is written when not, and the manager asks for
        that many bytes only."""
        known = [] if size is None else [self._known_size(key, size)]
        with storage_errors("download", key):
            self._managed(
                lambda tm, watch: tm.download(self.bucket, key, target, None, watch + known),
                progress,
                cancelled,
            )

    def _known_size(self, key: str, size: int) -> _KnownSize:
        with storage_errors("download", key):
            found = int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        if found != size:
            raise StorageError(f"S3 download failed ({unexpected_size(found, size)})", path=key)
        return _KnownSize(size)

    def _managed(
        self,
        submit: Callable[[Any, list[BaseSubscriber]], Any],
        progress: Callable[[int], None] | None,
        cancelled: threading.Event | None,
    ) -> None:
        """One transfer by boto3's transfer manager (parts or ranges in parallel), watched:
        once ``cancelled`` is set, no part starts, and the manager aborts a multipart upload
        or removes a partial download. Checked while waiting, not only as bytes move: the
        last bytes are sent long before a slow server answers. What ``progress`` raised stops it
        as a cancellation does, and is raised in its place."""
        watch = _Watch(progress)
        with create_transfer_manager(self.client, self._transfer) as tm:
            future = submit(tm, [watch])
            while cancelled is not None and not watch.finished.wait(0.05):
                if cancelled.is_set():
                    future.cancel()
                    break
            try:
                future.result()
            except TransferCancelled as e:
                if watch.error is not None:
                    raise watch.error from None
                raise Cancelled("the transfer was cancelled") from e


#: The request that ends a multipart upload.
COMPLETE = "CompleteMultipartUpload"
_UPLOAD = "jobattach-upload"


class Completions:
    """The CompleteMultipartUpload of each upload in parts, which the transfer manager makes
    without taking ``IfNoneMatch``: made create-only where the upload asks for it, and the
    ETag of the object it made kept for the upload."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._create_only: set[tuple[str, str]] = set()
        self._etags: dict[tuple[str, str], str | None] = {}

    def start(self, bucket: str, key: str, create_only: bool) -> None:
        with self._lock:
            self._etags[bucket, key] = None
            if create_only:
                self._create_only.add((bucket, key))

    def end(self, bucket: str, key: str) -> str | None:
        """The ETag of the object the upload made, if its completion was answered."""
        with self._lock:
            self._create_only.discard((bucket, key))
            return self._etags.pop((bucket, key), None)

    def before(self, params: dict[str, Any], context: Any, **kwargs: Any) -> None:
        which = (params.get("Bucket", ""), params.get("Key", ""))
        context[_UPLOAD] = which
        with self._lock:
            if which in self._create_only:
                params["IfNoneMatch"] = "*"

    def after(self, parsed: Any, context: Any, **kwargs: Any) -> None:
        which = context.get(_UPLOAD)
        with self._lock:
            if which in self._etags and parsed.get("ETag"):
                self._etags[which] = parsed["ETag"]


class NoAnswer(BotoCoreError):
    """A request stopped after waiting on a silent server for the stall timeout."""

    fmt = "{why}"


_UNANSWERED = "jobattach-unanswered"


def unanswered(patience: Patience) -> Callable[..., None]:
    """botocore's ``needs-retry`` handler that ends a request (raising ``NoAnswer``) once
    another attempt could take its waiting on a silent server past the stall timeout: the
    retry policy's bound, on botocore's own retries."""

    def handler(
        attempts: int,
        caught_exception: BaseException | None = None,
        request_dict: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if caught_exception is None or request_dict is None:
            return
        context = request_dict["context"]  # one per request, kept across its attempts
        counted: Attempts = context.setdefault(_UNANSWERED, Attempts(attempts, patience))
        counted.number = attempts
        wait = patience.wait_of(caught_exception)
        try:
            counted.bound(wait, longest_backoff(attempts), type(caught_exception).__name__)
        except Failed as e:
            raise NoAnswer(why=e.code) from None

    return handler


def status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def existing(e: ClientError, create_only: bool) -> Sent:
    """A create-only upload refused because the key exists, as a ``Sent`` (maybe ours when
    botocore had sent it before: an earlier attempt may have landed); any other error raised."""
    if not (create_only and status(e) == EXISTS_STATUS):
        raise e
    retried = int(e.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) > 0
    return Sent(None, there=True, maybe_ours=retried)


class _KnownSize(BaseSubscriber):
    """Gives the transfer manager a download's size, checked already, so it asks for the
    ranges of that many bytes and never for more (and makes no HEAD of its own)."""

    def __init__(self, size: int) -> None:
        self._size = size

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self._size)


class _Watch(BaseSubscriber):
    """Tells ``progress`` of a managed transfer's bytes, and ``finished`` of its end; what
    ``progress`` raises cancels the transfer and is kept in ``error``: raised inside s3transfer,
    it would be retried as a failed request (the callback runs as the body is sent)."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self._progress = progress
        self.finished = threading.Event()
        self.error: Exception | None = None

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        if self._progress is not None and self.error is None:
            try:
                self._progress(bytes_transferred)
            except Exception as e:
                self.error = e
                future.cancel()

    def on_done(self, future: Any, **kwargs: Any) -> None:
        self.finished.set()


@contextmanager
def storage_errors(operation: str, key: str) -> Iterator[None]:
    """Turns boto3's exceptions inside the block into ``StorageError``."""
    try:
        yield
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "") or str(status(e))
        hint = HINTS.get(code, "")
        raise StorageError(f"S3 {operation} failed ({code}): {e}{hint}", path=key) from e
    except (BotoCoreError, Boto3Error, RetriesExceededError) as e:
        raise StorageError(f"S3 {operation} failed: {e}", path=key) from e

"""How requests reach S3: the small interface every transport offers, and the one owner of
the policy that chooses among them.

Three transports move objects: boto3 (``boto_transport``: any request, any reply, and the
transfer manager for large files), the direct path (``s3wire``: one small object's GET, PUT
or HEAD, signed and sent without boto3's per-request machinery) and the event loop
(``s3loop``: batches of small objects on one thread). The two fast ones handle only the plain
cases; a reply only boto3 understands (a redirect, an authorization error) makes ``Router``
repeat the request through boto3, and boto3 does every request of that bucket from then on.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, NamedTuple, Protocol, TypeVar

from .errors import Cancelled, FileAccessError, StorageError
from .pace import MinimumRate
from .retry import Failed

T = TypeVar("T")
#: A request's bytes as they move (negative when an attempt starts over); it may raise to stop
#: the request, with that exception.
Moved = Callable[[int], None]


class Fallback(Exception):
    """The request needs what only boto3 does; repeat it there."""


class DigestMismatch(Exception):
    """S3 refused an upload's body: it does not hash to the XXHASH128 sent with it."""


class Sent(NamedTuple):
    """What an upload did to its key, as far as the server let it be known."""

    #: The ETag of the object this upload made; None when it made none, or none it can show.
    etag: str | None
    #: Whether an object is there now: made by this upload, or found there (create-only).
    there: bool
    #: Whether an object there may be of this upload's making though no ETag shows it: an
    #: earlier attempt may have reached the server before a create-only one was refused, or
    #: the upload never finished (its batch failed or was cancelled while it was sent).
    maybe_ours: bool


#: What an upload that was started but never finished may have done.
UNFINISHED = Sent(None, there=False, maybe_ours=True)


class Transport(Protocol):
    """One small object's requests, as each transport makes them. ``Fallback`` means boto3
    must repeat the request; ``Failed`` that the retry policy gave up."""

    def head(self, key: str) -> dict[str, str] | None:
        """The object's user metadata, or None when it does not exist."""
        ...

    def get_to(
        self, key: str, out: IO[bytes], moved: Moved | None = None, size: int | None = None
    ) -> None:
        """Writes the object's content to ``out`` (from its start, again on each attempt);
        an object not of the expected ``size`` is refused before any of it is written."""
        ...

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
        """Writes an object; with ``digest``, S3 refuses a body that does not hash to it
        (``DigestMismatch``), and ``create_only`` never replaces an object."""
        ...


class Request(NamedTuple):
    """One request of a batch."""

    method: str  # "GET", "PUT" or "HEAD"
    key: str
    #: GET: the file the object's content is written to; PUT: the file sent.
    path: str | os.PathLike[str] | None = None
    #: PUT: the object's user metadata.
    metadata: Mapping[str, str] | None = None
    #: PUT: the xxh3-128 the content must hash to (S3 refuses a body that does not).
    digest: str | None = None
    #: PUT: refused, and reported as there, when the key exists.
    create_only: bool = False
    #: GET: opens the file written to, empty, instead of ``path``.
    sink: Callable[[], IO[bytes]] | None = None
    #: GET: the size the object must have: another is refused before a byte is written, so
    #: an object swapped for a huge one never fills the disk.
    size: int | None = None


class ItemFailed(Exception):
    """A request of a batch failed for good: ``error`` is a ``Failed`` (S3 kept refusing)
    or the ``OSError`` of its local file."""

    def __init__(self, index: int, error: Failed | OSError) -> None:
        super().__init__(str(error))
        self.index, self.error = index, error


class BatchTransport(Protocol):
    """Many small-object requests at once (``s3loop``)."""

    #: The largest PUT body it takes: bodies are held in memory while sent.
    max_put_bytes: int

    def run(
        self,
        requests: Sequence[Request],
        *,
        done: Callable[[int, Any], None] | None = None,
        cancelled: threading.Event | None = None,
        started: Callable[[int], None] | None = None,
        moved: Moved | None = None,
    ) -> list[int]:
        """Sends every request; ``done(i, result)`` for each that succeeded (a HEAD's user
        metadata or None, a PUT's ``Sent``). Returns the indices boto3 must do; raises
        ``ItemFailed`` for the first that failed for good."""
        ...


_CREDENTIALS = "; check the credentials, and that they may use this bucket"
#: What to check, by the error code S3 answered with.
HINTS = {
    "403": _CREDENTIALS,
    "AccessDenied": _CREDENTIALS,
    "InvalidAccessKeyId": "; check the access key",
    "SignatureDoesNotMatch": "; check the secret key",
    "ExpiredToken": "; the session token has expired: refresh the credentials",
    "NoSuchBucket": "; check the bucket's name",
}


def failure(operation: str, code: str, key: str) -> StorageError:
    """The error of an operation that failed for good with ``code``."""
    return StorageError(f"S3 {operation} failed ({code}){HINTS.get(code, '')}", path=key)


class Limits(NamedTuple):
    """What bounds the router's batches (``ClientOptions``' fields of these names)."""

    max_pool_connections: int
    multipart_threshold: int
    min_rate: float
    min_rate_seconds: float


class Router:
    """The one owner of the fallback policy: each request goes by the fastest transport that
    can make it, and once a fast one meets a reply only boto3 handles, boto3 makes every
    request from then on (the direct path and the event loop share their endpoint, so what
    one cannot do the other cannot either). Thread-safe."""

    def __init__(
        self,
        boto: Transport,
        direct: Transport | None,
        loop: BatchTransport | None,
        limits: Limits,
    ) -> None:
        self.boto, self.limits = boto, limits
        #: The fast transports, None once boto3 does everything.
        self.direct, self.loop = direct, loop

    def head(self, key: str) -> dict[str, str] | None:
        return self._one("check", key, lambda t: t.head(key))

    def get_to(self, key: str, out: IO[bytes], moved: Moved | None, size: int | None) -> None:
        self._one("download", key, lambda t: t.get_to(key, out, moved, size))

    def put(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None,
        *,
        digest: str | None,
        create_only: bool,
        moved: Moved | None,
    ) -> Sent:
        return self._one(
            "upload",
            key,
            lambda t: t.put(
                key, data, metadata, digest=digest, create_only=create_only, moved=moved
            ),
        )

    def _one(self, operation: str, key: str, call: Callable[[Transport], T]) -> T:
        """``call`` on the direct path when there is one, else (or once it falls back) on
        boto3; what the retry policy gave up on, or signing failed on, is a ``StorageError``."""
        from botocore.exceptions import BotoCoreError

        direct = self.direct
        try:
            if direct is not None:
                try:
                    return call(direct)
                except Fallback:
                    self._fall_back()
            return call(self.boto)
        except Failed as e:
            raise failure(operation, e.code, key) from e
        except BotoCoreError as e:  # the direct path's signing: credentials not refreshed
            raise StorageError(f"S3 {operation} failed: {e}", path=key) from e

    def _fall_back(self) -> None:
        self.direct = self.loop = None

    def many(
        self,
        operation: str,
        requests: list[Request],
        sizes: Sequence[int | None],
        one: Callable[[int, MinimumRate], Any],
        done: Callable[[int], None] | None,
        cancelled: threading.Event | None,
        result: Callable[[int, Any], None] | None = None,
        unfinished: Callable[[list[int]], None] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Request ``i`` by ``one(i, pace)`` on threads, but those known to be small (``sizes``)
        on the event loop when it can be used; ``result`` receives what each returned.
        ``pace`` watches the batch's rate, stopping it by its ``cancelled`` (the caller's, or
        one of its own) and telling ``progress`` of each transfer's bytes. Once all have
        ended, however the batch ends, ``unfinished`` hears of those that were started (on
        either side) and never finished: stopped by a failure or a cancel midway."""
        lim = self.limits
        pace = MinimumRate(
            lim.min_rate, lim.min_rate_seconds, cancelled or threading.Event(), progress
        )
        with pace:
            try:
                self._spread(operation, requests, sizes, one, done, pace, result, unfinished)
            except Exception as e:
                error = pace.error()  # what stopped it, rather than how a transfer ended
                if error is not None and error is not e:
                    raise error from e
                raise
        error = pace.error()
        if error is not None:
            raise error

    def _spread(
        self,
        operation: str,
        requests: list[Request],
        sizes: Sequence[int | None],
        one: Callable[[int, MinimumRate], Any],
        done: Callable[[int], None] | None,
        pace: MinimumRate,
        result: Callable[[int, Any], None] | None,
        unfinished: Callable[[list[int]], None] | None,
    ) -> None:
        """``many``'s work, watched by ``pace``."""
        cancelled = pace.cancelled
        loop = self.loop  # once: a fallback on another thread may clear it
        threshold = self.limits.multipart_threshold
        if loop is not None and requests and requests[0].method == "PUT":
            threshold = min(threshold, loop.max_put_bytes + 1)
        small = [i for i, n in enumerate(sizes) if n is not None and n < threshold] if loop else []
        large = sorted(set(range(len(requests))) - set(small))

        lock = threading.Lock()
        started: set[int] = set()
        ended: set[int] = set()

        def start(i: int) -> None:
            with lock:
                started.add(i)

        def finish(i: int, value: Any) -> None:
            with lock:
                ended.add(i)
            pace.finished()
            if result is not None:
                result(i, value)
            if done is not None:
                done(i)

        def each(i: int) -> None:
            if not cancelled.is_set():
                start(i)
                try:
                    value = one(i, pace)
                except Cancelled:
                    return  # stopped midway; the caller sees `cancelled`
                finish(i, value)

        pool = ThreadPoolExecutor(self.workers(len(requests)), thread_name_prefix="s3-many")
        try:
            threaded = [pool.submit(each, i) for i in large]
            if loop is not None and small:
                left = self._on_loop(
                    loop,
                    operation,
                    [requests[i] for i in small],
                    lambda k, value: finish(small[k], value),
                    pace,
                    lambda k: start(small[k]),
                )
                threaded += [pool.submit(each, small[k]) for k in left]
            for future in threaded:
                future.result()
        except KeyboardInterrupt:
            cancelled.set()  # large transfers stop at their next part, not at their end
            raise
        finally:
            pool.shutdown(cancel_futures=True)
            if unfinished is not None and started - ended:
                unfinished(sorted(started - ended))

    def _on_loop(
        self,
        loop: BatchTransport,
        operation: str,
        requests: list[Request],
        finished: Callable[[int, Any], None],
        pace: MinimumRate,
        started: Callable[[int], None],
    ) -> list[int]:
        """Sends ``requests`` on the event loop; returns those boto3 must do."""
        from botocore.exceptions import BotoCoreError

        try:
            left = loop.run(
                requests, done=finished, cancelled=pace.cancelled, started=started, moved=pace.moved
            )
        except BotoCoreError as e:  # signing: credentials that could not be refreshed
            raise StorageError(f"S3 {operation} failed: {e}", path=requests[0].key) from e
        except ItemFailed as e:
            req, error = requests[e.index], e.error
            if isinstance(error, Failed):
                raise failure(operation, error.code, req.key) from e
            doing = "read for upload" if operation == "upload" else "write the download"
            why = f"cannot {doing}: {error.strerror}"
            raise FileAccessError(why, path=os.fspath(req.path or "")) from error
        if left:
            self._fall_back()  # as for a single request: boto3 does the rest, and what follows
        return left

    def workers(self, jobs: int) -> int:
        """Threads for ``jobs`` requests at once: no more than the connections."""
        return max(1, min(jobs, self.limits.max_pool_connections))

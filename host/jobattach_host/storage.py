"""S3 through boto3: the transport half of the host, kept apart from the engine's rules.

Files move by path (boto3 reads and writes them itself), so their bytes never pass through the
component boundary. Every failure becomes a ``StorageError`` naming the operation and the key;
throttling and server errors are retried with backoff by botocore's retry modes first.
"""

from __future__ import annotations

import contextlib
import functools
import os
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar, cast
from urllib.parse import urlsplit

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    IncompleteReadError,
    ResponseStreamingError,
)
from botocore.loaders import create_loader
from s3transfer.exceptions import CancelledError as TransferCancelled
from s3transfer.exceptions import RetriesExceededError
from s3transfer.subscribers import BaseSubscriber

from . import s3loop
from .errors import Cancelled, FileAccessError, FileChangedError, StorageError
from .pace import MinimumRate
from .s3wire import (
    EXISTS_STATUS,
    UNFINISHED,
    Failed,
    Fallback,
    Patience,
    Sent,
    Unanswered,
    Wire,
    checksum,
    unexpected_size,
)

if TYPE_CHECKING:
    from botocore.credentials import Credentials
    from mypy_boto3_s3 import S3Client

MiB = 1 << 20
T = TypeVar("T")
#: Opens a download's file, empty, for writing (again on each retry).
Sink = Callable[[], IO[bytes]]


@dataclass(frozen=True)
class ClientOptions:
    """How the S3 client behaves: connections, timeouts, retries and transfer sizes."""

    #: Connections kept open; also bounds the transfers and checks run at once.
    max_pool_connections: int = 32
    #: Seconds to wait for a connection to open, and for the server to send the next bytes.
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    #: botocore's retry mode (``standard`` or ``adaptive``), and attempts per request, the
    #: first one included.
    retry_mode: str = "standard"
    max_attempts: int = 8
    #: Seconds one request may spend waiting on a server that does not answer, over all its
    #: attempts: each attempt that timed out counts its timeout and the backoff after it, and
    #: no attempt starts that could take that past this bound. So a server that accepts
    #: connections and never answers fails a request in at most this long (about 40 s with
    #: these defaults), whatever ``max_attempts`` allows; errors the server answers with
    #: (throttling, 5xx) are retried as ``max_attempts`` says.
    stall_timeout: float = 60.0
    #: The official worker's minimum transfer rate, in bytes a second (0: none): a batch of
    #: transfers (a job's inputs, a sync, a submission's uploads) that moves less for
    #: ``min_rate_seconds`` in a row, no file finishing meanwhile, fails with a StorageError.
    min_rate: float = 10_000.0
    min_rate_seconds: float = 60.0
    #: Files at least this large are uploaded in parts, that many bytes each, in parallel.
    multipart_threshold: int = 16 * MiB
    multipart_chunksize: int = 16 * MiB

    @classmethod
    def high_throughput(cls) -> ClientOptions:
        """Many connections and large parts, for big transfers on a fast network."""
        return cls(
            max_pool_connections=64,
            read_timeout=30.0,
            retry_mode="adaptive",
            max_attempts=10,
            stall_timeout=90.0,
            multipart_threshold=64 * MiB,
            multipart_chunksize=64 * MiB,
        )

    @classmethod
    def low_latency(cls) -> ClientOptions:
        """Few connections, short timeouts and few retries, for interactive use."""
        return cls(
            max_pool_connections=8,
            connect_timeout=3.0,
            read_timeout=10.0,
            max_attempts=3,
            stall_timeout=25.0,
            multipart_threshold=8 * MiB,
            multipart_chunksize=8 * MiB,
        )

    def patience(self) -> Patience:
        """The timeouts the direct path and the retry handlers bound requests by."""
        return Patience(self.connect_timeout, self.read_timeout, self.stall_timeout)


@dataclass(frozen=True)
class S3Config:
    """Where S3 is and who we are there; unset fields follow boto3's default chain
    (environment, ``~/.aws``, instance roles), ``AWS_ENDPOINT_URL_S3`` included."""

    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    options: ClientOptions = field(default_factory=ClientOptions)
    #: The account that must own every bucket used (``x-amz-expected-bucket-owner`` on each
    #: request, as the official client sends it), so that no job's data goes to or comes from
    #: a bucket of the same name in another account. None: the credentials' own account, from
    #: the credentials when they carry it, else from STS ``GetCallerIdentity`` (once).
    bucket_owner: str | None = None
    #: Whether requests carry the expected owner. None: when the endpoint is AWS's (a host in
    #: one of botocore's partitions); False for a server without accounts.
    check_bucket_owner: bool | None = None

    def client(self) -> S3Client:
        """A client for this configuration, shared while the environment it was made
        in stays the same: making one costs a tenth of a second (botocore loads its service
        model), and clients are thread-safe."""
        return self._connection().client

    def credentials(self) -> Credentials | None:
        """The credentials the client signs with; None when boto3's chain found none."""
        return self._connection().credentials

    def _connection(self) -> _Connection:
        env = tuple(sorted((k, v) for k, v in os.environ.items() if _client_reads(k)))
        return _connect(self, env)

    def _new_connection(self) -> _Connection:
        o = self.options
        retries: Any = {"mode": o.retry_mode, "total_max_attempts": o.max_attempts}
        try:
            session = boto3.session.Session(
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
                aws_session_token=self.session_token,
                profile_name=self.profile,
            )
            client = session.client(
                "s3",
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                config=Config(
                    max_pool_connections=o.max_pool_connections,
                    connect_timeout=o.connect_timeout,
                    read_timeout=o.read_timeout,
                    retries=retries,
                ),
            )
            # Before botocore's own retry handler, which would retry a silent server for as
            # many attempts as it allows.
            client.meta.events.register_first("needs-retry.s3", _unanswered(o.patience()))
        except (BotoCoreError, ValueError) as e:  # an unknown profile, an endpoint not a URL
            raise StorageError(f"cannot set up S3: {e}") from e
        owner, completions = _Owner(self, session, client), _Completions()
        events = client.meta.events
        events.register("before-parameter-build.s3", owner.add_to)
        events.register(f"before-parameter-build.s3.{_COMPLETE}", completions.before)
        events.register(f"after-call.s3.{_COMPLETE}", completions.after)
        return _Connection(client, session.get_credentials(), owner, completions)

    def transfer_config(self) -> TransferConfig:
        o = self.options
        return TransferConfig(
            multipart_threshold=o.multipart_threshold,
            multipart_chunksize=o.multipart_chunksize,
            max_concurrency=max(1, o.max_pool_connections // 4),
            # A range whose body stops coming is asked for again: as many times as fit in the
            # stall timeout, as for a request (s3transfer's default is 5).
            num_download_attempts=max(1, min(5, int(o.stall_timeout // o.read_timeout))),
        )


class _Connection(NamedTuple):
    client: S3Client
    credentials: Credentials | None
    owner: _Owner
    completions: _Completions


class _Owner:
    """The account that must own the buckets a client uses: ``S3Config.bucket_owner``, or
    looked up when first needed, once per configuration (the client's cache)."""

    def __init__(self, config: S3Config, session: boto3.session.Session, client: S3Client):
        check = config.check_bucket_owner
        self.enabled = _on_aws(client.meta.endpoint_url) if check is None else check
        self._account = config.bucket_owner
        self._session, self._client = session, client
        self._lock = threading.Lock()

    def __call__(self) -> str | None:
        if not self.enabled:
            return None
        with self._lock:
            if self._account is None:
                self._account = self._look_up()
            return self._account

    def _look_up(self) -> str:
        credentials = self._session.get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials else None
        account = getattr(frozen, "account_id", None)  # botocore 1.37+, where a provider knows
        if account:
            return str(account)
        try:
            sts = self._session.client(
                "sts", region_name=self._client.meta.region_name, config=self._client.meta.config
            )
            return str(sts.get_caller_identity()["Account"])
        except (BotoCoreError, ClientError, KeyError) as e:
            raise StorageError(
                "cannot learn the account of these credentials, to check that the bucket is"
                f" theirs (STS GetCallerIdentity: {e}); set S3Config.bucket_owner to the"
                " bucket owner's account id, or check_bucket_owner=False for a server without"
                " accounts"
            ) from e

    def add_to(self, params: dict[str, Any], model: Any, context: Any, **kwargs: Any) -> None:
        """botocore's ``before-parameter-build`` event: the expected owner in every
        operation that takes it (a presigned URL excepted: it is never sent)."""
        shape = model.input_shape
        if shape is None or "ExpectedBucketOwner" not in shape.members:
            return
        if context.get("is_presign_request"):
            return
        account = self()
        if account:
            params.setdefault("ExpectedBucketOwner", account)


def _on_aws(endpoint_url: str) -> bool:
    """Whether the endpoint is AWS's: its host in the DNS suffix of a partition botocore
    knows (``amazonaws.com``, ``api.aws``, ``amazonaws.com.cn``, ...)."""
    host = (urlsplit(endpoint_url).hostname or "").lower()
    return any(host == s or host.endswith("." + s) for s in _aws_dns_suffixes())


@functools.lru_cache(maxsize=1)
def _aws_dns_suffixes() -> tuple[str, ...]:
    partitions = create_loader().load_data("partitions")["partitions"]
    outputs = [p["outputs"] for p in partitions]
    return tuple({o[k] for o in outputs for k in ("dnsSuffix", "dualStackDnsSuffix") if k in o})


#: The request that ends a multipart upload.
_COMPLETE = "CompleteMultipartUpload"
_UPLOAD = "jobattach-upload"


class _Completions:
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


def _client_reads(variable: str) -> bool:
    """Whether boto3 reads the environment variable when it makes a client."""
    return variable.startswith("AWS_") or variable.lower() in _PROXY_VARIABLES


_PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "no_proxy"})


@functools.lru_cache(maxsize=16)
def _connect(config: S3Config, env: tuple[tuple[str, str], ...]) -> _Connection:
    return config._new_connection()


class NoAnswer(BotoCoreError):
    """A request stopped after waiting on a silent server for the stall timeout."""

    fmt = "{why}"


_UNANSWERED = "jobattach-unanswered"


def _unanswered(patience: Patience) -> Callable[..., None]:
    """botocore's ``needs-retry`` handler that ends a request (raising ``NoAnswer``) once
    another attempt could take its waiting on a silent server past the stall timeout."""

    def handler(
        attempts: int,
        caught_exception: BaseException | None = None,
        request_dict: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if caught_exception is None or request_dict is None:
            return
        context = request_dict["context"]  # one per request, kept across its attempts
        unanswered = context.setdefault(_UNANSWERED, Unanswered(patience))
        # botocore's longest backoff before the next attempt, after an error not throttling
        delay = min(20.0, 0.05 * 2.0 ** (attempts - 1))
        wait = patience.wait_of(caught_exception)
        why = unanswered.stop(wait, delay, attempts, type(caught_exception).__name__)
        if why is not None:
            raise NoAnswer(why=why)

    return handler


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


class Bucket:
    """One bucket, and the operations the host performs on it. Thread-safe."""

    def __init__(self, name: str, config: S3Config | None = None) -> None:
        self.name = name
        self.config = config or S3Config()
        self._connection = self.config._connection()
        self.client = self._connection.client
        self._transfer = self.config.transfer_config()
        self._wire = _wire_for(self)
        self._tls: ssl.SSLContext | Literal[False] | None = (
            s3loop.tls_for(self._wire) if self._wire else False
        )

    def create(self) -> None:
        """Creates the bucket if it does not exist yet."""
        with _storage_errors("create bucket", self.name):
            try:
                self.client.head_bucket(Bucket=self.name)
            except ClientError as e:
                if _status(e) != 404:
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
        with _storage_errors("check bucket", self.name):
            try:
                self.client.head_bucket(Bucket=self.name)
            except ClientError as e:
                if _status(e) == 404:
                    raise StorageError("the bucket does not exist", path=self.name) from e
                if _status(e) != 403:
                    raise

    def keys(self, prefix: str) -> set[str]:
        """Every key under ``prefix``, by one paginated listing."""
        return {key for key, _, _ in self.listing(prefix)}

    def listing(self, prefix: str) -> list[tuple[str, int, int]]:
        """(key, size, last modified in microseconds) of every object under ``prefix``."""
        out: list[tuple[str, int, int]] = []
        with _storage_errors("list", prefix):
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.name, Prefix=prefix):
                for obj in page.get("Contents", []):
                    modified = int(obj["LastModified"].timestamp() * 1_000_000)
                    out.append((obj["Key"], int(obj["Size"]), modified))
        return out

    def delete(self, keys: Iterable[str]) -> None:
        """Deletes objects, a thousand per request."""
        todo = list(keys)
        for i in range(0, len(todo), 1000):
            batch = todo[i : i + 1000]
            with _storage_errors("delete", batch[0]):
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
        with _storage_errors("list", prefix):
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
        extra: dict[str, Any] = {"Metadata": dict(metadata)} if metadata else {}
        try:
            small = os.stat(path).st_size < self.config.options.multipart_threshold
            with _storage_errors("upload", key):
                if not small:
                    return self._upload_in_parts(key, path, extra, create_only, progress, cancelled)
                with open(path, "rb") as f:
                    data = f.read()
                sent = self._direct(
                    "upload",
                    key,
                    lambda w: w.put(
                        key, data, metadata, digest=digest, create_only=create_only, moved=progress
                    ),
                )
                if isinstance(sent, Sent):
                    return sent
                if digest:
                    extra["ChecksumXXHASH128"] = checksum(digest)
                if create_only:
                    extra["IfNoneMatch"] = "*"
                try:
                    reply = self.client.put_object(Bucket=self.name, Key=key, Body=data, **extra)
                except ClientError as e:
                    if digest and e.response.get("Error", {}).get("Code") == "BadDigest":
                        raise FileChangedError(
                            "does not hold the content that was hashed: S3 refused it, as its"
                            " XXHASH128 differs; submit again once the files are final",
                            path=os.fspath(path),
                        ) from e
                    return _existing(e, create_only)
                if progress is not None:
                    progress(len(data))
                return Sent(reply.get("ETag"), there=True, maybe_ours=True)
        except OSError as e:
            raise FileAccessError(
                f"cannot read for upload: {e.strerror}", path=os.fspath(path)
            ) from e

    def _upload_in_parts(
        self,
        key: str,
        path: str | os.PathLike[str],
        extra: dict[str, Any],
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
        completions = self._connection.completions
        completions.start(self.name, key, create_only)
        try:
            self._managed(
                lambda tm, watch: tm.upload(os.fspath(path), self.name, key, extra, watch),
                progress,
                cancelled,
            )
        except ClientError as e:
            return _existing(e, create_only)
        finally:
            etag = completions.end(self.name, key)
        return Sent(etag, there=True, maybe_ours=True)

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
        retried like a failed request (its bytes counted again). ``progress`` and
        ``cancelled`` as for ``upload_file``.
        """
        try:
            if size is None or size >= self.config.options.multipart_threshold:
                known = [] if size is None else [self._known_size(key, size)]
                with _storage_errors("download", key), contextlib.ExitStack() as stack:
                    target = stack.enter_context(sink()) if sink else os.fspath(path)
                    self._managed(
                        lambda tm, watch: tm.download(self.name, key, target, None, watch + known),
                        progress,
                        cancelled,
                    )
            else:
                with sink() if sink else open(path, "wb") as f:
                    self._get_small(key, f, progress, size)
        except OSError as e:
            why = f"cannot write the download: {e.strerror}"
            raise FileAccessError(why, path=os.fspath(path)) from e

    def _known_size(self, key: str, size: int) -> _KnownSize:
        """Checks the object has the expected ``size`` (the HEAD the transfer manager would
        make), refusing it before any byte is written when not."""
        with _storage_errors("download", key):
            found = int(self.client.head_object(Bucket=self.name, Key=key)["ContentLength"])
        if found != size:
            raise StorageError(f"S3 download failed ({unexpected_size(found, size)})", path=key)
        return _KnownSize(size)

    def _get_small(
        self,
        key: str,
        f: IO[bytes],
        progress: Callable[[int], None] | None,
        size: int | None,
    ) -> None:
        """One GET streamed to ``f``, by the direct path when it can, telling ``progress`` of
        its bytes; a connection dropped mid-stream is retried like a failed request. An
        object not of the expected ``size`` is refused before any of it is written."""
        got = self._direct("download", key, lambda w: w.get_to(key, f, progress, size))
        if got is not BOTO3:
            return
        with _storage_errors("download", key):
            for attempt in range(1, self.config.options.max_attempts + 1):
                f.seek(0)
                f.truncate()
                try:
                    reply = self.client.get_object(Bucket=self.name, Key=key)
                    with closing(reply["Body"]) as body:
                        if size is not None and reply["ContentLength"] != size:
                            why = unexpected_size(reply["ContentLength"], size)
                            raise StorageError(f"S3 download failed ({why})", path=key)
                        for chunk in iter(functools.partial(body.read, MiB), b""):
                            f.write(chunk)
                            if progress is not None:
                                progress(len(chunk))
                    return
                except (ResponseStreamingError, IncompleteReadError):
                    if attempt == self.config.options.max_attempts:
                        raise

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

        requests = [
            s3loop.Request("GET", t.key, t.path, sink=t.sink, size=t.size) for t in transfers
        ]
        sizes = [t.size for t in transfers]
        self._many("download", requests, sizes, one, done, cancelled, progress=progress)

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
            s3loop.Request("PUT", t.key, t.path, t.metadata, t.digest, t.create_only)
            for t in transfers
        ]
        sizes = [t.size for t in transfers]
        self._many(
            "upload", requests, sizes, one, done, cancelled, outcome, unfinished, progress=progress
        )

    def metadata_many(self, keys: Sequence[str]) -> list[dict[str, str] | None]:
        """``metadata`` of each key (None where there is no such object), many at a time."""
        found: list[dict[str, str] | None] = [None] * len(keys)

        def each(i: int, result: Any) -> None:
            found[i] = result

        requests = [s3loop.Request("HEAD", k) for k in keys]
        self._many(
            "check",
            requests,
            [0] * len(keys),
            lambda i, _: self.metadata(keys[i]),
            None,
            None,
            each,
        )
        return found

    def _many(
        self,
        operation: str,
        requests: list[s3loop.Request],
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
        o = self.config.options
        pace = MinimumRate(o.min_rate, o.min_rate_seconds, cancelled or threading.Event(), progress)
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
        requests: list[s3loop.Request],
        sizes: Sequence[int | None],
        one: Callable[[int, MinimumRate], Any],
        done: Callable[[int], None] | None,
        pace: MinimumRate,
        result: Callable[[int, Any], None] | None,
        unfinished: Callable[[list[int]], None] | None,
    ) -> None:
        """``_many``'s work, watched by ``pace``."""
        cancelled = pace.cancelled
        threshold = self.config.options.multipart_threshold
        if requests and requests[0].method == "PUT":  # bodies held in memory while sent
            threshold = min(threshold, s3loop.MAX_PUT_BYTES + 1)
        wire, tls = self._wire, self._tls  # once: a fallback on another thread may clear it
        loop = (wire, tls) if wire is not None and tls is not False else None
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

        pool = ThreadPoolExecutor(self._workers(len(requests)), thread_name_prefix="s3-many")
        try:
            threaded = [pool.submit(each, i) for i in large]
            if loop and small:
                on_loop = [requests[i] for i in small]
                left = self._on_loop(
                    *loop,
                    operation,
                    on_loop,
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
        wire: Wire,
        tls: ssl.SSLContext | None,
        operation: str,
        requests: list[s3loop.Request],
        finished: Callable[[int, Any], None],
        pace: MinimumRate,
        started: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Sends ``requests`` on the event loop; returns those boto3 must do."""
        o = self.config.options
        settings = s3loop.Settings(o.max_pool_connections, o.connect_timeout, o.read_timeout)
        try:
            left = s3loop.run(
                wire,
                tls,
                requests,
                settings,
                done=finished,
                cancelled=pace.cancelled,
                started=started,
                moved=pace.moved,
            )
        except BotoCoreError as e:  # signing: credentials that could not be refreshed
            raise StorageError(f"S3 {operation} failed: {e}", path=requests[0].key) from e
        except s3loop.ItemFailed as e:
            req, error = requests[e.index], e.error
            if isinstance(error, Failed):
                why = f"S3 {operation} failed ({error.code}){_HINTS.get(error.code, '')}"
                raise StorageError(why, path=req.key) from e
            if isinstance(error, OSError):
                doing = "read for upload" if operation == "upload" else "write the download"
                why = f"cannot {doing}: {error.strerror}"
                raise FileAccessError(why, path=os.fspath(req.path or "")) from error
            raise error from None
        if left:
            self._wire = None  # as for a single request: boto3 does the rest, and what follows
        return left

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
        with _storage_errors("put", key):
            self.client.put_object(Bucket=self.name, Key=key, Body=data, **extra)

    def version(self, key: str) -> tuple[str, int] | None:
        """The ETag and size of the object at ``key``, or None when there is none."""
        with _storage_errors("check", key):
            try:
                reply = self.client.head_object(Bucket=self.name, Key=key)
            except ClientError as e:
                if _status(e) == 404:
                    return None
                raise
            return str(reply["ETag"]), int(reply["ContentLength"])

    def delete_version(self, key: str, etag: str) -> bool:
        """Deletes the object at ``key`` only while it is the one whose ETag is ``etag``, so
        that an object another writer put there since stays; whether it did. S3 checks the
        ETag itself (a conditional DeleteObject, ``If-Match``); for a server that ignores
        If-Match (``rclone serve s3``), the ETag is also read just before, which leaves only
        the moment between that HEAD and the DELETE for another writer's object to be lost."""
        found = self.version(key)
        if found is None or found[0] != etag:
            return False
        with _storage_errors("delete", key):
            try:
                self.client.delete_object(Bucket=self.name, Key=key, IfMatch=etag)
            except ClientError as e:
                if _status(e) in (404, EXISTS_STATUS):  # gone, or no longer that object
                    return False
                raise
        return True

    @property
    def expected_owner(self) -> str | None:
        """The account every request expects to own the bucket, or None when unchecked."""
        return self._connection.owner()

    def metadata(self, key: str) -> dict[str, str] | None:
        """An object's user metadata, or None when there is no such object."""
        found = self._direct("check", key, lambda w: w.head(key))
        if found is not BOTO3:
            return cast("dict[str, str] | None", found)
        with _storage_errors("check", key):
            try:
                return dict(self.client.head_object(Bucket=self.name, Key=key).get("Metadata", {}))
            except ClientError as e:
                if _status(e) == 404:
                    return None
                raise

    def get_bytes(self, key: str) -> tuple[bytes, dict[str, str]]:
        """Reads a small object and its user metadata."""
        with _storage_errors("get", key):
            reply = self.client.get_object(Bucket=self.name, Key=key)
            return reply["Body"].read(), dict(reply.get("Metadata", {}))

    def get_many(self, keys: Sequence[str]) -> list[tuple[bytes, dict[str, str]]]:
        """Reads many small objects and their metadata by concurrent GETs, in ``keys``' order."""
        with ThreadPoolExecutor(self._workers(len(keys)), thread_name_prefix="s3-get") as pool:
            return list(pool.map(self.get_bytes, keys))

    def _direct(self, operation: str, key: str, call: Callable[[Wire], T]) -> T | object:
        """``call`` on the direct path (s3wire), or ``BOTO3`` when boto3 must do the operation:
        no direct path here, or a reply only boto3 handles, after which boto3 does them all."""
        wire = self._wire
        if wire is None:
            return BOTO3
        try:
            return call(wire)
        except Fallback:
            self._wire = None
            return BOTO3
        except Failed as e:
            raise StorageError(f"S3 {operation} failed ({e.code})", path=key) from e

    def _workers(self, jobs: int) -> int:
        return max(1, min(jobs, self.config.options.max_pool_connections))


#: What ``Bucket._direct`` returns when boto3 must do the operation.
BOTO3 = object()


def _wire_for(bucket: Bucket) -> Wire | None:
    try:
        return Wire.for_bucket(
            bucket.client,
            bucket._connection.credentials,
            bucket.name,
            bucket.config.options.max_attempts,
            bucket._connection.owner,
            bucket.config.options.patience(),
        )
    except (BotoCoreError, ValueError):  # a name botocore refuses: boto3 will say so
        return None


def _status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _existing(e: ClientError, create_only: bool) -> Sent:
    """A create-only upload refused because the key exists, as a ``Sent`` (maybe ours when
    botocore had sent it before: an earlier attempt may have landed); any other error raised."""
    if not (create_only and _status(e) == EXISTS_STATUS):
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


_CREDENTIALS = "; check the credentials, and that they may use this bucket"
#: What to check, by the error code S3 answered with.
_HINTS = {
    "403": _CREDENTIALS,
    "AccessDenied": _CREDENTIALS,
    "InvalidAccessKeyId": "; check the access key",
    "SignatureDoesNotMatch": "; check the secret key",
    "ExpiredToken": "; the session token has expired: refresh the credentials",
    "NoSuchBucket": "; check the bucket's name",
}


@contextmanager
def _storage_errors(operation: str, key: str) -> Iterator[None]:
    """Turns boto3's exceptions inside the block into ``StorageError``."""
    try:
        yield
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "") or str(_status(e))
        hint = _HINTS.get(code, "")
        raise StorageError(f"S3 {operation} failed ({code}): {e}{hint}", path=key) from e
    except (BotoCoreError, Boto3Error, RetriesExceededError) as e:
        raise StorageError(f"S3 {operation} failed: {e}", path=key) from e

"""Where S3 is, who we are there, and how the client behaves: ``S3Config`` and
``ClientOptions``, the credentials' and region's resolution by boto3's chain, and the check
that every bucket used is owned by the expected account.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.loaders import create_loader

from .boto_transport import COMPLETE, Completions, unanswered
from .errors import StorageError
from .retry import Patience

if TYPE_CHECKING:
    from botocore.credentials import Credentials
    from mypy_boto3_s3 import S3Client

MiB = 1 << 20


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


#: The client options every object store takes (S3's, and the others' where they have the
#: same knobs): connections, timeouts, retries and part sizes, with the same presets.
CloudClientOptions = ClientOptions


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
            client.meta.events.register_first("needs-retry.s3", unanswered(o.patience()))
        except (BotoCoreError, ValueError) as e:  # an unknown profile, an endpoint not a URL
            raise StorageError(f"cannot set up S3: {e}") from e
        owner, completions = _Owner(self, session, client), Completions()
        events = client.meta.events
        events.register("before-parameter-build.s3", owner.add_to)
        events.register(f"before-parameter-build.s3.{COMPLETE}", completions.before)
        events.register(f"after-call.s3.{COMPLETE}", completions.after)
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
    completions: Completions


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


def _client_reads(variable: str) -> bool:
    """Whether boto3 reads the environment variable when it makes a client."""
    return variable.startswith("AWS_") or variable.lower() in _PROXY_VARIABLES


_PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "no_proxy"})


@functools.lru_cache(maxsize=16)
def _connect(config: S3Config, env: tuple[tuple[str, str], ...]) -> _Connection:
    return config._new_connection()

"""Single-object requests (GET, PUT, HEAD of small objects) signed and sent directly.

boto3 spends milliseconds of CPU per request on its service model, events and response
parsing: with thousands of small files that, not the network, bounds a transfer. A request of
this module is a SigV4 signature (tested equal to botocore's) and one round trip through the
client's own HTTP session, so proxies, TLS verification, pool size and timeouts stay as boto3
was configured, at a fraction of the CPU.

``Wire`` is a ``transport.Transport``. It handles only the plain cases: success, a missing
object, and failures worth retrying (throttling, server errors, dropped connections), retried
by the one retry policy (``retry``). Anything else (a redirect to another region, an
authorization error) raises ``Fallback``, and ``transport.Router`` repeats the operation
through boto3, which deals with it as it always does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlsplit

from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError
from urllib3.exceptions import HTTPError as Urllib3Error

from .retry import NO_BOUND, RETRY_STATUS, Attempts, Failed, Patience
from .transport import Fallback, Moved, Sent

if TYPE_CHECKING:
    from botocore.credentials import Credentials
    from mypy_boto3_s3 import S3Client

#: Sent, unsigned, with every direct request, so server logs tell them apart from boto3's.
USER_AGENT = "jobattach-s3wire/1"
_CHUNK = 1 << 20
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class Missing(Exception):
    """The object of a HEAD request does not exist (404)."""


#: A create-only PUT refused because the key exists: "412 Precondition Failed".
EXISTS_STATUS = 412
#: A conditional request that raced another writer ("409 ConditionalRequestConflict"): S3
#: asks for it to be sent again.
CONFLICT_STATUS = 409


class _Exists(Exception):
    """A create-only PUT was refused: the key exists."""

    def __init__(self, resent: bool) -> None:
        super().__init__("exists")
        self.resent = resent


class Wire:
    """Direct requests for the objects of one bucket."""

    def __init__(
        self,
        client: S3Client,
        credentials: Credentials,
        bucket: str,
        attempts: int,
        owner: Callable[[], str | None] = lambda: None,
        patience: Patience = NO_BOUND,
    ):
        # The bucket's URL as botocore builds it (path or virtual-host style, custom endpoint
        # or not), read off a presigned URL for a one-letter key.
        url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
        parts = urlsplit(url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self._host = parts.netloc
        self._prefix = parts.path[: -len("/k")]
        self._region = client.meta.region_name or "us-east-1"
        self._credentials = credentials
        self.http: Any = client._endpoint.http_session  # type: ignore[attr-defined]  # boto3's pool, proxies, TLS
        self.attempts = attempts
        #: The account that must own the bucket (``x-amz-expected-bucket-owner``), or None.
        self.owner = owner
        self.patience = patience

    @classmethod
    def for_bucket(
        cls,
        client: S3Client,
        credentials: Credentials | None,
        bucket: str,
        attempts: int,
        owner: Callable[[], str | None] = lambda: None,
        patience: Patience = NO_BOUND,
    ) -> Wire | None:
        """A Wire, or None where it cannot work like boto3 (no credentials, an anonymous
        client, a botocore without the session it borrows)."""
        if credentials is None or not hasattr(getattr(client, "_endpoint", None), "http_session"):
            return None
        frozen = credentials.get_frozen_credentials()
        if not (frozen.access_key and frozen.secret_key):
            return None
        return cls(client, credentials, bucket, attempts, owner, patience)

    def get_to(
        self, key: str, out: IO[bytes], moved: Moved | None = None, size: int | None = None
    ) -> None:
        """Writes the object's content to ``out``, telling ``moved`` of its bytes; an object
        not of the expected ``size`` is refused before any of it is written."""

        def stream(reply: Any) -> None:
            # Reads of exactly what is left: urllib3 allocates the whole amount asked for.
            left = int(reply.headers["content-length"])
            if size is not None and left != size:
                raise Failed(unexpected_size(left, size))
            out.seek(0)
            out.truncate()
            while left > 0:
                chunk = reply.raw.read(min(_CHUNK, left))
                if not chunk:
                    raise ConnectionError(f"the connection closed {left} bytes short")
                out.write(chunk)
                left -= len(chunk)
                if moved is not None:
                    moved(len(chunk))

        self._send("GET", key, stream=stream)

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
        """Writes an object; the payload's SHA-256 is signed, so S3 checks what arrived, and
        with ``digest`` S3 refuses a body that does not hash to it (``put_headers``).
        ``moved`` hears of its bytes as they are handed to the connection."""
        headers = put_headers(metadata, digest, create_only)
        try:
            reply = self._send("PUT", key, headers=headers, body=data, moved=moved)
        except _Exists as e:
            return Sent(None, there=True, maybe_ours=e.resent)
        return Sent(reply.get("etag"), there=True, maybe_ours=True)

    def head(self, key: str) -> dict[str, str] | None:
        """The object's user metadata, or None when it does not exist."""
        try:
            headers = self._send("HEAD", key)
        except Missing:
            return None
        return user_metadata(headers)

    def _send(
        self,
        method: str,
        key: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        stream: Any = None,
        moved: Moved | None = None,
    ) -> dict[str, str]:
        path = self.path_of(key)
        attempts = Attempts(self.attempts, self.patience)
        while True:
            signed = self.sign(method, path, dict(headers or {}), body)
            sent = _CountedBody(body, moved) if body and moved else None
            request = AWSPreparedRequest(
                method,
                self.origin + path,
                cast(Any, signed),
                sent or body,
                stream_output=stream is not None,
            )
            try:
                reply = self.http.send(request)
                status = reply.status_code
                if status in (200, 204):
                    if stream is not None:
                        stream(reply)
                    return {k.lower(): v for k, v in reply.headers.items()}
                text = reply.raw.read() if stream is not None else reply.content
            except (HTTPClientError, BotoConnectionError, Urllib3Error, ConnectionError) as e:
                if sent is not None and sent.error is not None:
                    raise sent.error from None  # ``moved`` stopped it: not the connection's fault
                try:
                    delay = attempts.retry(type(e).__name__, self.patience.wait_of(e))
                except Failed as failed:
                    raise failed from e
                time.sleep(delay)
                continue
            if status == 404 and method == "HEAD":
                raise Missing()
            conditional = "if-none-match" in (headers or {})
            if status == EXISTS_STATUS and conditional:
                raise _Exists(resent=attempts.number > 1)
            if status not in RETRY_STATUS and not (status == CONFLICT_STATUS and conditional):
                raise Fallback()
            time.sleep(attempts.retry(error_code(text) or str(status)))

    def path_of(self, key: str) -> str:
        """The request path of an object of this bucket."""
        return self._prefix + "/" + quote(key, safe="/~")

    def sign(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> dict[str, str]:
        """``headers`` with the SigV4 ones added: every header sent is signed.

        Written here rather than taken from botocore, as it costs the small-object path:
        signing an 8 KiB PUT with metadata took 26-28 us of CPU here and 120-137 us through
        ``botocore.auth.S3SigV4Auth.add_auth`` (``python bench/sign_bench.py``, 10,000
        requests, two cores), against 100-170 us for a whole request on the event loop.
        tests/test_s3wire.py checks the signatures are botocore's."""
        creds = self._credentials.get_frozen_credentials()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        payload = _EMPTY_SHA256 if not body else hashlib.sha256(body).hexdigest()
        headers.update({"host": self._host, "x-amz-content-sha256": payload, "x-amz-date": stamp})
        if creds.token:
            headers["x-amz-security-token"] = creds.token
        owner = self.owner()
        if owner:
            headers["x-amz-expected-bucket-owner"] = owner
        names = sorted(headers)
        canonical = "\n".join(
            [
                method,
                path,
                "",
                *(f"{n}:{' '.join(headers[n].split())}" for n in names),
                "",
                ";".join(names),
                payload,
            ]
        )
        scope = f"{stamp[:8]}/{self._region}/s3/aws4_request"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{digest}"
        key = _signing_key(str(creds.secret_key), stamp[:8], self._region)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope},"
            f" SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        if body is not None:
            headers["content-length"] = str(len(body))
        headers["user-agent"] = USER_AGENT
        return headers


class _CountedBody(io.BytesIO):
    """A request body that tells ``moved`` of its bytes as the connection reads them, a MiB at a
    time; what ``moved`` raises is kept, for the request to raise once the send has failed."""

    def __init__(self, data: bytes, moved: Moved) -> None:
        super().__init__(data)
        self._moved, self._unsaid = moved, 0
        self.error: BaseException | None = None

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self._unsaid += len(chunk)
        if self._unsaid >= _CHUNK or not chunk:
            said, self._unsaid = self._unsaid, 0
            try:
                self._moved(said)
            except Exception as e:
                self.error = e
                raise
        return chunk


_META = "x-amz-meta-"


def unexpected_size(got: int, size: int) -> str:
    """Why an object whose reply announces ``got`` bytes, not ``size``, is refused."""
    return f"the object has {got} bytes where {size} were expected"


def metadata_headers(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """The request headers that give an object its user metadata."""
    return {f"{_META}{k.lower()}": v for k, v in (metadata or {}).items()}


def put_headers(
    metadata: Mapping[str, str] | None, digest: str | None, create_only: bool
) -> dict[str, str]:
    """The headers of a PUT: its user metadata; with ``digest``, S3's XXHASH128 checksum of
    the content, so that S3 refuses a body that does not hash to it (``BadDigest``) and keeps
    it (named by its algorithm, as SDKs do, which emulators need to keep it too); and,
    ``create_only``, ``If-None-Match: *``, so that it never replaces an object."""
    headers = metadata_headers(metadata)
    if digest:
        headers["x-amz-checksum-xxhash128"] = checksum(digest)
        headers["x-amz-sdk-checksum-algorithm"] = "XXHASH128"
    if create_only:
        headers["if-none-match"] = "*"
    return headers


def checksum(digest: str) -> str:
    """S3's ``x-amz-checksum-xxhash128`` of content whose xxh3-128 is ``digest`` (32 hex
    digits): base64 of the digest's canonical, big-endian 16 bytes. botocore's own XXHASH128
    (awscrt's ``new_xxhash3_128``, botocore 1.44) gives the same value for the same bytes:
    checked with awscrt 0.38.1 on empty, 3-byte, 1 kB and 5 MB bodies."""
    return base64.b64encode(bytes.fromhex(digest)).decode("ascii")


def digest_of(value: str) -> str | None:
    """The xxh3-128 (32 hex digits) an ``x-amz-checksum-xxhash128`` value says, the inverse
    of :func:`checksum`; None for one that is not a whole object's (a multipart upload's
    ends in ``-<parts>``) or not 16 bytes of base64."""
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return raw.hex() if len(raw) == 16 else None


def user_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    """An object's user metadata from its reply headers (names in lower case)."""
    return {k[len(_META) :]: v for k, v in headers.items() if k.startswith(_META)}


def error_code(body: bytes) -> str:
    """The ``<Code>`` of an S3 error document, or empty."""
    start, end = body.find(b"<Code>"), body.find(b"</Code>")
    return body[start + 6 : end].decode("ascii", "replace") if 0 <= start < end else ""


def _signing_key(secret: str, day: str, region: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key

"""The transports behind one interface: one owner of the fallback policy, one retry policy."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from conftest import Fault, OnlyBoto3, S3Proxy
from jobattach import StorageError
from jobattach.local_s3 import ACCESS_KEY, SECRET_KEY
from jobattach_host.retry import Attempts, Failed, Patience
from jobattach_host.s3config import ClientOptions, S3Config
from jobattach_host.s3wire import USER_AGENT
from jobattach_host.storage import Bucket, Transfer

SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"


def _config(endpoint: str, **options: int) -> S3Config:
    return S3Config(
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        region="us-west-2",
        endpoint_url=endpoint,
        options=ClientOptions(**options),  # type: ignore[arg-type]
    )


def _files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"f{i}.bin" for i in range(count)]
    for i, p in enumerate(paths):
        p.write_bytes(b"x" * (100 + i))
    return paths


def _fast(bucket: Bucket) -> tuple[object, object]:
    """The bucket's fast transports, the direct path and the event loop (None when off)."""
    return bucket._transport.direct, bucket._transport.loop


def test_after_one_fallback_boto3_makes_every_request_batches_included(
    s3_proxy: Callable[[Fault], S3Proxy], s3_endpoint: str, tmp_path: Path
) -> None:
    Bucket("fallback", _config(s3_endpoint)).create()
    only_boto3 = OnlyBoto3()
    bucket = Bucket("fallback", _config(s3_proxy(only_boto3).url))
    assert None not in _fast(bucket)
    (tmp_path / "one").write_bytes(b"one")
    bucket.upload_file("Data/one", tmp_path / "one")
    assert only_boto3.refused == 1
    assert _fast(bucket) == (None, None)

    paths = _files(tmp_path / "src", 6)
    bucket.upload_files([Transfer(f"Data/{p.name}", p, p.stat().st_size) for p in paths])
    found = bucket.metadata_many([f"Data/{p.name}" for p in paths])
    assert found == [{}] * len(paths)
    assert only_boto3.refused == 1  # the event loop was never tried again


def test_a_bucket_the_direct_path_cannot_address_is_left_to_boto3(s3_endpoint: str) -> None:
    bucket = Bucket("no such/name", _config(s3_endpoint))
    assert _fast(bucket) == (None, None)
    with pytest.raises(StorageError, match="Invalid bucket name") as err:
        bucket.metadata_many(["Data/a", "Data/b"])  # boto3's own refusal, not a crash
    assert err.value.path in ("Data/a", "Data/b")


class FailFirst:
    """Answers the first ``failures`` requests of each transport (the direct path's and
    boto3's, told apart by their User-Agent) with 503 SlowDown; counts them by transport."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.injected = {"direct": 0, "boto3": 0}
        self.lock = threading.Lock()

    def __call__(self, request: BaseHTTPRequestHandler, body: bytes) -> bool:
        if request.command not in ("PUT", "GET", "HEAD"):
            return False
        side = "direct" if request.headers.get("User-Agent") == USER_AGENT else "boto3"
        with self.lock:
            if 0 <= self.failures <= self.injected[side]:
                return False
            self.injected[side] += 1
        request.send_response(503)
        request.send_header("Content-Length", str(len(SLOW_DOWN)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(SLOW_DOWN)
        return True


def _sends(transport: str, bucket: Bucket, path: Path) -> None:
    if transport == "loop":
        bucket.upload_files([Transfer("Data/x", path, path.stat().st_size)])
    elif transport == "direct":
        bucket.upload_file("Data/x", path)
    else:
        bucket.put_bytes("Data/x", path.read_bytes())


@pytest.mark.parametrize("transport", ["direct", "loop", "boto3"])
def test_every_transport_retries_by_the_same_policy(
    transport: str, s3_proxy: Callable[[Fault], S3Proxy], s3_endpoint: str, tmp_path: Path
) -> None:
    Bucket("retried", _config(s3_endpoint)).create()
    f = tmp_path / "x.bin"
    f.write_bytes(b"content")
    side = "boto3" if transport == "boto3" else "direct"

    recovers = FailFirst(2)
    _sends(transport, Bucket("retried", _config(s3_proxy(recovers).url, max_attempts=3)), f)
    assert recovers.injected[side] == 2
    assert Bucket("retried", _config(s3_endpoint)).get_bytes("Data/x")[0] == b"content"

    stays = FailFirst(-1)
    with pytest.raises(StorageError, match="SlowDown") as err:
        _sends(transport, Bucket("retried", _config(s3_proxy(stays).url, max_attempts=2)), f)
    assert err.value.path == "Data/x"
    assert stays.injected == {"direct": 0, "boto3": 0, side: 2}  # each attempt, none more


def test_attempts_end_at_their_limit_or_at_the_stall_timeout() -> None:
    answered = Attempts(3)
    assert [answered.retry("SlowDown") <= 2.0 for _ in range(2)] == [True, True]
    with pytest.raises(Failed, match="SlowDown"):
        answered.retry("SlowDown")

    silent = Attempts(100, Patience(connect_timeout=1.0, read_timeout=4.0, stall_timeout=10.0))
    silent.bound(4.0, 0.5, "ReadTimeout")  # 4 s waited; another 4.5 s fits in 10
    with pytest.raises(Failed, match=r"no answer in 8\.5 s .*ReadTimeout"):
        silent.bound(4.0, 0.5, "ReadTimeout")

"""The host's S3 transport against a real local S3 server."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

import jobattach
from jobattach import StorageError
from jobattach.local_s3 import ACCESS_KEY, SECRET_KEY
from jobattach_host.s3config import ClientOptions, S3Config
from jobattach_host.storage import Bucket


def _config(endpoint: str, options: ClientOptions | None = None) -> S3Config:
    return S3Config(
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        region="us-west-2",
        endpoint_url=endpoint,
        options=options or ClientOptions(),
    )


@pytest.fixture
def bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> Bucket:
    b = Bucket(f"storage-{request.node.name[:40].replace('_', '-').lower()}", _config(s3_endpoint))
    b.create()
    return b


def test_existence_is_checked_in_one_batch(bucket: Bucket) -> None:
    present = {f"Data/{i:032x}.xxh128" for i in range(0, 120, 3)}
    for key in present:
        bucket.put_bytes(key, b"x")
    asked = [f"Data/{i:032x}.xxh128" for i in range(120)]
    assert bucket.existing(asked) == present
    assert bucket.existing([]) == set()
    assert bucket.keys("Data/") == present


def test_large_files_go_up_in_parts_and_come_back_identical(
    bucket: Bucket, s3_endpoint: str, tmp_path: Path
) -> None:
    small_parts = Bucket(bucket.name, _config(s3_endpoint, ClientOptions.low_latency()))
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(20 << 20))  # over the 8 MiB threshold: three parts
    small_parts.upload_file("Data/big", src)
    head = small_parts.client.head_object(Bucket=bucket.name, Key="Data/big")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload's ETag counts its parts
    dest = tmp_path / "back.bin"
    small_parts.download_file("Data/big", dest)
    assert jobattach.hash_file(dest) == jobattach.hash_file(src)


def test_small_objects_keep_their_metadata(bucket: Bucket) -> None:
    bucket.put_bytes(
        "Manifests/m_input",
        b"{}",
        metadata={"asset-root": "/show/a", "asset-root-json": '"/show/\\u00e9"'},
        content_type="application/x-deadline-manifest-2023-03-03",
    )
    data, metadata = bucket.get_bytes("Manifests/m_input")
    assert data == b"{}"
    assert metadata == {"asset-root": "/show/a", "asset-root-json": '"/show/\\u00e9"'}


def test_errors_name_the_operation_and_key(bucket: Bucket, s3_endpoint: str) -> None:
    with pytest.raises(StorageError, match="S3 get failed \\(NoSuchKey\\)") as err:
        bucket.get_bytes("Manifests/absent")
    assert err.value.path == "Manifests/absent"
    assert not bucket.exists("Data/absent")
    other = Bucket("no-such-bucket-here", _config(s3_endpoint))
    with pytest.raises(StorageError, match="NoSuchBucket"):
        other.keys("Data/")


def test_an_unreachable_endpoint_is_a_storage_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    b = Bucket("b", _config(f"http://127.0.0.1:{port}", ClientOptions(max_attempts=1)))
    with pytest.raises(StorageError, match="S3 check failed") as err:
        b.exists("Data/x")
    assert err.value.path == "Data/x"


def test_the_endpoint_comes_from_the_environment_as_for_boto3(
    monkeypatch: pytest.MonkeyPatch, s3_endpoint: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    b = Bucket(
        "env-endpoint",
        S3Config(access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, region="us-west-2"),
    )
    assert b.client.meta.endpoint_url == s3_endpoint
    b.create()
    assert b.keys("") == set()


@pytest.mark.parametrize(
    ("preset", "pool", "attempts", "part"),
    [
        (ClientOptions(), 32, 8, 16),
        (ClientOptions.high_throughput(), 64, 10, 64),
        (ClientOptions.low_latency(), 8, 3, 8),
    ],
)
def test_presets_reach_the_client(
    preset: ClientOptions, pool: int, attempts: int, part: int
) -> None:
    config = S3Config(region="us-west-2", options=preset)
    settings: Any = config.client().meta.config
    assert settings.max_pool_connections == pool
    assert settings.retries["total_max_attempts"] == attempts
    assert config.transfer_config().multipart_chunksize == part << 20


def test_clients_are_shared_until_the_environment_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = S3Config(region="us-west-2")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
    first = config.client()
    assert config.client() is first
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2")
    second = config.client()
    assert second is not first
    assert second.meta.endpoint_url == "http://127.0.0.1:2"


def test_a_bounded_listing_answers_many_checks_and_heads_cover_the_rest(bucket: Bucket) -> None:
    present = {f"Data/{i:04d}" for i in range(0, 60, 2)}
    for key in present:
        bucket.put_bytes(key, b"x")
    bucket.put_bytes("Other/zzz", b"x")
    asked = [f"Data/{i:04d}" for i in range(60)]
    # The listing completes: 30 keys under the prefix, pages of 10, 2 * 60 / 10 = 12 allowed.
    assert bucket.existing(asked, under="Data/", page_size=10) == present
    # The listing is cut short (3 keys asked, pages of 1: 6 pages, reaching Data/0010): the
    # keys it did not reach are checked by HEAD.
    far = ["Data/0000", "Data/0058", "Data/0059"]
    assert bucket.existing(far, under="Data/", page_size=1) == {"Data/0000", "Data/0058"}

"""The S3-check cache: what it knows, and how a wiped bucket makes it forget."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jobattach.local_s3 import ACCESS_KEY, SECRET_KEY
from jobattach_host.s3_check_cache import EXPIRY_SECONDS, SAMPLE, S3CheckCache
from jobattach_host.s3config import S3Config
from jobattach_host.storage import Bucket


@pytest.fixture
def bucket(s3_endpoint: str) -> Bucket:
    b = Bucket(
        "check-cache",
        S3Config(
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            region="us-west-2",
            endpoint_url=s3_endpoint,
        ),
    )
    b.create()
    return b


def test_known_keys_are_per_bucket(tmp_path: Path) -> None:
    cache = S3CheckCache(tmp_path / "c.sqlite3")
    keys = [f"Data/{i:04d}" for i in range(1200)]  # more than one query batch
    cache.record("a", keys[::3])
    assert cache.known("a", keys) == set(keys[::3])
    assert cache.known("b", keys) == set()
    cache.forget("a")
    assert cache.known("a", keys) == set()


def test_keys_confirmed_long_ago_are_asked_again(tmp_path: Path) -> None:
    cache = S3CheckCache(tmp_path / "c.sqlite3")
    cache.record("a", ["Data/old"], at=time.time() - EXPIRY_SECONDS - 60)
    cache.record("a", ["Data/recent"], at=time.time() - EXPIRY_SECONDS + 60)
    assert cache.known("a", ["Data/old", "Data/recent"]) == {"Data/recent"}
    cache.record("a", ["Data/old"])  # confirmed again
    assert cache.known("a", ["Data/old"]) == {"Data/old"}


def test_trust_needs_a_sample_found_in_s3(bucket: Bucket, tmp_path: Path) -> None:
    keys = [f"Data/{i:04d}" for i in range(SAMPLE * 2)]
    for key in keys:
        bucket.put_bytes(key, b"x")
    cache = S3CheckCache(tmp_path / "c.sqlite3")
    cache.record(bucket.name, keys)
    assert cache.trusted(bucket, keys) == set(keys)
    for key in keys[: SAMPLE + 1]:  # more than a sample's worth gone: the sample must see one
        bucket.client.delete_object(Bucket=bucket.name, Key=key)
    assert cache.trusted(bucket, keys) == set()
    assert cache.known(bucket.name, keys) == set()  # and it forgot the whole bucket

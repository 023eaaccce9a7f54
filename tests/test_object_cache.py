"""The objects VIRTUAL mounts serve: fetched once, verified before use, bounded, shared by
processes, against the local S3 server."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
import xxhash

from conftest import Recorder, python_json, through
from jobattach import S3Config, StorageError
from jobattach_host.engine import layout
from jobattach_host.object_cache import ObjectCache
from jobattach_host.s3config import ClientOptions
from jobattach_host.storage import Bucket

DATA = layout("JA")


def _digest(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


@pytest.fixture
def bucket(aws_env: S3Config, request: pytest.FixtureRequest) -> Bucket:
    b = Bucket(f"cache-{abs(hash(request.node.name)) % 10**8}", aws_env)
    b.create()
    return b


def _put(bucket: Bucket, data: bytes, *, under: str | None = None) -> str:
    digest = under or _digest(data)
    bucket.put_bytes(DATA.data_key(digest), data)
    return digest


def _read(fd: int) -> bytes:
    try:
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


def _cache(bucket: Bucket, folder: Path, limit: int = 1 << 30) -> ObjectCache:
    folder.mkdir(exist_ok=True)
    return ObjectCache(folder, bucket, DATA.data_key, limit=limit)


def test_an_object_is_fetched_once_then_served_from_disk(bucket: Bucket, tmp_path: Path) -> None:
    data = os.urandom(5000)
    digest = _put(bucket, data)
    cache = _cache(bucket, tmp_path / "objects")
    assert _read(cache.open(digest, len(data))) == data
    assert _read(cache.open(digest, len(data))) == data
    assert (cache.stats.fetched, cache.stats.fetched_bytes, cache.stats.hits) == (1, 5000, 1)
    assert sorted(os.listdir(tmp_path / "objects")) == sorted([digest, digest + ".lock"])


@pytest.mark.parametrize("stored", [b"not the content", b"the real content!"])
def test_content_that_does_not_match_is_refused_and_never_kept(
    bucket: Bucket, tmp_path: Path, stored: bytes
) -> None:
    real = b"the real content"
    digest = _put(bucket, stored, under=_digest(real))  # another hash, or another size
    cache = _cache(bucket, tmp_path / "objects")
    for _ in range(2):
        with pytest.raises(StorageError, match=r"hash|bytes"):
            cache.open(digest, len(real))
    assert [n for n in os.listdir(tmp_path / "objects") if not n.endswith(".lock")] == []


def test_threads_asking_for_one_object_share_one_fetch(
    aws_env: S3Config, bucket: Bucket, tmp_path: Path, s3_proxy: Any
) -> None:
    data = os.urandom(200_000)
    digest = _put(bucket, data)
    rec = Recorder()
    proxied = through(s3_proxy(rec))
    cache = _cache(Bucket(bucket.name, proxied), tmp_path / "objects")
    got: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: got.append(_read(cache.open(digest, len(data)))))
        for _ in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [data] * 16
    assert [p for m, p, _, _ in rec.seen if m == "GET"] == [
        f"/{bucket.name}/{DATA.data_key(digest)}"
    ]


def test_two_processes_sharing_the_folder_both_get_the_right_bytes(
    bucket: Bucket, tmp_path: Path, aws_env: S3Config
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    digest = _put(bucket, data)
    folder = tmp_path / "objects"
    folder.mkdir()
    script = """
import json, os, sys, threading, xxhash
from jobattach_host.engine import layout
from jobattach_host.object_cache import ObjectCache
from jobattach_host.storage import Bucket
cache = ObjectCache(sys.argv[1], Bucket(sys.argv[2]), layout("JA").data_key, limit=1 << 30)
fd = cache.open(sys.argv[3], int(sys.argv[4]))
with os.fdopen(fd, "rb") as f:
    print(json.dumps(xxhash.xxh3_128_hexdigest(f.read())))
"""
    results: list[Any] = []
    args = (str(folder), bucket.name, digest, str(len(data)))
    runs = [
        threading.Thread(target=lambda: results.append(python_json(script, *args)))
        for _ in range(2)
    ]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    assert results == [digest, digest]
    assert _read(_cache(bucket, folder).open(digest, len(data))) == data


def test_the_least_recently_used_are_evicted_to_stay_within_the_bound(
    bucket: Bucket, tmp_path: Path
) -> None:
    blobs = [os.urandom(1000) + bytes([i]) for i in range(5)]
    digests = [_put(bucket, b) for b in blobs]
    cache = _cache(bucket, tmp_path / "objects", limit=3 * 1001)
    for d, b in zip(digests[:3], blobs[:3]):
        os.close(cache.open(d, len(b)))
    os.close(cache.open(digests[0], 1001))  # used again: the most recent now
    held = cache.open(digests[3], 1001)  # over the bound: the least recently used goes
    present = {n for n in os.listdir(tmp_path / "objects") if "." not in n}
    assert present == {digests[0], digests[2], digests[3]}
    assert cache.stats.evicted == 1
    os.close(cache.open(digests[4], 1001))
    assert _read(held) == blobs[3]  # an open descriptor outlives its file's eviction
    total = sum(p.stat().st_size for p in (tmp_path / "objects").iterdir())
    assert total <= 3 * 1001


def test_what_another_process_planted_is_never_followed_or_served(
    bucket: Bucket, tmp_path: Path
) -> None:
    data = b"the object"
    digest = _put(bucket, data)
    folder = tmp_path / "objects"
    folder.mkdir()
    secret = tmp_path / "secret"
    secret.write_bytes(b"not for you")
    os.symlink(secret, folder / digest)
    cache = _cache(bucket, folder)
    assert _read(cache.open(digest, len(data))) == data
    assert secret.read_bytes() == b"not for you"
    assert not (folder / digest).is_symlink()
    (folder / digest).unlink()
    (folder / digest).write_bytes(b"other size!")  # tampered: refetched, not served
    assert _read(cache.open(digest, len(data))) == data


def test_a_large_object_is_fetched_by_ranges_and_verified(
    aws_env: S3Config, bucket: Bucket, tmp_path: Path, s3_proxy: Any
) -> None:
    data = os.urandom(24 * 1024 * 1024)
    digest = _put(bucket, data)
    rec = Recorder()
    mib8 = 8 * 1024 * 1024
    proxied = through(
        s3_proxy(rec), options=ClientOptions(multipart_threshold=mib8, multipart_chunksize=mib8)
    )
    cache = _cache(Bucket(bucket.name, proxied), tmp_path / "objects")
    assert _read(cache.open(digest, len(data))) == data
    ranges = [h.get("range") for m, _, h, _ in rec.seen if m == "GET"]
    assert len(ranges) >= 3
    assert all(r and r.startswith("bytes=") for r in ranges)

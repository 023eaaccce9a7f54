"""Only our own bucket: every S3 request, the direct paths included, carries the account that
must own the bucket (``x-amz-expected-bucket-owner``), so a bucket of the same name in another
account is refused by S3 before any data moves. moto accepts any owner: what is sent is
recorded on loopback, and a proxy plays S3's check."""

from __future__ import annotations

import os
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from conftest import REGION, OnlyBoto3, Recorder, S3Proxy, answer
from jobattach import (
    AssetReferences,
    ClientOptions,
    S3Config,
    S3Location,
    StorageError,
    submit_bundle_attachments,
)
from jobattach.submit import ManifestLocation
from jobattach_host.storage import Bucket, Transfer

Proxies = Callable[..., S3Proxy]
#: The account aws_env's credentials carry (AWS_ACCOUNT_ID), and moto's own.
OURS = "123456789012"
OWNER = "x-amz-expected-bucket-owner"
IN_PARTS = ClientOptions(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
WHERE = ManifestLocation(
    "farm-0123456789abcdef0123456789abcdef", "queue-0123456789abcdef0123456789abcdef"
)


def _checked(url: str, options: ClientOptions = IN_PARTS) -> S3Config:
    return S3Config(region=REGION, endpoint_url=url, check_bucket_owner=True, options=options)


def _every_kind_of_request(bucket: Bucket, tmp_path: Path) -> None:
    """GET, PUT, HEAD, list, delete and multipart, by each transport the bucket has."""
    small = [tmp_path / f"s{i}" for i in range(3)]
    for i, p in enumerate(small):
        p.write_bytes(b"small %d" % i)
    big = tmp_path / "big"
    big.write_bytes(os.urandom(6 << 20))
    bucket.upload_files([Transfer(f"Data/{p.name}", p, p.stat().st_size) for p in small])
    bucket.upload_file("Data/one", small[0])
    bucket.upload_file("Data/big", big)  # CreateMultipartUpload, UploadPart, Complete
    bucket.put_bytes("Manifests/m", b"{}")
    assert bucket.metadata("Data/one") == {}
    assert bucket.metadata_many(["Data/s1", "Data/none"]) == [{}, None]
    assert bucket.existing([f"Data/s{i}" for i in range(3)], under="Data/", page_size=1)
    bucket.download_file("Data/one", tmp_path / "back-one", size=7)
    bucket.download_files([Transfer("Data/s2", tmp_path / "back-s2", 7)])
    bucket.download_file("Data/big", tmp_path / "back-big")  # HEAD, then ranged GETs
    assert bucket.get_bytes("Manifests/m")[0] == b"{}"
    assert "Data/big" in bucket.keys("Data/")
    version = bucket.version("Data/one")
    assert version is not None
    assert bucket.delete_version("Data/one", version[0])
    bucket.delete(["Data/s0", "Data/s1"])


def _without_owner(seen: list[tuple[str, str, dict[str, str], bytes]], bucket: str) -> list[str]:
    """Requests that lack the owner (CreateBucket takes none), or do not sign it."""
    missing = []
    for method, path, headers, _ in seen:
        if method == "PUT" and path.rstrip("/") == f"/{bucket}":
            continue  # CreateBucket
        signed = headers.get("authorization", "").partition("SignedHeaders=")[2].split(",")[0]
        if headers.get(OWNER) != OURS or OWNER not in signed.split(";"):
            missing.append(f"{method} {path}")
    return missing


@pytest.mark.parametrize("transport", ["direct and event loop", "boto3"])
def test_every_request_carries_the_expected_owner(
    aws_env: S3Config, s3_proxy: Proxies, tmp_path: Path, transport: str
) -> None:
    recorder = Recorder(OnlyBoto3() if transport == "boto3" else None)
    bucket = Bucket(f"owner-{transport[0]}", _checked(s3_proxy(recorder).url))
    bucket.create()
    _every_kind_of_request(bucket, tmp_path)
    assert _without_owner(recorder.seen, bucket.name) == []
    methods = {m for m, *_ in recorder.seen}
    assert methods == {"GET", "PUT", "HEAD", "POST", "DELETE"}
    if transport != "boto3":
        assert (
            bucket._transport.direct is not None
        )  # the direct paths were used, not replaced by boto3


def test_without_an_account_in_the_credentials_sts_says_it_once(
    aws_env: S3Config, s3_proxy: Proxies, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_ACCOUNT_ID")
    sts = Recorder()
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", s3_proxy(sts).url)  # moto answers STS too
    recorder = Recorder()
    config = _checked(s3_proxy(recorder).url)
    first = Bucket("owner-sts", config)
    first.create()
    _every_kind_of_request(first, tmp_path)
    second = Bucket("owner-sts", config)
    assert second.metadata("Data/big") == {}
    assert _without_owner(recorder.seen, first.name) == []
    calls = [b for m, _, _, b in sts.seen if m == "POST"]
    assert len(calls) == 1
    assert b"GetCallerIdentity" in calls[0]


class TakenOver:
    """A bucket of the same name that another account owns: S3 refuses a request whose
    expected owner is not that account (AccessDenied), and serves one that names none."""

    def __init__(self) -> None:
        self.refused = 0

    def __call__(self, request: BaseHTTPRequestHandler, body: bytes) -> bool:
        expected = request.headers.get(OWNER)
        if expected is None or expected == "999999999999":
            return False
        self.refused += 1
        error = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        answer(request, 403, [("Content-Type", "application/xml")], error)
        return True


def test_a_bucket_another_account_holds_gets_none_of_the_jobs_data(
    aws_env: S3Config, s3_proxy: Proxies, tmp_path: Path
) -> None:
    victim = Bucket("taken-over", aws_env)
    victim.create()
    taken = TakenOver()
    (tmp_path / "secret.exr").write_bytes(b"the show's frames")
    with pytest.raises(StorageError):
        submit_bundle_attachments(
            REGION,
            S3Location("taken-over", "JA"),
            WHERE,
            AssetReferences([str(tmp_path / "secret.exr")]),
            s3=_checked(s3_proxy(taken).url),
            hash_cache=False,
            check_cache=False,
        )
    assert taken.refused > 0
    assert victim.keys("") == set()


def test_the_check_is_on_for_aws_and_off_for_servers_without_accounts(
    aws_env: S3Config, s3_proxy: Proxies, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorder = Recorder()
    url = s3_proxy(recorder).url
    default = Bucket("owner-off", S3Config(region=REGION, endpoint_url=url, options=IN_PARTS))
    default.create()
    _every_kind_of_request(default, tmp_path)
    assert default.expected_owner is None
    assert not any(OWNER in headers for _, _, headers, _ in recorder.seen)

    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")  # no request is made below: the account is set
    for endpoint, on in [
        (None, True),
        ("https://s3.dualstack.eu-west-1.amazonaws.com", True),
        ("https://bucket.vpce-0a1b2c3d.s3.us-west-2.vpce.amazonaws.com", True),
        ("https://s3.cn-north-1.amazonaws.com.cn", True),
        ("http://127.0.0.1:9000", False),
        ("https://minio.example.internal", False),
    ]:
        config = S3Config(region=REGION, endpoint_url=endpoint, bucket_owner="111122223333")
        assert Bucket("b-name", config).expected_owner == ("111122223333" if on else None)
        off = S3Config(
            region=REGION, endpoint_url=endpoint, bucket_owner="1", check_bucket_owner=False
        )
        assert Bucket("b-name", off).expected_owner is None


def test_an_account_that_cannot_be_learnt_says_what_to_set(
    aws_env: S3Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCOUNT_ID")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")  # nothing listens
    config = _checked(os.environ["AWS_ENDPOINT_URL_S3"], options=ClientOptions(max_attempts=1))
    with pytest.raises(StorageError, match=r"bucket_owner.*check_bucket_owner=False"):
        Bucket("owner-unknown", config).metadata("Data/x")

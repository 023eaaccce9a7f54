"""The direct path for small objects: signatures equal to botocore's, and every case it does
not handle itself handed to boto3."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import Fault, OnlyBoto3, S3Proxy
from jobattach.local_s3 import ACCESS_KEY, SECRET_KEY
from jobattach_host.s3config import S3Config
from jobattach_host.s3wire import Wire
from jobattach_host.storage import Bucket


def _config(endpoint: str, token: str | None = None) -> S3Config:
    return S3Config(
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        session_token=token,
        region="eu-central-1",
        endpoint_url=endpoint,
    )


@pytest.mark.parametrize("token", [None, "session-token/+="])
@pytest.mark.parametrize(
    ("method", "key", "metadata", "body"),
    [
        ("GET", "JA/Data/0123456789abcdef0123456789abcdef.xxh128", {}, None),
        ("HEAD", "mirror/a dir/caf\u00e9 + \U0001f600~(1).exr", {}, None),
        ("PUT", "mirror/x y/z.bin", {"xxh128": "00ff", "Asset-Root": " /show  a "}, b"data"),
        ("PUT", "k", {}, b""),
    ],
)
def test_signatures_are_botocores(
    method: str, key: str, metadata: dict[str, str], body: bytes | None, token: str | None
) -> None:
    config = _config("http://127.0.0.1:9", token)
    wire = Wire.for_bucket(config.client(), config.credentials(), "my-bucket", 3)
    assert wire is not None, "the direct path is off: every small object costs boto3's price"
    path = "/my-bucket/" + quote(key, safe="/~")
    headers = {f"x-amz-meta-{k.lower()}": v for k, v in metadata.items()}
    ours = wire.sign(method, path, headers, body)

    request = AWSRequest(method, "http://127.0.0.1:9" + path, data=body)
    for name, value in ours.items():
        if name not in ("authorization", "content-length", "user-agent"):
            request.headers[name] = value
    request.context["timestamp"] = ours["x-amz-date"]
    auth = S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, token), "s3", "eu-central-1")
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    signed = auth.signed_headers(auth.headers_to_sign(request))
    assert ours["authorization"] == (
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{ours['x-amz-date'][:8]}/eu-central-1/s3/"
        f"aws4_request, SignedHeaders={signed}, Signature={signature}"
    )


def test_no_direct_path_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config = S3Config(region="eu-central-1", endpoint_url="http://127.0.0.1:9")
    assert Wire.for_bucket(config.client(), config.credentials(), "b", 3) is None


def test_what_the_direct_path_cannot_do_boto3_does(
    s3_proxy: Callable[[Fault], S3Proxy], s3_endpoint: str, tmp_path: Path
) -> None:
    only_boto3 = OnlyBoto3()
    proxy = s3_proxy(only_boto3)
    Bucket("fallback", _config(s3_endpoint)).create()
    bucket = Bucket("fallback", _config(proxy.url))
    f = tmp_path / "x.bin"
    f.write_bytes(b"content")
    bucket.upload_file("Data/x", f, metadata={"xxh128": "abc"})
    assert only_boto3.refused == 1
    assert bucket._transport.direct is None  # boto3 does this bucket's requests from now on
    assert bucket.metadata("Data/x") == {"xxh128": "abc"}
    bucket.download_file("Data/x", tmp_path / "back", size=7)
    assert (tmp_path / "back").read_bytes() == b"content"
    assert only_boto3.refused == 1

    direct = Bucket("fallback", _config(s3_endpoint))
    assert direct.metadata("Data/x") == {"xxh128": "abc"}
    assert direct.metadata("Data/missing") is None
    direct.download_file("Data/x", tmp_path / "direct", size=7)
    assert (tmp_path / "direct").read_bytes() == b"content"
    assert direct._transport.direct is not None

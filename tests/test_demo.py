"""The main job: a sample tree hashed by the component and uploaded, content-addressed."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest
import xxhash

from conftest import VENV_BIN
from jobattach import StorageError, demo
from jobattach.local_s3 import ACCESS_KEY, SECRET_KEY
from jobattach_host.storage import Bucket, S3Config


def _client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-west-2",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def test_demo_uploads_each_distinct_content_once(s3_endpoint: str, tmp_path: Path) -> None:
    result = demo.run(endpoint_url=s3_endpoint, bucket="demo-test", files=50, work_dir=tmp_path)
    assert result.files == 50
    assert result.distinct_contents < result.files  # the sample repeats some contents
    assert result.uploaded == result.distinct_contents == result.objects_in_bucket
    s3 = _client(s3_endpoint)
    listing = s3.list_objects_v2(Bucket="demo-test", Prefix=result.data_prefix)["Contents"]
    assert len(listing) == result.distinct_contents
    for obj in listing[:10]:  # each object's key is the xxh128 of its bytes
        body = s3.get_object(Bucket="demo-test", Key=obj["Key"])["Body"].read()
        assert obj["Key"] == f"{result.data_prefix}{xxhash.xxh3_128_hexdigest(body)}.xxh128"

    again = demo.run(endpoint_url=s3_endpoint, bucket="demo-test", files=50, work_dir=tmp_path)
    assert (again.uploaded, again.already_present) == (0, result.distinct_contents)


def test_demo_runs_on_its_own_server_and_stops_it() -> None:
    out = subprocess.run(
        [str(VENV_BIN / "jobattach"), "demo", "--json", "--files", "30"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["objects_in_bucket"] == result["distinct_contents"] == result["uploaded"] > 0
    url = urlparse(result["endpoint_url"])
    assert url.hostname == "127.0.0.1"
    with pytest.raises(ConnectionRefusedError):  # the server it started is gone
        socket.create_connection((url.hostname, url.port), timeout=2).close()


def test_s3_errors_name_the_operation_and_key(s3_endpoint: str, tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"x")
    bucket = Bucket(
        "no-such-bucket",
        S3Config(
            endpoint_url=s3_endpoint,
            region="us-west-2",
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
        ),
    )
    with pytest.raises(StorageError, match=r"Data/x\.xxh128: S3 upload failed") as err:
        bucket.upload_file("Data/x.xxh128", f)
    assert err.value.path == "Data/x.xxh128"

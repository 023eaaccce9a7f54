"""The main job: a sample tree submitted as a job's attachments to a local S3 server."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
import xxhash

from conftest import VENV_BIN
from jobattach import StorageError, demo
from jobattach.local_s3 import ACCESS_KEY, SECRET_KEY
from jobattach_host.s3config import S3Config
from jobattach_host.storage import Bucket


def _config(endpoint: str) -> S3Config:
    return S3Config(
        endpoint_url=endpoint,
        region="us-west-2",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )


def test_demo_submits_each_distinct_content_once(s3_endpoint: str, tmp_path: Path) -> None:
    result = demo.run(endpoint_url=s3_endpoint, bucket="demo-test", files=50, work_dir=tmp_path)
    assert result.total_files == result.manifest_entries == 50
    assert result.distinct_contents < result.total_files  # the sample repeats some contents
    assert result.uploaded == result.distinct_contents
    assert result.resubmitted_uploaded == 0
    assert result.downloaded == result.total_files
    assert result.verified
    bucket = Bucket("demo-test", _config(s3_endpoint))
    keys = sorted(bucket.keys("JobAttachments/Data/"))
    assert len(keys) == result.distinct_contents
    for key in keys[:10]:  # each object's key is the xxh128 of its bytes
        body, _ = bucket.get_bytes(key)
        assert key == f"JobAttachments/Data/{xxhash.xxh3_128_hexdigest(body)}.xxh128"
    (entry,) = result.attachments["manifests"]
    assert entry["inputManifestPath"].startswith(
        f"{demo.FARM.farm_id}/{demo.FARM.queue_id}/Inputs/"
    )


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
    assert result["manifest_entries"] == result["total_files"] == 30
    assert result["uploaded"] == result["distinct_contents"] > 0
    assert result["resubmitted_uploaded"] == 0
    assert (result["downloaded"], result["verified"]) == (30, True)
    url = urlparse(result["endpoint_url"])
    assert url.hostname == "127.0.0.1"
    with pytest.raises(ConnectionRefusedError):  # the server it started is gone
        socket.create_connection((url.hostname, url.port), timeout=2).close()


def test_s3_errors_name_the_operation_and_key(s3_endpoint: str, tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"x")
    bucket = Bucket("no-such-bucket", _config(s3_endpoint))
    with pytest.raises(StorageError, match=r"Data/x\.xxh128: S3 upload failed") as err:
        bucket.upload_file("Data/x.xxh128", f)
    assert err.value.path == "Data/x.xxh128"

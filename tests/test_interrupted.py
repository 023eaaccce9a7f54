"""Downloads cut off mid-body (a dropped connection on every content GET): the failure is a
StorageError, nothing partial is left under a final name, and a rerun completes."""

from __future__ import annotations

import dataclasses
import http.client
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from conftest import REGION, Fault, S3Proxy
from jobattach import (
    AssetReferences,
    ClientOptions,
    ManifestLocation,
    S3Config,
    S3Location,
    StorageError,
    submit_bundle_attachments,
    sync,
    sync_inputs,
)
from jobattach_host.hash_cache import HashCache
from jobattach_host.s3_check_cache import S3CheckCache
from jobattach_host.storage import Bucket


def _cutting_off(endpoint: str, under: str) -> Fault:
    """Sends half of every object under ``under``, then closes the connection."""
    server = urlparse(endpoint).netloc

    def fault(request: BaseHTTPRequestHandler, body: bytes) -> bool:
        if request.command != "GET" or under not in request.path.split("?")[0]:
            return False
        conn = http.client.HTTPConnection(server)
        conn.request("GET", request.path, body, dict(request.headers))
        reply = conn.getresponse()
        data = reply.read()
        conn.close()
        request.send_response(reply.status)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data[: len(data) // 2])
        request.close_connection = True
        return True

    return fault


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, bytes]:
    files = {f"shot/plate.{i:04d}.exr": bytes([i]) * (1000 * i + 10) for i in range(6)}
    files["shot/empty.txt"] = b""
    for name, data in files.items():
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name).write_bytes(data)
    return files


def _flaky(config: S3Config, proxy: S3Proxy) -> S3Config:
    return dataclasses.replace(
        config, endpoint_url=proxy.url, options=ClientOptions(max_attempts=2)
    )


def _files(top: Path) -> dict[str, bytes]:
    return {p.relative_to(top).as_posix(): p.read_bytes() for p in top.rglob("*") if p.is_file()}


def test_an_interrupted_sync_inputs_leaves_nothing_partial_and_a_rerun_completes(
    aws_env: S3Config,
    s3_endpoint: str,
    s3_proxy: Callable[[Fault], S3Proxy],
    tree: dict[str, bytes],
    tmp_path: Path,
) -> None:
    bucket = Bucket("interrupted-inputs", aws_env)
    bucket.create()
    where = S3Location(bucket.name, "JA")
    root = tmp_path / "src"
    submitted = submit_bundle_attachments(
        REGION,
        where,
        ManifestLocation("farm-1", "queue-1"),
        AssetReferences(input_filenames=[str(root / n) for n in tree]),
        s3=aws_env,
        hash_cache=HashCache(tmp_path / "digests.sqlite3"),
        check_cache=S3CheckCache(tmp_path / "s3.sqlite3"),
    )
    attachments: dict[str, Any] = submitted.attachments
    flaky = _flaky(aws_env, s3_proxy(_cutting_off(s3_endpoint, "/JA/Data/")))
    session = tmp_path / "session"

    with pytest.raises(StorageError, match="S3 download failed") as failed:
        sync_inputs(where, attachments, session, s3=flaky)
    assert str(failed.value.path).startswith("JA/Data/")
    assert _files(session) == {}  # no partial file, no staging left

    result = sync_inputs(where, attachments, session, s3=aws_env)
    (local,) = result.roots.values()  # the root is src/shot, the files' common folder
    assert _files(Path(local)) == {name.removeprefix("shot/"): d for name, d in tree.items()}
    assert result.processed_files == len(tree)


def test_an_interrupted_sync_down_leaves_nothing_partial_and_a_rerun_completes(
    aws_env: S3Config,
    s3_endpoint: str,
    s3_proxy: Callable[[Fault], S3Proxy],
    tree: dict[str, bytes],
    tmp_path: Path,
) -> None:
    Bucket("interrupted-sync", aws_env).create()
    sync(tmp_path / "src", "s3://interrupted-sync/m", s3=aws_env)
    flaky = _flaky(aws_env, s3_proxy(_cutting_off(s3_endpoint, "/m/shot/plate.0003")))
    dest = tmp_path / "dest"

    with pytest.raises(StorageError, match="S3 download failed") as failed:
        sync("s3://interrupted-sync/m", dest, s3=flaky)
    assert failed.value.path == "m/shot/plate.0003.exr"
    got = _files(dest)
    assert "shot/plate.0003.exr" not in got
    assert all(tree[name] == data for name, data in got.items())  # what is there is whole

    stats = sync("s3://interrupted-sync/m", dest, s3=aws_env)
    assert _files(dest) == tree
    assert stats.processed_files == len(tree) - len(got)

"""A bucket's contents are believed only as far as they can be checked: an object whose size
or content disagrees with the manifest is refused, and nothing of its root is placed."""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from conftest import REGION, S3Proxy
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
from jobattach_host.storage import Bucket
from jobattach_host.sync import layout, session_root_name


@pytest.mark.parametrize("size", [16, 100 << 10], ids=["one GET", "in ranges"])
@pytest.mark.parametrize("replaced", [5, 4 << 20], ids=["shorter", "far longer"])
def test_an_object_whose_size_disagrees_with_the_manifest_is_refused_before_it_is_written(
    aws_env: S3Config, tmp_path: Path, size: int, replaced: int
) -> None:
    bucket = Bucket(f"believed-{size}-{replaced}", aws_env)
    bucket.create()
    root = tmp_path / "job"
    root.mkdir()
    files = {"a.txt": b"r" * size, "b.txt": b"another file"}
    for name, data in files.items():
        (root / name).write_bytes(data)
    where = S3Location(bucket.name, "JA")
    refs = AssetReferences(input_filenames=[str(root / n) for n in files])
    attachments = submit_bundle_attachments(
        REGION,
        where,
        ManifestLocation("farm-1", "queue-1"),
        refs,
        s3=aws_env,
        hash_cache=False,
        check_cache=False,
    ).attachments
    (manifest,) = attachments["manifests"]
    digest = next(  # the object of a.txt, rewritten by someone who can write to the bucket
        k for k in bucket.keys("JA/Data/") if bucket.get_bytes(k)[0] == files["a.txt"]
    )
    bucket.client.put_object(Bucket=bucket.name, Key=digest, Body=b"x" * replaced)
    session = tmp_path / "session"
    # Objects of 64 KiB and more come in ranges, by the transfer manager.
    ranged = S3Config(region=REGION, options=ClientOptions(multipart_threshold=64 << 10))
    with pytest.raises(StorageError, match=f"has {replaced} bytes where {size} were") as raised:
        sync_inputs(where, attachments, session, s3=ranged)
    assert raised.value.path == digest
    dest = session / session_root_name(manifest["rootPath"])
    assert [p for p in dest.rglob("*") if p.is_file()] == []
    assert layout("JA").data_key(digest[len("JA/Data/") : -len(".xxh128")]) == digest


def test_a_sync_download_refuses_an_object_shorter_than_its_listing(
    aws_env: S3Config, tmp_path: Path, s3_proxy: Callable[..., S3Proxy]
) -> None:
    bucket = Bucket("believed-sync", aws_env)
    bucket.create()
    bucket.client.put_object(Bucket=bucket.name, Key="t/a.bin", Body=b"x" * 100)
    bucket.client.put_object(Bucket=bucket.name, Key="t/b.bin", Body=b"y" * 10)

    def lies(request: BaseHTTPRequestHandler, body: bytes) -> bool:
        """Lists the truth, then serves a.bin short (rewritten in between, or a server that
        lies)."""
        if request.command != "GET" or not request.path.startswith("/believed-sync/t/a.bin"):
            return False
        request.send_response(200)
        request.send_header("Content-Length", "40")
        request.end_headers()
        request.wfile.write(b"x" * 40)
        return True

    proxy = s3_proxy(lies)
    dest = tmp_path / "dest"
    config = S3Config(region=REGION, endpoint_url=proxy.url)
    with pytest.raises(StorageError, match="40 bytes where 100 were expected") as raised:
        sync("s3://believed-sync/t", dest, s3=config)
    assert raised.value.path == "t/a.bin"
    assert not (dest / "a.bin").exists()

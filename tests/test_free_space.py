"""A copied download that cannot fit fails before its first byte, naming the sizes, as the
official worker's disk capacity check does; against the local server, requests counted at a
proxy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from conftest import S3Proxy, through
from jobattach import (
    DiskSpaceError,
    Manifest,
    ManifestEntry,
    S3Config,
    S3Location,
    sync_inputs,
)
from jobattach_host.storage import Bucket


def _free(folder: Path) -> int:
    vfs = os.statvfs(folder)
    return vfs.f_bavail * vfs.f_frsize


def _job(aws: S3Config, name: str, roots: dict[str, list[tuple[str, int]]]) -> dict[str, Any]:
    """Hand-made input manifests whose files are as large as given; no content is uploaded:
    a download that is refused never asks for any."""
    bucket = Bucket(f"space-{name}", aws)
    bucket.create()
    manifests = []
    for i, (root, files) in enumerate(roots.items()):
        m = Manifest.from_entries(
            ManifestEntry(p, f"{i:016x}{n:016x}", size, 1) for n, (p, size) in enumerate(files)
        )
        bucket.put_bytes(f"JA/Manifests/{name}-{i}_input", m.encode())
        manifests.append(
            {
                "rootPath": root,
                "rootPathFormat": "posix",
                "inputManifestPath": f"{name}-{i}_input",
                "inputManifestHash": m.hash(),
            }
        )
    return {"bucket": bucket, "attachments": {"manifests": manifests, "fileSystem": "COPIED"}}


def _recording(s3_proxy: Any) -> tuple[S3Proxy, list[str]]:
    seen: list[str] = []

    def record(request: Any, body: bytes) -> bool:
        seen.append(f"{request.command} {request.path}")
        return False

    return s3_proxy(record), seen


def test_a_job_larger_than_the_disk_fails_before_its_first_byte(
    aws_env: S3Config, s3_proxy: Any, tmp_path: Path
) -> None:
    free = _free(tmp_path)
    job = _job(aws_env, "big", {"/job/a": [("huge.bin", free + 2**30), ("small.txt", 1)]})
    proxy, seen = _recording(s3_proxy)
    where = S3Location(job["bucket"].name, "JA")
    session = tmp_path / "session"
    with pytest.raises(DiskSpaceError) as caught:
        sync_inputs(where, job["attachments"], session, s3=through(proxy))
    err = caught.value
    assert err.needed == free + 2**30 + 1
    assert 0 < err.free <= free + 2**20  # another process may free a little meanwhile
    assert f"({err.needed} bytes)" in str(err)
    assert f"({err.free} bytes) free" in str(err)
    assert not [r for r in seen if "/Data/" in r]  # no content asked for
    assert [p.name for p in session.rglob("*") if p.is_file()] == []


def test_roots_on_one_file_system_are_counted_together(
    aws_env: S3Config, s3_proxy: Any, tmp_path: Path
) -> None:
    # Each root alone fits; both together do not.
    part = _free(tmp_path) * 3 // 5
    job = _job(aws_env, "two", {"/job/a": [("a.bin", part)], "/job/b": [("b.bin", part)]})
    proxy, seen = _recording(s3_proxy)
    where = S3Location(job["bucket"].name, "JA")
    with pytest.raises(DiskSpaceError) as caught:
        sync_inputs(where, job["attachments"], tmp_path / "s", s3=through(proxy))
    assert caught.value.needed == 2 * part
    assert not [r for r in seen if "/Data/" in r]

"""A full disk while downloading: a clear error, and nothing partial left under a final name
(a job's inputs are refused before the first byte, as the free space says they cannot fit).

The download runs in a child process given a 1 MiB tmpfs in a mount namespace of its own
(unshare), so the disk really fills; the mount vanishes with the child.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import REGION
from jobattach import (
    AssetReferences,
    ManifestLocation,
    S3Config,
    S3Location,
    submit_bundle_attachments,
    sync,
)
from jobattach_host.hash_cache import HashCache
from jobattach_host.s3_check_cache import S3CheckCache
from jobattach_host.storage import Bucket

KiB = 1024

_CHILD = """
import json, os, sys
from pathlib import Path
import jobattach
from jobattach import ClientOptions, S3Config, S3Location

disk, bucket, what, threshold = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
s3 = S3Config(region=os.environ["AWS_DEFAULT_REGION"],
              options=ClientOptions(multipart_threshold=threshold, multipart_chunksize=threshold))
try:
    if what == "inputs":
        attachments = json.loads(sys.argv[5])
        jobattach.sync_inputs(S3Location(bucket, "JA"), attachments, disk, s3=s3)
    else:
        jobattach.sync(f"s3://{bucket}/mirror", disk / "mirror", s3=s3)
    error = None
except jobattach.AttachmentError as e:
    error = {"type": type(e).__name__, "text": str(e), "path": e.path}
files = {str(p.relative_to(disk)): p.stat().st_size for p in disk.rglob("*") if p.is_file()}
print(json.dumps({"error": error, "files": files}))
"""


def _on_a_full_disk(*args: str) -> dict[str, Any]:
    """Runs the child on a fresh 1 MiB tmpfs; returns what it printed."""
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to give the test a small disk"
    script = 'mount -t tmpfs -o size=1m tmpfs "$1" && shift && exec "$@"'
    cmd = [unshare, "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh"]
    disk = "/mnt"  # any directory: the tmpfs covers it in the child's namespace only
    child = [sys.executable, "-c", _CHILD, disk, *args]
    out = subprocess.run([*cmd, disk, *child], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


@pytest.fixture
def job(aws_env: S3Config, tmp_path: Path) -> dict[str, Any]:
    """Four 400 KiB inputs (1.6 MiB in all, more than the disk) submitted to a bucket, and
    the same files mirrored to its ``mirror/`` prefix."""
    bucket = Bucket("disk-full", aws_env)
    bucket.create()
    root = tmp_path / "scene"
    root.mkdir()
    for i in range(4):
        (root / f"plate.{i}.exr").write_bytes(bytes([i]) * 400 * KiB)
    refs = AssetReferences(input_filenames=[str(p) for p in sorted(root.iterdir())])
    result = submit_bundle_attachments(
        REGION,
        S3Location(bucket.name, "JA"),
        ManifestLocation("farm-1", "queue-1"),
        refs,
        s3=aws_env,
        hash_cache=HashCache(tmp_path / "digests.sqlite3"),
        check_cache=S3CheckCache(tmp_path / "s3.sqlite3"),
    )
    sync(root, f"s3://{bucket.name}/mirror", s3=aws_env)
    return {"bucket": bucket.name, "attachments": result.attachments}


@pytest.mark.parametrize("threshold", [16 * 1024 * KiB, 256 * KiB], ids=["one-get", "ranged"])
def test_sync_inputs_on_a_full_disk(job: dict[str, Any], threshold: int) -> None:
    got = _on_a_full_disk(job["bucket"], "inputs", str(threshold), json.dumps(job["attachments"]))
    assert got["error"] is not None, "the download cannot fit, yet nothing failed"
    # Refused before the first byte, naming what it needs against what is free.
    assert got["error"]["type"] == "DiskSpaceError"
    assert f"needs 1.6 MB ({4 * 400 * KiB} bytes)" in got["error"]["text"]
    assert "free: nothing was downloaded" in got["error"]["text"]
    assert got["files"] == {}  # no staging left, nothing under a final name


@pytest.mark.parametrize("threshold", [16 * 1024 * KiB, 256 * KiB], ids=["one-get", "ranged"])
def test_sync_down_on_a_full_disk(job: dict[str, Any], threshold: int) -> None:
    got = _on_a_full_disk(job["bucket"], "mirror", str(threshold))
    assert got["error"] is not None, "the download cannot fit, yet nothing failed"
    assert got["error"]["type"] == "FileAccessError"
    assert "No space left on device" in got["error"]["text"]
    # What is there is whole: the files that fitted, under their final names.
    assert all(size == 400 * KiB for size in got["files"].values()), got["files"]
    assert not any("jobattach-tmp" in name for name in got["files"])

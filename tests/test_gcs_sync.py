"""sync(source, dest) with gs://bucket/prefix, against a local GCS emulator
(gcp-storage-emulator) that this module starts, storing on disk so a test can tamper with
an object's bytes behind the server's back."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from jobattach import (
    Cancelled,
    CloudClientOptions,
    FileChangedError,
    GcsConfig,
    ProgressReport,
    StorageError,
    ValidationError,
    sync,
)

BUCKET = "gcs-sync"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The emulator's endpoint and the folder it stores objects in."""
    base = tmp_path_factory.mktemp("gcs")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    cmd = [str(exe), "start", "--host", "127.0.0.1", "--port", str(port), "-q"]
    proc = subprocess.Popen(cmd, env={**os.environ, "STORAGE_BASE": str(base)})
    url = f"http://127.0.0.1:{port}"
    try:
        while True:  # polled until it answers, waiting on the process in between
            try:
                urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1).close()
                break
            except OSError:
                with pytest.raises(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.05)  # ended: the emulator could not start
        yield url, base / ".cloudstorage"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def gcs(emulator: tuple[str, Path]) -> GcsConfig:
    return GcsConfig(anonymous=True, endpoint_url=emulator[0])


@pytest.fixture
def bucket(gcs: GcsConfig) -> storage.Bucket:
    client = storage.Client(
        project="test",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": gcs.endpoint_url},
    )
    b = client.bucket(BUCKET)
    if not b.exists():
        client.create_bucket(BUCKET)
    for blob in client.list_blobs(BUCKET):
        blob.delete()
    return b


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"a",
        "dir/b.bin": os.urandom(3000),
        "dir/sub/c.exr": b"c" * 10,
        "skip.tmp": b"tmp",
        "big.bin": os.urandom(17 << 20),  # above the default threshold: a chunked upload
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        os.utime(root / rel, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    return files


def _names(bucket: storage.Bucket, prefix: str) -> set[str]:
    return {b.name for b in bucket.client.list_blobs(bucket, prefix=prefix)}


def test_up_down_identical_with_exact_times_and_an_unchanged_resync(
    bucket: storage.Bucket, gcs: GcsConfig, tmp_path: Path
) -> None:
    files = _tree(tmp_path / "src")
    up = sync(tmp_path / "src", f"gs://{BUCKET}/data", gcs=gcs)
    assert (up.processed_files, up.skipped_files) == (5, 0)
    blob = bucket.get_blob("data/dir/b.bin")
    # the time rclone reads first, and gsutil's
    assert blob.metadata["mtime"] == "2020-09-13T12:26:40.123456000Z"
    assert blob.metadata["goog-reserved-file-mtime"] == "1600000000"
    again = sync(tmp_path / "src", f"gs://{BUCKET}/data", gcs=gcs)
    assert (again.processed_files, again.skipped_files) == (0, 5)

    reports: list[ProgressReport] = []
    down = sync(f"gs://{BUCKET}/data", tmp_path / "dst", gcs=gcs, progress_callback=reports.append)
    assert down.processed_files == 5
    assert {r.phase for r in reports} == {"downloading"}
    assert (reports[-1].processed_files, reports[-1].processed_bytes) == (5, down.total_bytes)
    for rel, data in files.items():
        assert (tmp_path / "dst" / rel).read_bytes() == data
        assert os.stat(tmp_path / "dst" / rel).st_mtime_ns == 1_600_000_000_123_456_000
    assert sync(f"gs://{BUCKET}/data", tmp_path / "dst", gcs=gcs).processed_files == 0
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == [
        "a.txt",
        "big.bin",
        "dir",
        "skip.tmp",
    ]


def test_a_changed_file_is_sent_again_and_delete_goes_both_ways(
    bucket: storage.Bucket, gcs: GcsConfig, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tree(src)
    remote = f"gs://{BUCKET}/d"
    sync(src, remote, gcs=gcs, exclude="big.bin")
    (src / "a.txt").write_bytes(b"b")  # same size, a new time
    (src / "dir/b.bin").unlink()
    stats = sync(src, remote, gcs=gcs, delete=True, exclude="big.bin")
    assert (stats.processed_files, stats.deleted_files) == (1, 1)
    assert bucket.get_blob("d/a.txt").download_as_bytes() == b"b"
    assert _names(bucket, "d/") == {"d/a.txt", "d/dir/sub/c.exr", "d/skip.tmp"}

    sync(remote, dst, gcs=gcs)
    (dst / "extra").write_bytes(b"x")
    bucket.blob("d/a.txt").upload_from_string(b"cc")  # a new object, no recorded time
    stats = sync(remote, dst, gcs=gcs, delete=True)
    assert (stats.processed_files, stats.deleted_files) == (1, 1)
    assert (dst / "a.txt").read_bytes() == b"cc"
    assert not (dst / "extra").exists()


def test_include_exclude_and_dry_run(
    bucket: storage.Bucket, gcs: GcsConfig, tmp_path: Path
) -> None:
    _tree(tmp_path / "src")
    remote = f"gs://{BUCKET}/f"
    dry = sync(tmp_path / "src", remote, gcs=gcs, include="dir/**", exclude="*.exr", dry_run=True)
    assert (dry.dry_run, dry.processed_files) == (True, 1)
    assert _names(bucket, "f/") == set()
    sync(tmp_path / "src", remote, gcs=gcs, include="dir/**", exclude="*.exr")
    assert _names(bucket, "f/") == {"f/dir/b.bin"}
    dry = sync(remote, tmp_path / "dst", gcs=gcs, dry_run=True)
    assert dry.processed_files == 1
    assert not (tmp_path / "dst").exists()


def test_by_hash_uses_the_recorded_digest(
    bucket: storage.Bucket, gcs: GcsConfig, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _tree(src)
    remote = f"gs://{BUCKET}/h"
    sync(src, remote, gcs=gcs, by_hash=True, exclude="big.bin")
    assert len(bucket.get_blob("h/a.txt").metadata["xxh128"]) == 32
    (src / "a.txt").write_bytes(b"z")
    os.utime(src / "a.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    assert sync(src, remote, gcs=gcs, exclude="big.bin").processed_files == 0  # times agree
    stats = sync(src, remote, gcs=gcs, by_hash=True, exclude="big.bin")
    assert stats.processed_files == 1
    assert bucket.get_blob("h/a.txt").download_as_bytes() == b"z"


def test_an_object_whose_bytes_no_longer_match_its_crc32c_is_refused(
    bucket: storage.Bucket, gcs: GcsConfig, emulator: tuple[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.bin").write_bytes(b"good content")
    sync(tmp_path / "src", f"gs://{BUCKET}/c", gcs=gcs)
    stored = emulator[1] / BUCKET / "c" / "f.bin"
    stored.write_bytes(b"evil content")  # same size; the server still lists the old crc32c
    with pytest.raises(StorageError, match="crc32c"):
        sync(f"gs://{BUCKET}/c", tmp_path / "dst", gcs=gcs)
    assert os.listdir(tmp_path / "dst") == []  # nothing placed, no staging left


def test_cancelling_sends_nothing_more(
    bucket: storage.Bucket, gcs: GcsConfig, tmp_path: Path
) -> None:
    _tree(tmp_path / "src")
    reports: list[Any] = []

    def progress(report: Any) -> bool:
        reports.append(report)
        return False

    with pytest.raises(Cancelled, match="uploading"):
        sync(tmp_path / "src", f"gs://{BUCKET}/x", gcs=gcs, progress_callback=progress)
    assert [r.phase for r in reports] == ["uploading"]
    assert _names(bucket, "x/") == set()


def test_bucket_to_bucket_is_refused(gcs: GcsConfig) -> None:
    with pytest.raises(ValidationError, match="from or to a local directory, not"):
        sync(f"gs://{BUCKET}/a", "s3://b/a", gcs=gcs)


def test_an_unreachable_endpoint_is_a_storage_error_and_no_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = GcsConfig(
        anonymous=True,
        endpoint_url=f"http://127.0.0.1:{port}",
        options=CloudClientOptions(stall_timeout=1.0),
    )
    with pytest.raises(StorageError, match="gs://b/p/"):
        sync(tmp_path / "src", "gs://b/p", gcs=config)
    assert not (tmp_path / "gs:").exists()


def test_cli_sync(bucket: storage.Bucket, gcs: GcsConfig, tmp_path: Path) -> None:
    files = _tree(tmp_path / "src")
    assert gcs.endpoint_url is not None
    gcs_args = ["--gcs-endpoint", gcs.endpoint_url, "--gcs-anonymous"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(Path(sys.executable).parent / "jobattach"), "sync", *args, *gcs_args]
        return subprocess.run(cmd, capture_output=True, text=True, check=False)

    up = run(str(tmp_path / "src"), f"gs://{BUCKET}/cli", "--json", "--exclude", "*.tmp")
    assert up.returncode == 0, up.stderr
    assert '"processed_files": 4' in up.stdout
    down = run(f"gs://{BUCKET}/cli", str(tmp_path / "dst"))
    assert down.returncode == 0, down.stderr
    assert "copied 4" in down.stderr
    assert (tmp_path / "dst" / "dir/b.bin").read_bytes() == files["dir/b.bin"]


@pytest.mark.parametrize("rewrite", ["shorter", "same size and mtime"])
def test_a_file_rewritten_while_synced_up_is_not_left_behind(
    bucket: storage.Bucket, gcs: GcsConfig, tmp_path: Path, rewrite: str
) -> None:
    _tree(tmp_path / "src")
    target = tmp_path / "src" / "dir" / "b.bin"
    new = b"rewritten" if rewrite == "shorter" else b"r" * 3000

    def rewrite_once_uploading(report: ProgressReport) -> bool:
        if report.phase == "uploading" and target.read_bytes() != new:
            target.write_bytes(new)
            if rewrite == "same size and mtime":  # as `cp -p` leaves it
                os.utime(target, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
        return True

    with pytest.raises(FileChangedError) as raised:
        sync(
            tmp_path / "src", f"gs://{BUCKET}/w", gcs=gcs, progress_callback=rewrite_once_uploading
        )
    assert raised.value.path == str(target)
    assert "w/dir/b.bin" not in _names(bucket, "w/")
    again = sync(tmp_path / "src", f"gs://{BUCKET}/w", gcs=gcs)
    assert again.processed_files == 1
    assert bucket.get_blob("w/dir/b.bin").download_as_bytes() == new


def test_credentials_that_cannot_be_read_are_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    config = GcsConfig(credentials_file=str(tmp_path / "missing.json"))
    with pytest.raises(StorageError, match="cannot make a client"):
        sync(tmp_path / "src", "gs://b/p", gcs=config)


def test_without_the_library_the_error_names_the_extra(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    code = (
        "import sys; sys.modules['google.cloud.storage'] = None\n"  # as if not installed
        "import jobattach\n"
        f"jobattach.sync({str(tmp_path / 'src')!r}, 'gs://b/p')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert "pip install 'jobattach[gcs]'" in out.stderr


def test_an_object_replaced_after_it_was_listed_is_not_downloaded(
    bucket: storage.Bucket, gcs: GcsConfig, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.bin").write_bytes(b"first")
    sync(tmp_path / "src", f"gs://{BUCKET}/r", gcs=gcs)

    def replace_once_downloading(report: ProgressReport) -> bool:
        blob = bucket.blob("r/f.bin")
        if report.phase == "downloading" and blob.download_as_bytes() == b"first":
            blob.upload_from_string(b"other")  # same size, a new generation
        return True

    with pytest.raises(StorageError, match=r"gs://gcs-sync/r/f\.bin") as raised:
        sync(
            f"gs://{BUCKET}/r",
            tmp_path / "dst",
            gcs=gcs,
            progress_callback=replace_once_downloading,
        )
    # the emulator ignores the generation asked for; the listed crc32c refuses what it sends
    assert "crc32c" in str(raised.value)
    assert os.listdir(tmp_path / "dst") == []

"""Progress of downloads and mirroring, and cancellation from the callback: nothing partial
or half-placed stays, and a rerun completes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import REGION
from jobattach import (
    AssetReferences,
    Cancelled,
    ManifestLocation,
    ProgressReport,
    S3Config,
    S3Location,
    submit_bundle_attachments,
    sync,
    sync_inputs,
)
from jobattach_host.hash_cache import HashCache
from jobattach_host.s3_check_cache import S3CheckCache
from jobattach_host.storage import Bucket

FILES = {f"plate.{i:04d}.exr": bytes([i]) * (500 * i + 1) for i in range(40)}


@pytest.fixture
def job(aws_env: S3Config, tmp_path: Path) -> dict[str, Any]:
    """FILES submitted as a job's inputs, and mirrored to s3://progress/m."""
    root = tmp_path / "src"
    root.mkdir()
    for name, data in FILES.items():
        (root / name).write_bytes(data)
    Bucket("progress", aws_env).create()
    submitted = submit_bundle_attachments(
        REGION,
        S3Location("progress", "JA"),
        ManifestLocation("farm-1", "queue-1"),
        AssetReferences(input_filenames=[str(root / n) for n in FILES]),
        s3=aws_env,
        hash_cache=HashCache(tmp_path / "digests.sqlite3"),
        check_cache=S3CheckCache(tmp_path / "s3.sqlite3"),
    )
    sync(root, "s3://progress/m", s3=aws_env)
    return {"root": root, "attachments": submitted.attachments}


def _files(top: Path) -> dict[str, bytes]:
    return {p.relative_to(top).as_posix(): p.read_bytes() for p in top.rglob("*") if p.is_file()}


def test_a_download_reports_its_progress_to_the_end(
    job: dict[str, Any], aws_env: S3Config, tmp_path: Path
) -> None:
    reports: list[ProgressReport] = []

    def record(r: ProgressReport) -> bool:
        reports.append(r)
        return True

    result = sync_inputs(
        S3Location("progress", "JA"),
        job["attachments"],
        tmp_path / "session",
        s3=aws_env,
        progress_callback=record,
    )
    assert {r.phase for r in reports} == {"downloading"}
    last = reports[-1]
    assert (last.processed_files, last.total_files) == (len(FILES), len(FILES))
    assert last.processed_bytes == last.total_bytes == sum(len(d) for d in FILES.values())
    assert [r.processed_bytes for r in reports] == sorted(r.processed_bytes for r in reports)
    assert result.processed_files == len(FILES)


@pytest.mark.parametrize("after", [0, 5])
def test_a_cancelled_download_places_nothing_and_a_rerun_completes(
    job: dict[str, Any], aws_env: S3Config, tmp_path: Path, after: int
) -> None:
    session = tmp_path / "session"
    where = S3Location("progress", "JA")
    with pytest.raises(Cancelled):
        sync_inputs(
            where,
            job["attachments"],
            session,
            s3=aws_env,
            progress_callback=lambda r: r.processed_files < after,
        )
    assert _files(session) == {}  # nothing placed, no staging left

    result = sync_inputs(where, job["attachments"], session, s3=aws_env)
    (local,) = result.roots.values()
    assert _files(Path(local)) == FILES


def test_sync_reports_progress_both_ways_and_cancels_cleanly(
    job: dict[str, Any], aws_env: S3Config, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(Cancelled, match="downloading"):
        sync("s3://progress/m", dest, s3=aws_env, progress_callback=lambda r: False)
    assert _files(dest) == {}

    reports: list[ProgressReport] = []
    stats = sync("s3://progress/m", dest, s3=aws_env, progress_callback=reports.append)
    assert _files(dest) == FILES
    assert reports[-1].phase == "downloading"
    assert reports[-1].processed_bytes == stats.processed_bytes == sum(map(len, FILES.values()))

    (dest / "plate.0001.exr").write_bytes(b"changed")
    up: list[ProgressReport] = []
    sync(dest, "s3://progress/m", s3=aws_env, progress_callback=up.append)
    assert (up[-1].phase, up[-1].processed_files, up[-1].processed_bytes) == ("uploading", 1, 7)

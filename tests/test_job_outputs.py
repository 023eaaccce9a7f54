"""Downloading a job's outputs: the manifests the official downloader picks, merged and
downloaded as inputs are, against the local S3 server."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from conftest import REGION, run_task
from jobattach import (
    Manifest,
    S3Config,
    S3Location,
    SessionAction,
    StorageError,
    ValidationError,
    download_job_outputs,
)
from jobattach_host.storage import Bucket
from jobattach_host.sync import session_root_name


@dataclass(frozen=True)
class Job:
    where: S3Location
    root: str
    #: Each output file and the content the latest session action of its task left.
    outputs: dict[str, bytes]


@pytest.fixture
def job(aws_env: S3Config, tmp_path: Path, request: pytest.FixtureRequest) -> Job:
    """A job whose task-1 ran twice (the second run wins), task-2 once, and whose step-2 has
    no tasks (each of its session actions counts)."""
    bucket = Bucket(f"outputs-{abs(hash(request.node.name)) % 10**8}", aws_env)
    bucket.create()
    root = str(tmp_path / "show" / "shot")
    where = S3Location(bucket.name, "JA")
    attachments = {
        "manifests": [
            {"rootPath": root, "rootPathFormat": "posix", "outputRelativeDirectories": ["renders"]}
        ],
        "fileSystem": "COPIED",
    }

    def action(step: str, task: str, n: int, started: float) -> SessionAction:
        return SessionAction(
            "farm-1", "queue-1", "job-1", step, f"sessionaction-{n}", started, task_id=task
        )

    runs = [
        (action("step-1", "task-1", 1, 1_700_000_000.0), {"renders/f1.exr": b"first try"}),
        (action("step-1", "task-1", 2, 1_700_000_200.0), {"renders/f1.exr": b"second try"}),
        (action("step-1", "task-2", 3, 1_700_000_100.0), {"renders/f2.exr": b"task two"}),
        (action("step-2", "", 4, 1_700_000_050.0), {"renders/c/a.exr": b"chunk a"}),
        (action("step-2", "", 5, 1_700_000_060.0), {"renders/c/b.exr": b"chunk b"}),
    ]
    for i, (act, files) in enumerate(runs):
        run_task(where, attachments, tmp_path / f"session-{i}", act, files, aws_env)
    outputs = {
        "renders/f1.exr": b"second try",
        "renders/f2.exr": b"task two",
        "renders/c/a.exr": b"chunk a",
        "renders/c/b.exr": b"chunk b",
    }
    return Job(where, root, outputs)


def _files(top: Path) -> dict[str, bytes]:
    return {p.relative_to(top).as_posix(): p.read_bytes() for p in top.rglob("*") if p.is_file()}


def test_each_tasks_latest_outputs_land_where_the_root_was(job: Job, aws_env: S3Config) -> None:
    result = download_job_outputs(job.where, "farm-1", "queue-1", "job-1", s3=aws_env)
    assert result.roots == {job.root: job.root}
    assert _files(Path(job.root)) == job.outputs
    assert result.processed_files == result.total_files == len(job.outputs)

    again = download_job_outputs(job.where, "farm-1", "queue-1", "job-1", s3=aws_env)
    assert again.processed_files == 0
    assert again.skipped_files == len(job.outputs)


def test_the_same_manifests_as_the_official_downloader(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    from deadline.job_attachments.download import get_output_manifests_by_asset_root
    from deadline.job_attachments.models import JobAttachmentS3Settings

    settings = JobAttachmentS3Settings(s3BucketName=job.where.bucket, rootPrefix="JA")
    for step, task in [("", ""), ("step-1", ""), ("step-1", "task-1"), ("step-2", "")]:
        official = get_output_manifests_by_asset_root(
            settings,
            "farm-1",
            "queue-1",
            "job-1",
            step_id=step or None,
            task_id=task or None,
            session=boto3.Session(region_name=REGION),
        )
        ours = download_job_outputs(
            job.where,
            "farm-1",
            "queue-1",
            "job-1",
            tmp_path / f"out-{step}-{task}",
            step_id=step,
            task_id=task,
            s3=aws_env,
        )
        assert set(ours.manifests) == set(official)
        for root, [manifest] in official.items():
            assert ours.manifests[root].encode() == manifest.encode().encode(), (step, task)


def test_a_step_or_a_task_alone_into_a_destination(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    result = download_job_outputs(
        job.where,
        "farm-1",
        "queue-1",
        "job-1",
        dest,
        step_id="step-1",
        task_id="task-2",
        s3=aws_env,
    )
    local = dest / session_root_name(job.root)
    assert result.roots == {job.root: str(local)}
    assert _files(local) == {"renders/f2.exr": b"task two"}

    step = download_job_outputs(
        job.where, "farm-1", "queue-1", "job-1", dest, step_id="step-2", s3=aws_env
    )
    assert step.processed_files == 2
    assert set(_files(local)) == {"renders/f2.exr", "renders/c/a.exr", "renders/c/b.exr"}


def test_no_outputs_is_an_empty_result(job: Job, aws_env: S3Config, tmp_path: Path) -> None:
    result = download_job_outputs(job.where, "farm-1", "queue-1", "job-2", tmp_path, s3=aws_env)
    assert (result.roots, result.total_files) == ({}, 0)


def test_bad_requests_are_refused(job: Job, aws_env: S3Config, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="task's outputs need its step"):
        download_job_outputs(job.where, "farm-1", "queue-1", "job-1", task_id="task-1", s3=aws_env)
    with pytest.raises(ValidationError, match="contains '/'"):
        download_job_outputs(job.where, "farm-1", "queue-1", "job-1/../x", tmp_path, s3=aws_env)


def test_a_windows_root_needs_a_destination(aws_env: S3Config, tmp_path: Path) -> None:
    bucket = Bucket("outputs-windows", aws_env)
    bucket.create()
    key = "JA/Manifests/farm-1/queue-1/job-1/step-1/task-1/2026-01-01T00:00:00.000000Z_s/x_output"
    bucket.put_bytes(key, Manifest.from_entries([]).encode(), metadata={"asset-root": "C:\\show"})
    where = S3Location(bucket.name, "JA")
    with pytest.raises(ValidationError, match="no absolute path here"):
        download_job_outputs(where, "farm-1", "queue-1", "job-1", s3=aws_env)

    bucket.put_bytes(key, Manifest.from_entries([]).encode(), metadata={})
    with pytest.raises(StorageError, match="names no root") as e:
        download_job_outputs(where, "farm-1", "queue-1", "job-1", tmp_path, s3=aws_env)
    assert e.value.path == key


def test_cli_download_outputs(job: Job, tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "jobattach.cli",
        "attachments",
        "download-outputs",
        "--bucket",
        job.where.bucket,
        "--root-prefix",
        "JA",
        "--farm-id",
        "farm-1",
        "--queue-id",
        "queue-1",
        "--job-id",
        "job-1",
        "--dest",
        str(tmp_path / "cli"),
    ]
    out = subprocess.run([*cmd, "--json"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    local = tmp_path / "cli" / session_root_name(job.root)
    assert result["roots"] == {job.root: str(local)}
    assert "manifests" not in result  # the report, not the manifests' insides
    assert result["processed_files"] == len(job.outputs)
    assert _files(local) == job.outputs

    again = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert "0 downloaded" in again.stderr
    assert again.stdout.strip() == f"{job.root} -> {local}"

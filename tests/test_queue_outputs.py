"""Downloading a queue's outputs as they come, with a checkpoint: every job's output manifests
found by listing the queue's manifests in S3 (no Deadline API), against the local S3 server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable

import boto3
import pytest

from conftest import REGION, S3Proxy, answer, official_upload, run_task, through
from jobattach import (
    FileAccessError,
    S3Config,
    S3Location,
    SessionAction,
    ValidationError,
    download_queue_outputs,
)
from jobattach_host.storage import Bucket
from jobattach_host.sync import session_root_name

FARM, QUEUE = "farm-1", "queue-1"


@dataclass
class Queue:
    """A queue's bucket, and its jobs: each has one root (``roots[job]``) whose outputs, once
    downloaded into ``dest``, land in ``dest / session_root_name(root)``."""

    where: S3Location
    aws: S3Config
    scratch: Path
    roots: dict[str, str]
    attachments: dict[str, dict[str, Any]]
    runs: int = 0

    def run(self, job: str, step: str, task: str, files: dict[str, bytes]) -> list[str]:
        """A session action of ``job`` writing ``files``; the output manifests' keys."""
        self.runs += 1
        action = SessionAction(
            FARM, QUEUE, job, step, f"sessionaction-{self.runs}-0", 1_700_000_000.0 + self.runs,
            task_id=task,
        )  # fmt: skip
        session = self.scratch / f"session-{self.runs}"
        return run_task(self.where, self.attachments[job], session, action, files, self.aws)

    def local(self, dest: Path, job: str) -> Path:
        return dest / session_root_name(self.roots[job])


def _attachments(root: str) -> dict[str, Any]:
    entry = {"rootPath": root, "rootPathFormat": "posix", "outputRelativeDirectories": ["out"]}
    return {"manifests": [entry], "fileSystem": "COPIED"}


@pytest.fixture
def queue(aws_env: S3Config, tmp_path: Path, request: pytest.FixtureRequest) -> Queue:
    """Three jobs with outputs: job-1 two tasks (task-1 run twice), job-2 a step without
    tasks, job-3 one task."""
    bucket = Bucket(f"queue-{abs(hash(request.node.name)) % 10**8}", aws_env)
    bucket.create()
    roots = {f"job-{n}": str(tmp_path / "farm" / f"shot{n}") for n in (1, 2, 3)}
    q = Queue(
        S3Location(bucket.name, "JA"),
        aws_env,
        tmp_path,
        roots,
        {job: _attachments(root) for job, root in roots.items()},
    )
    q.run("job-1", "step-1", "task-1", {"out/a.exr": b"a, first try", "out/old.exr": b"old"})
    q.run("job-1", "step-1", "task-1", {"out/a.exr": b"a, second try"})
    q.run("job-1", "step-1", "task-2", {"out/b.exr": b"b"})
    q.run("job-2", "step-1", "", {"out/c/1.exr": b"chunk 1"})
    q.run("job-3", "step-1", "task-1", {"out/d.exr": b"d"})
    return q


#: What the queue's jobs left, each task's every run counting (the later write of a path wins).
FIRST = {
    "job-1": {"out/a.exr": b"a, second try", "out/old.exr": b"old", "out/b.exr": b"b"},
    "job-2": {"out/c/1.exr": b"chunk 1"},
    "job-3": {"out/d.exr": b"d"},
}


def _files(top: Path) -> dict[str, bytes]:
    return {p.relative_to(top).as_posix(): p.read_bytes() for p in top.rglob("*") if p.is_file()}


def _download(q: Queue, checkpoint: Path, dest: Path, **kwargs: Any) -> Any:
    kwargs.setdefault("s3", q.aws)
    return download_queue_outputs(q.where, FARM, QUEUE, checkpoint, dest, **kwargs)


def test_a_first_run_downloads_every_job_and_a_second_nothing(queue: Queue, tmp_path: Path) -> None:
    checkpoint, dest = tmp_path / "state" / "queue-1.json", tmp_path / "dest"
    first = _download(queue, checkpoint, dest)
    assert set(first.jobs) == set(FIRST)
    for job, files in FIRST.items():
        assert _files(queue.local(dest, job)) == files
        assert first.jobs[job].roots == {queue.roots[job]: str(queue.local(dest, job))}
    assert len(first.manifest_keys["job-1"]) == 3  # both runs of task-1, and task-2
    assert first.processed_files == first.total_files == 5
    # The checkpoint alone is left in its folder: no temporary file stays.
    assert os.listdir(checkpoint.parent) == ["queue-1.json"]
    doc = json.loads(checkpoint.read_text())
    assert doc["version"] == 1
    assert set(doc["done"]) == {k for keys in first.manifest_keys.values() for k in keys}

    second = _download(queue, checkpoint, dest)
    assert (second.jobs, second.manifest_keys, second.total_files) == ({}, {}, 0)


def test_outputs_written_after_the_checkpoint_are_downloaded_alone(
    queue: Queue, tmp_path: Path
) -> None:
    checkpoint, dest = tmp_path / "queue-1.json", tmp_path / "dest"
    _download(queue, checkpoint, dest)
    new = queue.run("job-1", "step-1", "task-3", {"out/e.exr": b"e"})
    new += queue.run("job-3", "step-1", "task-1", {"out/d.exr": b"d, retried"})
    later = _download(queue, checkpoint, dest)
    assert later.manifest_keys == {"job-1": new[:1], "job-3": new[1:]}
    assert later.processed_files == 2
    assert _files(queue.local(dest, "job-1")) == {**FIRST["job-1"], "out/e.exr": b"e"}
    assert _files(queue.local(dest, "job-3")) == {"out/d.exr": b"d, retried"}


def _listing_at_one_second(proxy: list[S3Proxy]) -> Callable[[BaseHTTPRequestHandler, bytes], bool]:
    """A fault answering listings with every LastModified the same second, as S3 can give
    objects written in one second (a listing has whole seconds)."""

    def fault(request: BaseHTTPRequestHandler, body: bytes) -> bool:
        if request.command != "GET" or "list-type=2" not in request.path:
            return False
        status, headers, data = proxy[0].send(request, body)
        data = re.sub(
            rb"<LastModified>[^<]*</LastModified>",
            b"<LastModified>2026-01-01T00:00:00.000Z</LastModified>",
            data,
        )
        answer(request, status, headers, data)
        return True

    return fault


def test_a_manifest_of_the_same_second_as_the_checkpoint_is_not_lost(
    queue: Queue, tmp_path: Path, s3_proxy: Callable[..., S3Proxy]
) -> None:
    holder: list[S3Proxy] = []
    holder.append(s3_proxy(_listing_at_one_second(holder)))
    aws = through(holder[0])
    checkpoint, dest = tmp_path / "queue-1.json", tmp_path / "dest"
    first = _download(queue, checkpoint, dest, s3=aws, lookback=0)
    assert set(first.jobs) == set(FIRST)
    new = queue.run("job-2", "step-1", "", {"out/c/2.exr": b"chunk 2"})
    later = _download(queue, checkpoint, dest, s3=aws, lookback=0)
    assert later.manifest_keys == {"job-2": new}
    assert _download(queue, checkpoint, dest, s3=aws, lookback=0).jobs == {}


class StallSecondJob:
    """Lets a run's requests through until it asks for a manifest of a second job: that
    request is held (until ``release``) once ``stalled`` says so."""

    def __init__(self) -> None:
        self.first_job: str | None = None
        self.stalled = threading.Event()
        self.release = threading.Event()

    def __call__(self, request: BaseHTTPRequestHandler, body: bytes) -> bool:
        found = re.search(r"/Manifests/farm-1/queue-1/(job-[^/]+)/", request.path)
        if request.command != "GET" or "list-type" in request.path or not found:
            return False
        self.first_job = self.first_job or found[1]
        if found[1] != self.first_job:
            self.stalled.set()
            self.release.wait(60)
            request.send_response(503)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return True
        return False


def _cli(where: S3Location, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jobattach.cli",
        "attachments",
        "download-outputs",
        "--bucket",
        where.bucket,
        "--root-prefix",
        where.root_prefix,
        "--farm-id",
        FARM,
        "--queue-id",
        QUEUE,
        *args,
    ]


def test_a_run_killed_after_its_first_checkpoint_resumes_from_it(
    queue: Queue, tmp_path: Path, s3_proxy: Callable[..., S3Proxy]
) -> None:
    stall = StallSecondJob()
    proxy = s3_proxy(stall)
    checkpoint, dest = tmp_path / "queue-1.json", tmp_path / "dest"
    cmd = _cli(queue.where, "--queue-wide", "--checkpoint", str(checkpoint), "--dest", str(dest))
    env = {**os.environ, "AWS_ENDPOINT_URL_S3": proxy.url}
    run = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert stall.stalled.wait(60), "the run never reached a second job"
        # The first job is downloaded and recorded before the second's manifests are read.
        first = stall.first_job
        assert first is not None
        done = json.loads(checkpoint.read_text())["done"]
        assert {k.split("/")[4] for k in done} == {first}
        run.send_signal(signal.SIGKILL)
        run.wait(60)
    finally:
        stall.release.set()
        if run.poll() is None:
            run.kill()
        run.communicate()
    assert run.returncode == -signal.SIGKILL
    assert _files(queue.local(dest, first)) == FIRST[first]

    resumed = _download(queue, checkpoint, dest)
    assert set(resumed.jobs) == set(FIRST) - {first}
    for job, files in FIRST.items():
        assert _files(queue.local(dest, job)) == files
    assert _download(queue, checkpoint, dest).jobs == {}


def test_the_conflict_policy_and_path_mapping_rules_hold_and_json_is_clean(
    queue: Queue, tmp_path: Path
) -> None:
    mapped = tmp_path / "mapped"
    rules = tmp_path / "rules.json"
    rule = {
        "source_path_format": "posix",
        "source_path": queue.roots["job-1"],
        "destination_path": str(mapped),
    }
    rules.write_text(json.dumps({"path_mapping_rules": [rule]}))
    (mapped / "out").mkdir(parents=True)
    (mapped / "out" / "b.exr").write_bytes(b"an artist's fix")
    checkpoint, dest = tmp_path / "queue-1.json", tmp_path / "dest"
    args = ["--queue-wide", "--checkpoint", str(checkpoint), "--dest", str(dest)]
    args += ["--path-mapping-rules", str(rules)]

    refused = subprocess.run(
        _cli(queue.where, *args, "--on-conflict", "error"), capture_output=True, text=True
    )
    assert refused.returncode == 1
    assert "b.exr" in refused.stderr
    assert (mapped / "out" / "b.exr").read_bytes() == b"an artist's fix"
    # What was downloaded before the refusal stays recorded; job-1's outputs are not.
    recorded = json.loads(checkpoint.read_text())["done"] if checkpoint.exists() else {}
    assert not any("/job-1/" in key for key in recorded)

    out = subprocess.run(
        _cli(queue.where, *args, "--on-conflict", "skip", "--json"), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)  # one JSON document, nothing else
    assert "job-1" in result["jobs"]
    assert result["jobs"]["job-1"]["roots"] == {queue.roots["job-1"]: str(mapped)}
    assert result["conflicts"] == {"skipped": [str(mapped / "out" / "b.exr")]}
    assert result["checkpoint"] == str(checkpoint)
    assert (mapped / "out" / "b.exr").read_bytes() == b"an artist's fix"
    assert (mapped / "out" / "a.exr").read_bytes() == b"a, second try"
    assert _files(queue.local(dest, "job-2")) == FIRST["job-2"]

    again = subprocess.run(_cli(queue.where, *args, "--json"), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["jobs"] == {}


def test_a_checkpoint_that_cannot_be_trusted_stops_the_run(queue: Queue, tmp_path: Path) -> None:
    checkpoint, dest = tmp_path / "queue-1.json", tmp_path / "dest"
    _download(queue, checkpoint, dest)
    good = json.loads(checkpoint.read_text())
    cases: list[tuple[bytes, str]] = [
        (b'{"checkpoint": "jobattach queue outputs checkpoint", "vers', "not JSON"),
        (json.dumps({**good, "version": 2}).encode(), "version 2"),
        (json.dumps({**good, "done": ["a"]}).encode(), "done is no object"),
        (json.dumps({"jobs": []}).encode(), "not a jobattach queue outputs checkpoint"),
        (json.dumps({**good, "prefix": "JA/Manifests/farm-1/queue-2/"}).encode(), "queue-2"),
    ]
    for data, why in cases:
        checkpoint.write_bytes(data)
        with pytest.raises(ValidationError, match=why):
            _download(queue, checkpoint, dest)
        assert checkpoint.read_bytes() == data  # left as it was, never reset

    checkpoint.unlink()
    os.symlink(tmp_path / "elsewhere.json", checkpoint)
    with pytest.raises(FileAccessError, match="cannot read the checkpoint"):
        _download(queue, checkpoint, dest)
    assert not (tmp_path / "elsewhere.json").exists()


def test_queue_wide_and_a_job_are_either_or(queue: Queue, tmp_path: Path) -> None:
    both = subprocess.run(
        _cli(queue.where, "--job-id", "job-1", "--queue-wide"), capture_output=True, text=True
    )
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr
    for args, why in [
        (["--queue-wide"], "--queue-wide needs --checkpoint FILE"),
        (["--job-id", "job-1", "--checkpoint", "c.json"], "--checkpoint goes with --queue-wide"),
        (["--queue-wide", "--checkpoint", "c.json", "--step-id", "step-1"], "go with --job-id"),
    ]:
        run = subprocess.run(_cli(queue.where, *args), capture_output=True, text=True)
        assert (run.returncode, why in run.stderr) == (1, True), run.stderr


def test_outputs_the_official_worker_uploaded_are_found(aws_env: S3Config, tmp_path: Path) -> None:
    from deadline.job_attachments.asset_sync import AssetSync
    from deadline.job_attachments.models import JobAttachmentS3Settings

    bucket = Bucket("queue-official", aws_env)
    bucket.create()
    shot = tmp_path / "shot"
    shot.mkdir()
    (shot / "scene.txt").write_bytes(b"the scene")
    attachments = official_upload(
        bucket.name, "JA", [str(shot / "scene.txt")], tmp_path, FARM, QUEUE
    )
    attachments.manifests[0].outputRelativeDirectories = ["out"]
    settings = JobAttachmentS3Settings(s3BucketName=bucket.name, rootPrefix="JA")
    wrote: dict[str, dict[str, bytes]] = {}
    for n, (job, task) in enumerate([("job-a", "task-1"), ("job-a", "task-2"), ("job-b", "")]):
        worker = AssetSync(FARM, boto3.Session(region_name=REGION))
        session = tmp_path / f"official-session-{n}"
        session.mkdir()
        worker.sync_inputs(settings, attachments, QUEUE, job, session)
        (local,) = session.glob("assetroot-*")
        (local / "out").mkdir()
        (local / "out" / f"{job}-{task or 'step'}.exr").write_bytes(f"{job} {task}".encode())
        worker.sync_outputs(
            settings, attachments, QUEUE, job, "step-1", task, f"sessionaction-{n}-0",
            1_700_000_000.0 + n, session,
        )  # fmt: skip
        wrote.setdefault(job, {})[f"out/{job}-{task or 'step'}.exr"] = f"{job} {task}".encode()

    where = S3Location(bucket.name, "JA")
    dest = tmp_path / "dest"
    result = download_queue_outputs(where, FARM, QUEUE, tmp_path / "c.json", dest, s3=aws_env)
    assert {job: len(keys) for job, keys in result.manifest_keys.items()} == {
        "job-a": 2,
        "job-b": 1,
    }
    local = dest / session_root_name(str(shot))
    assert _files(local) == {**wrote["job-a"], **wrote["job-b"]}

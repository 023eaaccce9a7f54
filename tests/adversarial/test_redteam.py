"""A reviewer's second pass at the destination: names a download takes for a user's folder, a
user's folder taken for the tool's own, killed and racing workers. Against the real local
server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_confined_writes import Job, _landed, job_fixture  # noqa: F401  (the fixture job)

from jobattach import PathMappingRule, S3Config, ValidationError, sync, sync_inputs
from jobattach_host.destination import Staging, open_root
from jobattach_host.storage import Bucket
from jobattach_host.sync import session_root_name

#: A folder name of the staging folders' shape, as a manifest may carry it.
STAGING_LIKE = ".jobattach-staging-0123456789abcdef"


@pytest.fixture
def private_umask() -> Iterator[None]:
    """A umask of 077, as hardened hosts have: every folder a download makes is then 0700."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def test_a_downloaded_folder_named_like_staging_is_kept_by_later_downloads(
    job: Job, aws_env: S3Config, tmp_path: Path, private_umask: None
) -> None:
    files = {f"{STAGING_LIKE}/a.txt": b"the job's own", "b.txt": b"b"}
    where, attachments, root = job(files)
    session = tmp_path / "session"
    sync_inputs(where, attachments, session, s3=aws_env)
    dest = session / session_root_name(str(root))
    assert _landed(dest) == files
    # Another job downloading into the same folder: its staging must not take the first's.
    where2, attachments2, root2 = job({"c.txt": b"c"})
    rule = PathMappingRule("posix", str(root2), str(dest))
    sync_inputs(where2, attachments2, session, s3=aws_env, path_mapping_rules=[rule])
    assert _landed(dest) == {**files, "c.txt": b"c"}


def test_a_users_folder_named_like_staging_is_synced_both_ways(
    aws_env: S3Config, tmp_path: Path, private_umask: None
) -> None:
    src = tmp_path / "src"
    (src / STAGING_LIKE).mkdir(parents=True)
    (src / STAGING_LIKE / "a.txt").write_bytes(b"mine")
    (src / "b.txt").write_bytes(b"b")
    Bucket("redteam-staging-like", aws_env).create()
    up = sync(src, "s3://redteam-staging-like/t", s3=aws_env)
    assert up.processed_files == 2
    dest = tmp_path / "dest"
    sync("s3://redteam-staging-like/t", dest, s3=aws_env)
    assert _landed(dest) == {f"{STAGING_LIKE}/a.txt": b"mine", "b.txt": b"b"}
    again = sync("s3://redteam-staging-like/t", dest, s3=aws_env)
    assert (again.processed_files, again.skipped_files) == (0, 2)


#: Runs sync_inputs, SIGKILLing itself once some files are down (argv: bucket, attachments,
#: session directory).
KILLED = """
import json, os, signal, sys
from jobattach import S3Config, S3Location, sync_inputs

def progress(report):
    if report.processed_files >= 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return True

sync_inputs(S3Location(sys.argv[1], "JA"), json.loads(sys.argv[2]), sys.argv[3],
            s3=S3Config(region="us-west-2"), progress_callback=progress)
"""


def test_a_download_killed_midway_leaves_nothing_under_a_final_name_and_reruns_whole(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    files = {f"d{i % 3}/f{i}.bin": os.urandom(100 + i) for i in range(40)}
    where, attachments, root = job(files)
    session = tmp_path / "session"
    cmd = [sys.executable, "-c", KILLED, where.bucket, json.dumps(attachments), str(session)]
    killed = subprocess.run(cmd, capture_output=True, check=False)
    assert killed.returncode == -signal.SIGKILL
    dest = session / session_root_name(str(root))
    left = [p.name for p in dest.iterdir()]
    assert len(left) == 1  # nothing placed: only its staging folder
    assert left[0].startswith(".jobattach-staging-")
    sync_inputs(where, attachments, session, s3=aws_env)
    assert _landed(dest) == files
    assert sorted(p.name for p in dest.iterdir()) == ["d0", "d1", "d2"]  # its staging removed


def test_workers_starting_at_once_each_get_their_staging(tmp_path: Path) -> None:
    """One worker looking for a killed download's staging holds each folder it finds for a
    moment: another worker's folder, just made, must then wait, not fail."""
    root_path = tmp_path / "dest"
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        root = open_root(root_path)
        try:
            barrier.wait()
            for _ in range(150):
                with Staging(root):
                    pass
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            root.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert os.listdir(root_path) == []


def test_a_root_that_climbs_out_of_a_rules_source_is_never_mapped_outside(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    """A job's rootPath is the submitter's to write: ``..`` must not take a file system
    location's root out of the place the worker's rule gives it."""
    where, attachments, _ = job({"authorized_keys": b"the submitter's key"})
    outside = tmp_path / "home" / ".ssh"
    outside.mkdir(parents=True)
    local = tmp_path / "local" / "proj"
    climbing = "/mnt/proj/../../home/.ssh"  # the rule maps it to local/proj/../../home/.ssh
    attachments = {
        "manifests": [
            {**m, "rootPath": climbing, "fileSystemLocationName": "Projects"}
            for m in attachments["manifests"]
        ]
    }
    rule = PathMappingRule("posix", "/mnt/proj", str(local))
    with pytest.raises(ValidationError, match="no path mapping rule maps"):
        sync_inputs(where, attachments, tmp_path / "session", s3=aws_env, path_mapping_rules=[rule])
    assert os.listdir(outside) == []
    climbing_inside = {**attachments["manifests"][0], "rootPath": "/mnt/proj/shots/../assets"}
    result = sync_inputs(
        where,
        {"manifests": [climbing_inside]},
        tmp_path / "session",
        s3=aws_env,
        path_mapping_rules=[rule],
    )
    assert result.roots == {"/mnt/proj/shots/../assets": str(local / "assets")}
    assert _landed(local) == {"assets/authorized_keys": b"the submitter's key"}

"""Someone who can write into a worker's destination tries to make a download write outside
it, or lose a file: planted symlinks, names the tool itself uses, folders swapped for symlinks
while the download runs, two workers in one destination. Against the real local server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import REGION
from jobattach import (
    AssetReferences,
    FileAccessError,
    ManifestLocation,
    PathMappingRule,
    S3Config,
    S3Location,
    SessionAction,
    ValidationError,
    submit_bundle_attachments,
    sync,
    sync_inputs,
    sync_outputs,
)
from jobattach_host.destination import Blocked
from jobattach_host.storage import Bucket
from jobattach_host.sync import session_root_name

WHERE = ManifestLocation("farm-1", "queue-1")
Job = Callable[[dict[str, bytes]], tuple[S3Location, dict[str, Any], Path]]


@pytest.fixture(name="job")
def job_fixture(aws_env: S3Config, tmp_path: Path, request: pytest.FixtureRequest) -> Job:
    """Submits files (root-relative name -> content) as a job; returns where its data is, its
    attachments and its root."""
    bucket = Bucket(f"confined-{abs(hash(request.node.name)) % 10**8}", aws_env)
    bucket.create()
    count = 0

    def submit(files: dict[str, bytes]) -> tuple[S3Location, dict[str, Any], Path]:
        nonlocal count
        count += 1
        root = tmp_path / f"job{count}"
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        refs = AssetReferences(input_filenames=[str(root / rel) for rel in files])
        where = S3Location(bucket.name, "JA")
        result = submit_bundle_attachments(
            REGION, where, WHERE, refs, s3=aws_env, hash_cache=False, check_cache=False
        )
        return where, result.attachments, root

    return submit


def _landed(dest: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(dest)): p.read_bytes()
        for p in dest.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def test_names_the_tool_itself_once_used_are_downloaded_and_planted_links_are_not_followed(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    files = {
        ".jobattach-staging/a.txt": b"under the old staging folder's name",
        ".x.txt.jobattach-tmp": b"named like the old temporary file",
        "x.txt": b"beside it",
        "sub/.y.bin.jobattach-tmp": b"another",
        "sub/y.bin": b"y",
    }
    where, attachments, root = job(files)
    session = tmp_path / "session"
    dest = session / session_root_name(str(root))
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_bytes(b"must stay")
    dest.mkdir(parents=True)
    (dest / "sub").mkdir()
    # Links at every name the tool ever used for itself, leading out.
    (dest / ".x.txt.jobattach-tmp").symlink_to(victim)
    (dest / "sub" / ".y.bin.jobattach-tmp").symlink_to(victim)
    (dest / "x.txt").symlink_to(victim)
    result = sync_inputs(where, attachments, session, s3=aws_env)
    assert result.processed_files == len(files)
    assert _landed(dest) == files
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    assert victim.read_bytes() == b"must stay"
    assert sorted(os.listdir(outside)) == ["victim.txt"]
    assert [p.name for p in dest.iterdir() if p.name.startswith(".jobattach-staging-")] == []


def test_a_symlink_at_the_roots_own_folder_is_refused(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    where, attachments, root = job({"a.txt": b"a", "d/b.txt": b"b"})
    session = tmp_path / "session"
    session.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (session / session_root_name(str(root))).symlink_to(outside)
    with pytest.raises(ValidationError, match="symlink"):
        sync_inputs(where, attachments, session, s3=aws_env)
    assert os.listdir(outside) == []


def test_a_refused_path_creates_nothing_outside(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    where, attachments, root = job({"a.txt": b"a", "link/deeper/er/b.txt": b"b"})
    session = tmp_path / "session"
    dest = session / session_root_name(str(root))
    dest.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "link").symlink_to(outside)
    with pytest.raises(ValidationError, match="symlink") as raised:
        sync_inputs(where, attachments, session, s3=aws_env)
    assert raised.value.path == str(dest / "link")
    assert os.listdir(outside) == []
    assert os.listdir(dest) == ["link"]  # refused before anything was written


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_a_special_file_at_a_folders_place_is_named_for_what_it_is(
    job: Job, aws_env: S3Config, tmp_path: Path, kind: str
) -> None:
    where, attachments, root = job({"a.txt": b"a", "d/b.txt": b"b"})
    session = tmp_path / "session"
    dest = session / session_root_name(str(root))
    dest.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(dest / "d")
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(dest / "d"))
        sock.close()
    want = "a FIFO" if kind == "fifo" else "a socket"
    with pytest.raises(ValidationError, match=f": {want} stands where a folder goes") as raised:
        sync_inputs(where, attachments, session, s3=aws_env)
    assert raised.value.path == str(dest / "d")
    assert sorted(os.listdir(dest)) == ["d"]  # refused before anything was written


def test_roots_mapped_to_one_folder_merge_there_the_later_winning(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    first = {"shared.txt": b"from the first root", "one.txt": b"1"}
    second = {"shared.txt": b"the second root's", "two.txt": b"2"}
    where, a1, root1 = job(first)
    _, a2, root2 = job(second)
    attachments = {"manifests": a1["manifests"] + a2["manifests"], "fileSystem": "COPIED"}
    dest = tmp_path / "together"
    rules = [PathMappingRule("posix", str(r), str(dest)) for r in (root1, root2)]
    result = sync_inputs(
        where, attachments, tmp_path / "session", path_mapping_rules=rules, s3=aws_env
    )
    assert _landed(dest) == {**first, **second}
    assert result.roots == {str(root1): str(dest), str(root2): str(dest)}
    assert sorted(result.manifests) == sorted([str(root1), str(root2)])
    assert [e.path for e in result.manifests[str(root2)].entries] == ["shared.txt", "two.txt"]


def test_names_of_255_bytes_download(job: Job, aws_env: S3Config, tmp_path: Path) -> None:
    longest = "n" * 251 + ".exr"
    files = {longest: b"a long name", f"d/{'é' * 125}.txt": b"255 bytes in UTF-8"}
    where, attachments, root = job(files)
    session = tmp_path / "session"
    sync_inputs(where, attachments, session, s3=aws_env)
    assert _landed(session / session_root_name(str(root))) == files


#: Trades each folder ``d<i>`` of a destination with the link ``.link<i>`` beside it, and back,
#: atomically (Linux's renameat2 RENAME_EXCHANGE: no moment where neither stands), on its own
#: core until killed (or a bounded number of rounds); prints the rounds once it has begun.
SWAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
top = sys.argv[1].encode()
names = [(b"%s/d%d" % (top, i), b"%s/.link%d" % (top, i)) for i in range(int(sys.argv[2]))]
print("swapping", flush=True)
for _ in range(5_000_000):
    for d, link in names:
        libc.renameat2(-100, d, -100, link, 2)
"""


def test_a_folder_swapped_for_a_symlink_during_downloads_never_leads_a_write_outside(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    folders = 4
    files = {f"d{i % folders}/s{i % 3}/f{i}.bin": f"{i}".encode() * 50 for i in range(600)}
    where, attachments, root = job(files)
    outside = tmp_path / "outside"
    for k in range(3):  # the same shape as inside, so that writes through a link would land
        (outside / f"s{k}").mkdir(parents=True)
    refused = 0
    for attempt in range(4):
        session = tmp_path / f"session{attempt}"
        dest = session / session_root_name(str(root))
        for i in range(folders):
            (dest / f"d{i}").mkdir(parents=True)
            (dest / f".link{i}").symlink_to(outside)
        cmd = [sys.executable, "-c", SWAPPER, str(dest), str(folders)]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as swapper:
            assert swapper.stdout is not None
            assert swapper.stdout.readline() == "swapping\n"
            try:
                sync_inputs(where, attachments, session, s3=aws_env)
            except Blocked:
                refused += 1  # refused at a segment found swapped
            finally:
                swapper.kill()
        escaped = [p for p in outside.rglob("*") if not p.is_dir()]
        assert escaped == [], f"{len(escaped)} writes escaped"
    assert refused > 0  # the race did run


def test_two_workers_downloading_into_one_destination_both_end_correct(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    files = {f"d{i % 5}/f{i}.bin": os.urandom(64) * (1 + i % 7) for i in range(300)}
    files.update({f"same/{i}.txt": b"one content, many names" for i in range(20)})
    where, attachments, root = job(files)
    session = tmp_path / "session"
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        try:
            barrier.wait()
            sync_inputs(where, attachments, session, s3=aws_env)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    dest = session / session_root_name(str(root))
    assert _landed(dest) == files
    source_mtimes = {rel: (root / rel).stat().st_mtime_ns // 1000 for rel in files}
    assert {rel: (dest / rel).stat().st_mtime_ns // 1000 for rel in files} == source_mtimes


def test_a_killed_downloads_staging_is_removed_by_the_next_and_never_synced(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    where, attachments, root = job({"a.txt": b"a"})
    session = tmp_path / "session"
    dest = session / session_root_name(str(root))
    killed = dest / ".jobattach-staging-00112233aabbccdd"
    killed.mkdir(parents=True)
    killed.chmod(0o1700)  # the mode a staging folder has
    (killed / "0123").write_bytes(b"half a file")
    users = dest / ".jobattach-staging-0123"  # not of our shape: a user's, kept
    users.mkdir()
    (users / "keep.txt").write_bytes(b"mine")
    sync_inputs(where, attachments, session, s3=aws_env)
    assert not killed.exists()
    assert (users / "keep.txt").read_bytes() == b"mine"


def test_a_sync_download_never_writes_through_a_symlink(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "top.txt").write_bytes(b"top")
    (src / "sub" / "f.txt").write_bytes(b"f")
    bucket = Bucket("confined-sync", aws_env)
    bucket.create()
    sync(src, "s3://confined-sync/tree", s3=aws_env)
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "sub").symlink_to(outside)
    with pytest.raises(ValidationError, match="symlink"):
        sync("s3://confined-sync/tree", dest, s3=aws_env)
    assert os.listdir(outside) == []
    (dest / "sub").unlink()
    (dest / "top.txt").unlink(missing_ok=True)  # placed, or not yet, when the sync stopped
    (dest / "top.txt").symlink_to(outside / "victim")
    sync("s3://confined-sync/tree", dest, s3=aws_env)
    assert os.listdir(outside) == []
    assert _landed(dest) == {"top.txt": b"top", "sub/f.txt": b"f"}


def test_outputs_are_not_read_through_a_symlink_at_the_roots_folder(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    where, attachments, root = job({"a.txt": b"a"})
    attachments = {
        **attachments,
        "manifests": [{**m, "outputRelativeDirectories": ["."]} for m in attachments["manifests"]],
    }
    session = tmp_path / "session"
    session.mkdir()
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "key.pem").write_bytes(b"not for the bucket")
    (session / session_root_name(str(root))).symlink_to(secrets)
    action = SessionAction("farm-1", "queue-1", "job-1", "step-1", "sa-1", 1.0)
    before = Bucket(where.bucket, aws_env).keys("JA/")
    with pytest.raises(FileAccessError, match="symlink"):
        sync_outputs(where, attachments, session, action, s3=aws_env)
    assert Bucket(where.bucket, aws_env).keys("JA/") == before

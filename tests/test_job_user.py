"""Downloads for a job that runs as another user: what is written is given to its group with
group write, as the official worker does (``os_file_permission.py``), against the local
server, with the official downloader as the reference."""

from __future__ import annotations

import grp
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import official_job
from jobattach import (
    JobUser,
    MountError,
    S3Config,
    S3Location,
    ValidationError,
    sync_inputs,
)
from jobattach_host.sync import session_root_name

TREE = {"a.exr": b"a", "shots/s1/b.exr": b"b", "shots/c.txt": b"c"}


def _other_group() -> grp.struct_group:
    """A real group the test may give files to: as root any but root's; else one this user
    is in besides its own."""
    if os.geteuid() == 0:
        return grp.getgrnam("daemon")
    others = [g for g in os.getgroups() if g != os.getegid()]
    assert others, "the test needs root, or a user in a second group"
    return grp.getgrgid(others[0])


@pytest.fixture
def job(aws_env: S3Config, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    return official_job(aws_env, tmp_path, request.node.name, TREE)


def _access(folder: Path) -> dict[str, tuple[int, int]]:
    """Group and permission bits of the folder and of everything below it."""
    found = {".": (folder.stat().st_gid, stat.S_IMODE(folder.stat().st_mode))}
    for p in folder.rglob("*"):
        st = p.lstat()
        found[p.relative_to(folder).as_posix()] = (st.st_gid, stat.S_IMODE(st.st_mode))
    return found


def test_files_and_folders_go_to_the_job_users_group_as_the_official_worker_gives_them(
    job: dict[str, Any], tmp_path: Path
) -> None:
    from deadline.job_attachments.asset_manifests.decode import decode_manifest
    from deadline.job_attachments.download import download_files_from_manifests
    from deadline.job_attachments.models import FileConflictResolution
    from deadline.job_attachments.os_file_permission import PosixFileSystemPermissionSettings

    group = _other_group()
    old = os.umask(0o022)  # group write comes from the download, not from the umask
    try:
        where = S3Location(job["bucket"].name, "JA")
        r = sync_inputs(
            where, job["attachments"], tmp_path / "ours", job_user=JobUser(group.gr_name)
        )
        ours = tmp_path / "ours" / session_root_name(str(job["root"]))
        theirs = tmp_path / "theirs"
        manifest = decode_manifest(r.manifests[str(job["root"])].encode().decode())
        download_files_from_manifests(
            job["bucket"].name,
            {str(theirs): manifest},
            "JA/Data",
            fs_permission_settings=PosixFileSystemPermissionSettings(
                os_user="", os_group=group.gr_name, dir_mode=0o020, file_mode=0o020
            ),
            conflict_resolution=FileConflictResolution.OVERWRITE,
        )
    finally:
        os.umask(old)
    got = _access(ours)
    assert got == _access(theirs)
    assert {gid for gid, _ in got.values()} == {group.gr_gid}
    assert all(mode & 0o020 for _, mode in got.values())
    # By id as well, as the CLI passes a number it cannot name.
    again = sync_inputs(
        where, job["attachments"], tmp_path / "by-id", job_user=JobUser(str(group.gr_gid))
    )
    by_id = Path(again.roots[str(job["root"])])
    assert {gid for gid, _ in _access(by_id).values()} == {group.gr_gid}


def test_a_kept_symlink_never_passes_the_group_on_to_its_target(
    job: dict[str, Any], tmp_path: Path
) -> None:
    where = S3Location(job["bucket"].name, "JA")
    sync_inputs(where, job["attachments"], tmp_path / "s")
    dest = tmp_path / "s" / session_root_name(str(job["root"]))
    victim = tmp_path / "victim"
    victim.write_bytes(b"not the job's")
    victim.chmod(0o600)
    before = victim.stat()
    (dest / "a.exr").unlink()
    (dest / "a.exr").symlink_to(victim)
    group = _other_group()
    r = sync_inputs(
        where,
        job["attachments"],
        tmp_path / "s",
        on_conflict="create-copy",
        job_user=JobUser(group.gr_gid),
    )
    assert r.copies == {str(dest / "a.exr"): str(dest / "a (1).exr")}
    after = victim.stat()
    assert (after.st_gid, after.st_mode) == (before.st_gid, before.st_mode)
    assert (dest / "a (1).exr").stat().st_gid == group.gr_gid


def test_a_wrong_group_is_refused_before_anything_is_written(
    job: dict[str, Any], tmp_path: Path
) -> None:
    where = S3Location(job["bucket"].name, "JA")
    with pytest.raises(ValidationError, match="no group named 'no-such-group-here'"):
        sync_inputs(
            where, job["attachments"], tmp_path / "s", job_user=JobUser("no-such-group-here")
        )
    with pytest.raises(ValidationError, match="permission bits"):
        sync_inputs(where, job["attachments"], tmp_path / "s", job_user=JobUser(0, 0o4000))
    assert not (tmp_path / "s").exists()


def test_a_mount_for_another_users_group_is_copied_instead(
    job: dict[str, Any], tmp_path: Path
) -> None:
    where = S3Location(job["bucket"].name, "JA")
    user = JobUser(_other_group().gr_gid)
    with pytest.raises(MountError, match="job_user asks for another's group"):
        sync_inputs(
            where,
            job["attachments"],
            tmp_path / "s",
            file_system="VIRTUAL",
            fallback=False,
            job_user=user,
        )
    with pytest.warns(UserWarning, match="copying the job's inputs"):
        r = sync_inputs(
            where, job["attachments"], tmp_path / "s", file_system="VIRTUAL", job_user=user
        )
    assert r.file_system == "COPIED"
    assert r.processed_files == len(TREE)


def test_cli_job_group(job: dict[str, Any], tmp_path: Path) -> None:
    import json

    attachments = tmp_path / "attachments.json"
    attachments.write_text(json.dumps(job["attachments"]))
    group = _other_group()
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "jobattach"),
            "attachments",
            "download",
            *("--bucket", job["bucket"].name, "--root-prefix", "JA"),
            *("--attachments", str(attachments), "--dest", str(tmp_path / "d")),
            *("--job-group", group.gr_name, "--json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    dest = Path(json.loads(out.stdout)["roots"][str(job["root"])])
    assert {gid for gid, _ in _access(dest).values()} == {group.gr_gid}

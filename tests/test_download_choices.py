"""What a download does with files that differ (``create-copy``) and which files it takes
(``include``/``exclude``), against the local server, with the official package as the
reference for copy names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import official_job, official_upload
from jobattach import S3Config, S3Location, ValidationError, download_job_outputs, sync_inputs
from jobattach_host.storage import Bucket
from jobattach_host.sync import session_root_name

#: The submitted tree: names with and without suffixes, a name that is already a copy's.
TREE = {
    "shot.exr": b"frame one",
    "scene.tar.gz": b"archive",
    ".bashrc": b"settings",
    "noext": b"plain",
    "x.txt": b"x",
    "x (1).txt": b"the job's own x (1)",
    "deep/a/b.exr": b"deep frame",
    "deep/notes.txt": b"notes",
}


@pytest.fixture
def job(aws_env: S3Config, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """TREE uploaded by the official package: the bucket, root and attachments."""
    return official_job(aws_env, tmp_path, request.node.name, TREE)


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def _edit(dest: Path) -> None:
    """What an artist left in the destination: edited inputs, a file named as a copy would
    be, and a folder and a symlink where files go."""
    for rel in ("shot.exr", "scene.tar.gz", ".bashrc", "noext", "x.txt"):
        (dest / rel).write_bytes(b"edited " + rel.encode())
    (dest / "shot (1).exr").write_bytes(b"an older copy, not the job's")
    (dest / "deep" / "notes.txt").unlink()
    (dest / "deep" / "notes.txt").mkdir()
    (dest / "deep" / "a" / "b.exr").unlink()
    (dest / "deep" / "a" / "b.exr").symlink_to("/etc/hostname")


def test_create_copy_keeps_what_differs_and_names_copies_as_the_official_does(
    job: dict[str, Any], tmp_path: Path
) -> None:
    from deadline.job_attachments.download import download_files_from_manifests
    from deadline.job_attachments.models import FileConflictResolution

    where = S3Location(job["bucket"].name, "JA")
    ours = tmp_path / "ours"
    sync_inputs(where, job["attachments"], ours, s3=job["s3"])
    dest = ours / session_root_name(str(job["root"]))
    _edit(dest)
    before = _tree(dest)

    result = sync_inputs(where, job["attachments"], ours, on_conflict="create-copy", s3=job["s3"])
    after = _tree(dest)
    # Nothing that stood there changed; each copy holds the job's bytes.
    assert {k: v for k, v in after.items() if k in before} == before
    assert os.readlink(dest / "deep" / "a" / "b.exr") == "/etc/hostname"
    want = {
        "shot.exr": "shot (2).exr",  # (1) is taken by a file already there
        "scene.tar.gz": "scene.tar (1).gz",
        ".bashrc": ".bashrc (1)",
        "noext": "noext (1)",
        "x.txt": "x (2).txt",  # (1) is the job's own file
        "deep/notes.txt": "deep/notes (1).txt",
        "deep/a/b.exr": "deep/a/b (1).exr",
    }
    assert result.copies == {str(dest / k): str(dest / v) for k, v in want.items()}
    assert sorted(result.conflicts["copied"]) == sorted(str(dest / k) for k in want)
    for kept, copy in want.items():
        assert after[copy] == TREE[kept], copy
        assert (dest / copy).stat().st_mtime_ns // 1000 == (
            job["root"] / kept
        ).stat().st_mtime_ns // 1000
    assert set(after) - set(before) == set(want.values())

    # The official downloader, given the same destination and the files that differ, names
    # the copies the same way (it copies even a file that is the same, which this does not;
    # it follows a symlink and fails on a folder, so those are left out).
    theirs = tmp_path / "theirs"
    for rel, data in before.items():
        if rel.startswith("deep/"):
            continue
        (theirs / rel).parent.mkdir(parents=True, exist_ok=True)
        (theirs / rel).write_bytes(data)
    manifest = result.manifests[str(job["root"])]
    from deadline.job_attachments.asset_manifests.decode import decode_manifest

    official = decode_manifest(manifest.encode().decode())
    official.paths = [p for p in official.paths if p.path in want and "/" not in p.path]
    download_files_from_manifests(
        job["bucket"].name,
        {str(theirs): official},
        "JA/Data",
        conflict_resolution=FileConflictResolution.CREATE_COPY,
    )
    shallow = {k: v for k, v in after.items() if not k.startswith("deep/")}
    assert _tree(theirs) == shallow


def test_a_second_create_copy_takes_the_next_number_and_an_unchanged_file_none(
    job: dict[str, Any], tmp_path: Path
) -> None:
    where = S3Location(job["bucket"].name, "JA")
    sync_inputs(where, job["attachments"], tmp_path / "s", s3=job["s3"])
    dest = tmp_path / "s" / session_root_name(str(job["root"]))
    (dest / "noext").write_bytes(b"edited")
    for n in (1, 2):
        r = sync_inputs(where, job["attachments"], tmp_path / "s", on_conflict="create-copy")
        assert r.copies == {str(dest / "noext"): str(dest / f"noext ({n})")}
        assert r.processed_files == 1
    assert (dest / "noext").read_bytes() == b"edited"


def test_a_copy_name_is_shortened_to_the_name_limit(aws_env: S3Config, tmp_path: Path) -> None:
    bucket = Bucket("choices-long", aws_env)
    bucket.create()
    root = tmp_path / "submitted"
    root.mkdir()
    long = "é" * 125 + ".exr"  # 254 bytes: " (1)" would make it 258
    (root / long).write_bytes(b"job")
    attachments = official_upload(bucket.name, "JA", [str(root / long)], tmp_path, "f", "q")
    where = S3Location(bucket.name, "JA")
    sync_inputs(where, attachments.to_dict(), tmp_path / "s", s3=aws_env)
    dest = tmp_path / "s" / session_root_name(str(root))
    (dest / long).write_bytes(b"edited")
    r = sync_inputs(where, attachments.to_dict(), tmp_path / "s", on_conflict="create-copy")
    (copy,) = r.copies.values()
    name = Path(copy).name
    assert len(os.fsencode(name)) <= 255
    assert name == "é" * 123 + " (1).exr"
    assert Path(copy).read_bytes() == b"job"


def test_include_and_exclude_choose_what_lands(job: dict[str, Any], tmp_path: Path) -> None:
    where = S3Location(job["bucket"].name, "JA")
    r = sync_inputs(
        where,
        job["attachments"],
        tmp_path / "s",
        include=["*.exr", "deep/**"],
        exclude=["deep/notes.txt"],
        s3=job["s3"],
    )
    dest = tmp_path / "s" / session_root_name(str(job["root"]))
    assert sorted(_tree(dest)) == ["deep/a/b.exr", "shot.exr"]
    assert (r.total_files, r.processed_files) == (2, 2)
    # A lone string is one pattern, not its characters.
    one = sync_inputs(where, job["attachments"], tmp_path / "t", include="x*", s3=job["s3"])
    assert one.total_files == 2
    with pytest.raises(ValidationError, match="include patterns must be non-empty"):
        sync_inputs(where, job["attachments"], tmp_path / "u", include=[""], s3=job["s3"])
    assert not (tmp_path / "u").exists()


def test_outputs_and_the_cli_take_the_same_choices(job: dict[str, Any], tmp_path: Path) -> None:
    """download-outputs filters and copies as download does, and the CLI says so in JSON."""
    from jobattach import SessionAction, sync_outputs

    where = S3Location(job["bucket"].name, "JA")
    session = tmp_path / "session"
    inputs = sync_inputs(where, job["attachments"], session, s3=job["s3"])
    dest = session / session_root_name(str(job["root"]))
    (dest / "out").mkdir()
    (dest / "out" / "a.exr").write_bytes(b"render a")
    (dest / "out" / "a.log").write_bytes(b"log")
    action = SessionAction("farm-1", "queue-1", "job-1", "step-1", "sa-1", started=1.0)
    attachments = dict(job["attachments"])
    attachments["manifests"] = [
        {**m, "outputRelativeDirectories": ["out"]} for m in attachments["manifests"]
    ]
    sync_outputs(where, attachments, session, action, inputs=inputs, s3=job["s3"])

    local = tmp_path / "local"
    (local / "out").mkdir(parents=True)
    (local / "out" / "a.exr").write_bytes(b"mine")
    rules = tmp_path / "rules.json"
    rule = {"source_path_format": "POSIX", "source_path": str(job["root"])}
    rules.write_text(json.dumps([{**rule, "destination_path": str(local)}]))
    args = [
        str(Path(sys.executable).parent / "jobattach"),
        "attachments",
        "download-outputs",
        *("--bucket", job["bucket"].name, "--root-prefix", "JA"),
        *("--farm-id", "farm-1", "--queue-id", "queue-1", "--job-id", "job-1"),
        *("--path-mapping-rules", str(rules), "--on-conflict", "create-copy"),
        *("--include", "out/*", "--exclude", "*.log", "--json"),
    ]
    out = subprocess.run(args, capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["copies"] == {str(local / "out/a.exr"): str(local / "out/a (1).exr")}
    assert _tree(local) == {"out/a.exr": b"mine", "out/a (1).exr": b"render a"}

    again = download_job_outputs(
        where, "farm-1", "queue-1", "job-1", tmp_path / "d", exclude=["*.exr"], s3=job["s3"]
    )
    assert [Path(p).name for p in _tree(Path(next(iter(again.roots.values()))))] == ["a.log"]


def test_a_symlink_planted_at_a_copys_name_is_passed_over_never_written_through(
    job: dict[str, Any], tmp_path: Path
) -> None:
    where = S3Location(job["bucket"].name, "JA")
    sync_inputs(where, job["attachments"], tmp_path / "s", s3=job["s3"])
    dest = tmp_path / "s" / session_root_name(str(job["root"]))
    (dest / "noext").write_bytes(b"edited")
    victim = tmp_path / "victim"
    victim.write_bytes(b"not the job's")
    (dest / "noext (1)").symlink_to(victim)  # another process's trap at the first copy name
    r = sync_inputs(where, job["attachments"], tmp_path / "s", on_conflict="create-copy")
    assert r.copies == {str(dest / "noext"): str(dest / "noext (2)")}
    assert victim.read_bytes() == b"not the job's"
    assert (dest / "noext (2)").read_bytes() == TREE["noext"]
    assert os.readlink(dest / "noext (1)") == str(victim)

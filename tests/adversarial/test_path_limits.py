"""Paths this system cannot hold (too long a path or name, too deep) are refused before any
transfer, on downloads and on submissions, as a ValidationError naming them. The component
decides (component/src/portable.rs); the host gives it the file system's facts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobattach import (
    AssetReferences,
    Manifest,
    ManifestEntry,
    ManifestLocation,
    S3Config,
    S3Location,
    ValidationError,
    submit_bundle_attachments,
    sync,
    sync_inputs,
)
from jobattach_host.storage import Bucket
from jobattach_host.sync import destination_of, refused_entries

#: The depth limit the component names (component/src/portable.rs).
MAX_DEPTH = 1_000
PATH_MAX = os.pathconf("/", "PC_PATH_MAX")
#: Longer than any path the system takes, in names it takes.
LONG = "/".join(["d" * 200] * (PATH_MAX // 200 + 1)) + "/long.txt"
#: Short, but deeper than the limit.
DEEP = "a/" * (MAX_DEPTH + 100) + "deep.txt"


def _job(aws: S3Config, tmp_path: Path, bucket: str) -> dict[str, Any]:
    """A submitted job of one file; its attachments."""
    Bucket(bucket, aws).create()
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("content")
    (src / "b.txt").write_text("more")
    job = submit_bundle_attachments(
        None,
        S3Location(bucket, "JA"),
        ManifestLocation("farm-1", "queue-1"),
        AssetReferences(input_filenames=[str(src / "a.txt"), str(src / "b.txt")]),
        s3=aws,
        hash_cache=False,
        check_cache=False,
    )
    return job.attachments


def _rewrite_manifest(aws: S3Config, bucket: str, attachments: dict[str, Any], path: str) -> None:
    """Replaces the job's manifest by one whose second entry is at ``path`` (content that
    exists in S3, so only the path can stop it)."""
    b = Bucket(bucket, aws)
    (props,) = attachments["manifests"]
    key = f"JA/Manifests/{props['inputManifestPath']}"
    (first, second) = Manifest.decode(b.get_bytes(key)[0]).entries
    moved = ManifestEntry(path, second.hash, second.size, second.mtime)
    b.put_bytes(key, Manifest.from_entries([first, moved]).encode())


@pytest.mark.parametrize("path", [LONG, DEEP], ids=["too long", "too deep"])
def test_a_job_with_paths_this_system_cannot_hold_is_refused_before_any_write(
    aws_env: S3Config, tmp_path: Path, path: str
) -> None:
    attachments = _job(aws_env, tmp_path, "ja-limits")
    _rewrite_manifest(aws_env, "ja-limits", attachments, path)
    session = tmp_path / "session"
    with pytest.raises(ValidationError, match=r"too (long|deep) for this system") as raised:
        sync_inputs(S3Location("ja-limits", "JA"), attachments, session, s3=aws_env)
    assert path[:60] in str(raised.value)
    assert not session.exists() or not any(session.rglob("*"))  # not even a.txt


def test_a_mirror_of_keys_this_system_cannot_hold_is_refused_before_any_write(
    aws_env: S3Config, tmp_path: Path
) -> None:
    b = Bucket("ja-limits-sync", aws_env)
    b.create()
    b.put_bytes("tree/ok.txt", b"fine")
    b.put_bytes(f"tree/{LONG}", b"long")
    dest = tmp_path / "dest"
    with pytest.raises(ValidationError, match=r"too (long|deep) for this system") as raised:
        sync("s3://ja-limits-sync/tree", dest, s3=aws_env)
    assert "long.txt" in str(raised.value)
    assert not dest.exists() or not any(dest.iterdir())


def test_a_submission_of_an_input_too_long_for_this_system_is_refused(
    aws_env: S3Config, tmp_path: Path
) -> None:
    Bucket("ja-limits-submit", aws_env).create()
    (tmp_path / "ok.txt").write_text("fine")
    too_long_input = str(tmp_path / LONG)
    with pytest.raises(ValidationError, match=r"too (long|deep) for this system") as raised:
        submit_bundle_attachments(
            None,
            S3Location("ja-limits-submit", "JA"),
            ManifestLocation("farm-1", "queue-1"),
            AssetReferences(input_filenames=[str(tmp_path / "ok.txt"), too_long_input]),
            s3=aws_env,
            hash_cache=False,
        )
    assert too_long_input[:60] in str(raised.value)
    assert Bucket("ja-limits-submit", aws_env).keys("") == set()


@pytest.fixture
def deep_file(tmp_path: Path) -> Iterator[str]:
    """A file ``MAX_DEPTH + 10`` folders below ``tmp_path`` (a path short enough to name),
    made and removed one level at a time: pathlib's and shutil's recursions cannot."""
    levels = MAX_DEPTH + 10
    fds = [os.open(tmp_path, os.O_RDONLY)]
    for _ in range(levels):
        os.mkdir("a", dir_fd=fds[-1])
        fds.append(os.open("a", os.O_RDONLY, dir_fd=fds[-1]))
    os.close(os.open("deep.txt", os.O_WRONLY | os.O_CREAT, dir_fd=fds[-1]))
    try:
        yield str(tmp_path / ("a/" * levels + "deep.txt"))
    finally:
        os.unlink("deep.txt", dir_fd=fds[-1])
        for fd, parent in zip(reversed(fds[1:]), reversed(fds[:-1])):
            os.close(fd)
            os.rmdir("a", dir_fd=parent)
        os.close(fds[0])


def test_a_submission_of_a_tree_too_deep_to_download_is_refused(
    aws_env: S3Config, tmp_path: Path, deep_file: str
) -> None:
    Bucket("ja-limits-deep", aws_env).create()
    (tmp_path / "top.txt").write_text("top")
    deep = deep_file
    with pytest.raises(ValidationError, match=r"too (long|deep) for this system") as raised:
        submit_bundle_attachments(
            None,
            S3Location("ja-limits-deep", "JA"),
            ManifestLocation("farm-1", "queue-1"),
            AssetReferences(input_filenames=[str(tmp_path / "top.txt"), deep]),
            s3=aws_env,
            hash_cache=False,
        )
    assert "deep.txt" in str(raised.value)
    assert Bucket("ja-limits-deep", aws_env).keys("") == set()


def test_the_limits_come_from_the_file_system_and_pass_what_it_holds(tmp_path: Path) -> None:
    limit = destination_of(tmp_path / "not" / "made" / "yet")
    assert (limit.path_max, limit.name_max) == (PATH_MAX, os.pathconf(tmp_path, "PC_NAME_MAX"))
    assert limit.root_length == len(os.fsencode(tmp_path / "not" / "made" / "yet"))
    assert limit.name_max is not None
    fits = ["a.txt", "x/" * (MAX_DEPTH - 1) + "f", "é" * 127, "n" * limit.name_max]
    refused = ["é" * 128, "n" * (limit.name_max + 1), "x/" * MAX_DEPTH + "f", LONG]
    rows = [(p, None) for p in fits + refused]
    assert [p for p, _ in refused_entries(rows, destination_of(tmp_path))] == refused

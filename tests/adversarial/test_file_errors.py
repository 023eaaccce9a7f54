"""Files that vanish or cannot be read during a listing, a snapshot, a submission or a sync are
a FileAccessError naming the path, never a traceback: each class raced for real (through the
progress callbacks the API calls between phases, or a thread deleting as a listing runs), or
made with permissions."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import without_read_override
from jobattach import (
    AssetReferences,
    FileAccessError,
    FileSystemLocation,
    ManifestLocation,
    ProgressReport,
    S3Config,
    S3Location,
    StorageProfile,
    create_manifest,
    submit_bundle_attachments,
    sync,
)
from jobattach_host.s3config import ClientOptions
from jobattach_host.storage import Bucket

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")


def _files(top: Path, names: list[str]) -> list[Path]:
    paths = [top / n for n in names]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"content of {p.name}")
    return paths


def _deleting(victim: Path, when: Callable[[ProgressReport], bool]) -> Callable[..., bool]:
    """A progress callback that deletes ``victim`` at the first report ``when`` accepts."""

    def progress(report: ProgressReport) -> bool:
        if when(report) and victim.exists():
            victim.unlink()
        return True

    return progress


def _submit(aws: S3Config, bucket: str, inputs: list[Path], **kwargs: object) -> object:
    Bucket(bucket, aws).create()
    return submit_bundle_attachments(
        None,
        S3Location(bucket, "JA"),
        ManifestLocation("farm-1", "queue-1"),
        AssetReferences(input_filenames=[str(p) for p in inputs]),
        hash_cache=False,
        check_cache=False,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("phase", ["hashing", "uploading"])
@pytest.mark.parametrize("transport", ["event loop", "transfer manager"])
def test_an_input_deleted_before_it_is_read_is_named(
    aws_env: S3Config, tmp_path: Path, phase: str, transport: str
) -> None:
    """Deleted once listed (at the hashing phase's first report) or once hashed (at the
    upload's): the submission fails naming it."""
    inputs = _files(tmp_path / "job", ["a.txt", "b.txt", "c.txt"])
    threshold = 16 << 20 if transport == "event loop" else 1
    options = ClientOptions(multipart_threshold=threshold)
    config = S3Config(region=aws_env.region, options=options)
    with pytest.raises(FileAccessError) as raised:
        _submit(
            aws_env,
            "ja-deleted",
            inputs,
            s3=config,
            progress_callback=_deleting(inputs[1], lambda r: r.phase == phase),
        )
    assert raised.value.path == str(inputs[1])


def test_an_input_deleted_between_grouping_and_listing_is_named(
    aws_env: S3Config, tmp_path: Path
) -> None:
    """Two roots (a LOCAL location makes the first): the second's input is deleted once the
    first was listed, at the scanning report between them."""
    first, second = _files(tmp_path, ["local/a.txt", "other/b.txt"])
    profile = StorageProfile([FileSystemLocation("L", str(tmp_path / "local"), "LOCAL")])
    with pytest.raises(FileAccessError, match="vanished") as raised:
        _submit(
            aws_env,
            "ja-vanished",
            [first, second],
            storage_profile=profile,
            progress_callback=_deleting(
                second, lambda r: r.phase == "scanning" and r.processed_files > 0
            ),
        )
    assert raised.value.path == str(second)


def test_a_file_deleted_between_a_snapshots_listing_and_hashing_is_named(tmp_path: Path) -> None:
    files = _files(tmp_path / "tree", ["a.txt", "sub/b.txt"])
    with pytest.raises(FileAccessError) as raised:
        create_manifest(
            tmp_path / "tree",
            cache=False,
            progress_callback=_deleting(files[1], lambda r: r.phase == "hashing"),
        )
    assert raised.value.path == "sub/b.txt"  # a snapshot names its files below its root


def test_a_file_deleted_between_a_syncs_listing_and_upload_is_named(
    aws_env: S3Config, tmp_path: Path
) -> None:
    Bucket("ja-sync-deleted", aws_env).create()
    files = _files(tmp_path / "tree", ["a.txt", "sub/b.txt"])
    with pytest.raises(FileAccessError) as raised:
        sync(
            tmp_path / "tree",
            "s3://ja-sync-deleted/tree",
            s3=aws_env,
            progress_callback=_deleting(files[1], lambda r: r.phase == "uploading"),
        )
    assert raised.value.path == str(files[1])


def test_folders_vanishing_while_a_sync_lists_them_are_named(
    aws_env: S3Config, tmp_path: Path
) -> None:
    """A thread removes the tree's folders as the sync lists it: each round either lists
    before the removal or fails naming a path of the tree, and some rounds fail."""
    Bucket("ja-sync-race", aws_env).create()
    tree = tmp_path / "tree"
    failures: list[FileAccessError] = []
    for _ in range(20):
        _files(tree, [f"d{i:03}/f.txt" for i in range(300)])
        remover = threading.Thread(target=shutil.rmtree, args=(tree,))
        remover.start()
        try:
            sync(tree, "s3://ja-sync-race/tree", s3=aws_env, dry_run=True)
        except FileAccessError as e:
            failures.append(e)
        finally:
            remover.join()
        if len(failures) >= 3:
            break
    assert failures, "no round raced the removal"
    for failure in failures:
        assert str(failure.path).startswith(str(tree)), failure


#: Runs one operation as a process that permissions apply to, printing what it raised.
_AS_USER = """
import json, os, sys
os.environ.update(json.loads(sys.argv[1]))
import jobattach
from jobattach_host.s3config import S3Config
s3 = S3Config(region=os.environ["AWS_DEFAULT_REGION"])
operation, *args = sys.argv[2:]
try:
    if operation == "snapshot":
        jobattach.create_manifest(args[0], cache=False)
    elif operation == "sync":
        jobattach.sync(args[0], args[1], s3=s3)
    elif operation == "submit":
        jobattach.submit_bundle_attachments(
            None, jobattach.S3Location(args[0], "JA"), jobattach.ManifestLocation("f", "q"),
            jobattach.AssetReferences(input_filenames=args[1:]), s3=s3, hash_cache=False,
            check_cache=False,
        )
    print(json.dumps({"raised": None}))
except jobattach.AttachmentError as e:
    print(json.dumps({"raised": type(e).__name__, "path": e.path, "message": str(e)}))
"""


def _as_user(aws: S3Config, operation: str, *args: str) -> dict[str, str | None]:
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    run = without_read_override(_AS_USER, json.dumps(env), operation, *args)
    assert run.returncode == 0, run.stderr
    result: dict[str, str | None] = json.loads(run.stdout.splitlines()[-1])
    return result


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Path]:
    """A tree with a folder nobody may read or search: ``tree/locked``."""
    _files(tmp_path / "tree", ["ok.txt", "locked/secret.txt"])
    (tmp_path / "tree" / "locked").chmod(0)
    yield tmp_path / "tree" / "locked"
    (tmp_path / "tree" / "locked").chmod(0o755)


def test_an_unreadable_folder_in_a_snapshot_is_named(aws_env: S3Config, locked: Path) -> None:
    result = _as_user(aws_env, "snapshot", str(locked.parent))
    assert result["raised"] == "FileAccessError"
    assert f"{locked}: cannot list: Permission denied" in str(result["message"])


def test_a_snapshot_root_below_a_folder_that_cannot_be_searched_is_named(
    aws_env: S3Config, locked: Path
) -> None:
    result = _as_user(aws_env, "snapshot", str(locked / "inner"))
    assert (result["raised"], result["path"]) == ("FileAccessError", str(locked / "inner"))


def test_a_snapshot_root_that_is_a_loop_of_links_is_named(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(FileAccessError) as raised:
        create_manifest(tmp_path / "loop", cache=False)
    assert raised.value.path == str(tmp_path / "loop")


def test_an_unreadable_folder_in_a_sync_is_named(aws_env: S3Config, locked: Path) -> None:
    Bucket("ja-sync-locked", aws_env).create()
    result = _as_user(aws_env, "sync", str(locked.parent), "s3://ja-sync-locked/tree")
    assert (result["raised"], result["path"]) == ("FileAccessError", str(locked))


def test_an_input_in_a_folder_that_cannot_be_searched_is_named(
    aws_env: S3Config, locked: Path
) -> None:
    Bucket("ja-submit-locked", aws_env).create()
    secret = str(locked / "secret.txt")
    result = _as_user(aws_env, "submit", "ja-submit-locked", str(locked.parent / "ok.txt"), secret)
    assert (result["raised"], result["path"]) == ("FileAccessError", secret)

"""sync(source, dest): a directory mirrored to an S3 prefix and back."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import xxhash

import jobattach
from jobattach import FileChangedError, S3Config, S3Path, ValidationError, parse_path, sync
from jobattach_host.storage import Bucket


@pytest.fixture
def bucket(aws_env: S3Config) -> Bucket:
    b = Bucket("mirror-test", aws_env)
    b.create()
    for key in b.keys(""):
        b.client.delete_object(Bucket=b.name, Key=key)
    return b


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"a",
        "dir/b.bin": os.urandom(3000),
        "dir/sub/c.exr": b"c" * 10,
        "skip.tmp": b"tmp",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_paths_parse() -> None:
    assert parse_path("s3://b/p/q") == S3Path("b", "p/q/")
    assert parse_path("s3://b") == S3Path("b", "")
    with pytest.raises(ValidationError):
        parse_path("s3:///x")


def test_up_down_and_an_unchanged_resync(bucket: Bucket, aws_env: S3Config, tmp_path: Path) -> None:
    files = _tree(tmp_path / "src")
    up = sync(tmp_path / "src", "s3://mirror-test/data", s3=aws_env, exclude=("*.tmp",))
    assert (up.processed_files, up.skipped_files) == (3, 0)
    assert bucket.keys("data/") == {"data/a.txt", "data/dir/b.bin", "data/dir/sub/c.exr"}
    again = sync(tmp_path / "src", "s3://mirror-test/data", s3=aws_env, exclude=("*.tmp",))
    assert (again.processed_files, again.skipped_files) == (0, 3)

    down = sync("s3://mirror-test/data", tmp_path / "dst", s3=aws_env)
    assert down.processed_files == 3
    for rel in ["a.txt", "dir/b.bin", "dir/sub/c.exr"]:
        assert (tmp_path / "dst" / rel).read_bytes() == files[rel]
    assert sync("s3://mirror-test/data", tmp_path / "dst", s3=aws_env).processed_files == 0

    (tmp_path / "src" / "a.txt").write_bytes(
        b"longer now"
    )  # another size: copied whatever the time
    # one pattern may be a string: the pattern, not its characters
    changed = sync(tmp_path / "src", "s3://mirror-test/data", s3=aws_env, exclude="*.tmp")
    assert changed.processed_files == 1
    assert bucket.get_bytes("data/a.txt")[0] == b"longer now"


def test_delete_and_dry_run(bucket: Bucket, aws_env: S3Config, tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    sync(tmp_path / "src", "s3://mirror-test/d", s3=aws_env)
    (tmp_path / "src" / "skip.tmp").unlink()
    dry = sync(tmp_path / "src", "s3://mirror-test/d", s3=aws_env, delete=True, dry_run=True)
    assert (dry.deleted_files, dry.dry_run) == (1, True)
    assert "d/skip.tmp" in bucket.keys("d/")
    real = sync(tmp_path / "src", "s3://mirror-test/d", s3=aws_env, delete=True)
    assert real.deleted_files == 1
    assert "d/skip.tmp" not in bucket.keys("d/")
    sync("s3://mirror-test/d", tmp_path / "back", s3=aws_env)
    (tmp_path / "back" / "stray.txt").write_text("x")
    sync("s3://mirror-test/d", tmp_path / "back", s3=aws_env, delete=True)
    assert not (tmp_path / "back" / "stray.txt").exists()


def test_keys_that_would_escape_are_left_alone(
    bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    bucket.put_bytes("e/ok.txt", b"ok")
    bucket.put_bytes("e/../escape.txt", b"no")
    stats = sync("s3://mirror-test/e", tmp_path / "dst", s3=aws_env)
    assert stats.unsupported == ["../escape.txt"]
    assert (tmp_path / "dst" / "ok.txt").read_bytes() == b"ok"
    assert not (tmp_path / "escape.txt").exists()


def test_s3_to_s3_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="from or to a local directory, not"):
        sync("s3://a/x", "s3://b/y")


def test_cli_sync(bucket: Bucket, aws_env: S3Config, tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    cli = str(Path(sys.executable).parent / "jobattach")
    out = subprocess.run(
        [cli, "sync", str(tmp_path / "src"), "s3://mirror-test/cli", "--json"],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ),
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["processed_files"] == 4
    again = subprocess.run(
        [cli, "sync", str(tmp_path / "src"), "s3://mirror-test/cli"],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ),
    )
    assert "copied 0" in again.stderr


def test_by_hash_sees_a_same_size_change_that_times_miss(
    bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    _tree(tmp_path / "src")
    first = sync(tmp_path / "src", "s3://mirror-test/h", s3=aws_env, by_hash=True)
    assert first.processed_files == 4
    meta = bucket.metadata("h/a.txt")
    assert meta is not None
    assert meta["xxh128"] == xxhash.xxh3_128_hexdigest(b"a")
    # Same size, and a time set back into the past: only the hash tells.
    target = tmp_path / "src" / "a.txt"
    target.write_bytes(b"b")
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    assert sync(tmp_path / "src", "s3://mirror-test/h", s3=aws_env).processed_files == 0
    by_hash = sync(tmp_path / "src", "s3://mirror-test/h", s3=aws_env, by_hash=True)
    assert (by_hash.processed_files, by_hash.skipped_files) == (1, 3)
    assert bucket.get_bytes("h/a.txt")[0] == b"b"
    # Downloading, the local copies are hashed against what S3 recorded.
    sync("s3://mirror-test/h", tmp_path / "back", s3=aws_env)
    (tmp_path / "back" / "a.txt").write_bytes(b"z")
    os.utime(tmp_path / "back" / "a.txt", ns=(4_000_000_000_000_000_000,) * 2)
    down = sync("s3://mirror-test/h", tmp_path / "back", s3=aws_env, by_hash=True)
    assert down.processed_files == 1
    assert (tmp_path / "back" / "a.txt").read_bytes() == b"b"


@pytest.mark.parametrize("rewrite", ["shorter", "same size and mtime"])
def test_a_file_rewritten_while_synced_up_is_not_left_behind(
    bucket: Bucket, aws_env: S3Config, tmp_path: Path, rewrite: str
) -> None:
    _tree(tmp_path / "src")
    target = tmp_path / "src" / "dir" / "b.bin"
    os.utime(target, (1_600_000_000, 1_600_000_000))  # a rewrite now cannot keep its mtime
    new = b"rewritten" if rewrite == "shorter" else b"r" * 3000

    def rewrite_once_uploading(report: jobattach.ProgressReport) -> bool:
        if report.phase == "uploading" and target.read_bytes() != new:
            target.write_bytes(new)
            if rewrite == "same size and mtime":  # as `cp -p` leaves it
                os.utime(target, (1_600_000_000, 1_600_000_000))
        return True

    with pytest.raises(FileChangedError) as raised:
        sync(
            tmp_path / "src",
            "s3://mirror-test/w",
            s3=aws_env,
            by_hash=True,
            progress_callback=rewrite_once_uploading,
        )
    assert raised.value.path == str(target)
    assert bucket.keys("w/") == {"w/a.txt", "w/dir/sub/c.exr", "w/skip.tmp"}
    again = sync(tmp_path / "src", "s3://mirror-test/w", s3=aws_env, by_hash=True)
    assert (again.processed_files, again.skipped_files) == (1, 3)
    assert bucket.get_bytes("w/dir/b.bin")[0] == new


def test_a_missing_or_empty_source_never_deletes_the_destination(
    bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    _tree(tmp_path / "src")
    sync(tmp_path / "src", "s3://mirror-test/keep", s3=aws_env)
    sync("s3://mirror-test/keep", tmp_path / "local", s3=aws_env)
    with pytest.raises(jobattach.FileAccessError, match="does not exist"):
        sync(tmp_path / "typo", "s3://mirror-test/keep", s3=aws_env, delete=True)
    with pytest.raises(ValidationError, match="holds no files to sync: refusing to delete the 4"):
        sync("s3://mirror-test/kepe", tmp_path / "local", s3=aws_env, delete=True)
    # A dry run may show what such a sync would delete: it deletes nothing.
    dry = sync("s3://mirror-test/kepe", tmp_path / "local", s3=aws_env, delete=True, dry_run=True)
    assert dry.deleted_files == 4
    assert len(bucket.keys("keep/")) == 4
    assert sum(1 for p in (tmp_path / "local").rglob("*") if p.is_file()) == 4


def test_ctrl_c_stops_large_transfers_where_they_are(
    bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    src = tmp_path / "plates"
    src.mkdir()
    files = 8  # more than a loaded machine sends between the bar's first line and the signal
    for i in range(files):
        (src / f"plate_{i}.exr").write_bytes(bytes([i]) * (64 << 20))  # in 16 MiB parts
    cli = str(Path(sys.executable).parent / "jobattach")
    leader, follower = pty.openpty()  # the bar shows on a terminal: we wait for it
    with subprocess.Popen(
        [cli, "sync", str(src), "s3://mirror-test/plates"],
        stdout=subprocess.DEVNULL,
        stderr=follower,
    ) as proc:
        os.close(follower)
        drawn = b""
        while not re.search(rb"uploading +\[[#-]+\] +\d\d?%", drawn):  # under way
            drawn += os.read(leader, 4096)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    os.close(leader)
    assert len(bucket.keys("plates/")) < files  # not every started file was finished
    assert bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []) == []


def test_names_s3_cannot_hold_and_leftover_downloads_are_not_sent(
    bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _tree(src)
    with open(os.path.join(os.fsencode(src), b"latin1-\xe9.txt"), "wb") as f:
        f.write(b"not UTF-8 as a name")
    killed = src / ".jobattach-staging-0123456789abcdef"
    killed.mkdir()
    killed.chmod(0o1700)  # the mode a staging folder has
    (killed / "0").write_bytes(b"half of a killed download")
    # Users' files that only look like internal names are theirs: sent.
    (src / "dir" / ".b.bin.jobattach-tmp").write_bytes(b"a user's file")
    (src / ".jobattach-staging").mkdir()
    (src / ".jobattach-staging" / "x").write_bytes(b"a user's folder")
    stats = sync(src, "s3://mirror-test/names", s3=aws_env)
    assert stats.unsupported == ["latin1-\udce9.txt"]
    sent = [
        ".jobattach-staging/x",
        "a.txt",
        "dir/.b.bin.jobattach-tmp",
        "dir/b.bin",
        "dir/sub/c.exr",
        "skip.tmp",
    ]
    assert bucket.keys("names/") == {f"names/{p}" for p in sent}

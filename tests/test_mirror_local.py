"""``sync`` between two local directories: planned by the component as the S3 direction is,
copied through temporary names with the source's exact mtimes, every write confined to the
destination."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobattach import FileAccessError, FileChangedError, ValidationError, sync
from jobattach.progress import ProgressReport


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha",
        "sub/b.exr": b"beta" * 1000,
        "sub/deep/c.bin": os.urandom(300_000),
        ".hidden": b"h",
        "caf\u00e9.txt": b"unicode",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    os.utime(root / "a.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    return files


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def test_a_first_sync_copies_everything_with_exact_mtimes_and_a_second_nothing(
    tmp_path: Path,
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    files = _tree(src)
    reports: list[ProgressReport] = []

    def record(r: ProgressReport) -> bool:
        reports.append(r)
        return True

    stats = sync(src, dst, progress_callback=record)
    assert _files(dst) == files
    for rel in files:
        assert (dst / rel).stat().st_mtime_ns == (src / rel).stat().st_mtime_ns, rel
    assert (stats.processed_files, stats.skipped_files) == (len(files), 0)
    assert reports[-1].phase == "copying"
    assert reports[-1].processed_files == len(files)
    assert not [p for p in dst.iterdir() if p.name.startswith(".jobattach")]
    again = sync(src, dst)
    assert (again.processed_files, again.skipped_files) == (0, len(files))


def test_changes_deletes_filters_dry_runs_and_hashes_as_the_s3_direction(
    tmp_path: Path,
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tree(src)
    sync(src, dst)
    (src / "a.txt").write_bytes(b"alpha, longer now")  # another size
    (dst / "extra.txt").write_bytes(b"only at the destination")
    dry = sync(src, dst, delete=True, dry_run=True)
    assert (dry.processed_files, dry.deleted_files, dry.dry_run) == (1, 1, True)
    assert (dst / "extra.txt").exists()
    assert (dst / "a.txt").read_bytes() == b"alpha"
    done = sync(src, dst, delete=True)
    assert (done.processed_files, done.deleted_files) == (1, 1)
    assert not (dst / "extra.txt").exists()
    assert (dst / "a.txt").read_bytes() == b"alpha, longer now"

    # Same size and time, other bytes: only a sync by hash sees it.
    (dst / "sub" / "b.exr").write_bytes(b"BETA" * 1000)
    st = (src / "sub" / "b.exr").stat()
    os.utime(dst / "sub" / "b.exr", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert sync(src, dst).processed_files == 0
    by_hash = sync(src, dst, by_hash=True)
    assert by_hash.processed_files == 1
    assert (dst / "sub" / "b.exr").read_bytes() == b"beta" * 1000

    only = sync(src, tmp_path / "only", include=["*.exr", "sub/deep/**"], exclude="*.bin")
    assert sorted(_files(tmp_path / "only")) == ["sub/b.exr"]
    assert only.total_files == 1


def test_a_symlink_in_the_destination_is_never_written_through(tmp_path: Path) -> None:
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    _tree(src)
    outside.mkdir()
    dst.mkdir()
    (dst / "sub").symlink_to(outside)  # a folder of the tree swapped for a link out
    (dst / "a.txt").symlink_to(outside / "victim")
    with pytest.raises((ValidationError, FileAccessError)):
        sync(src, dst)
    assert list(outside.iterdir()) == []  # nothing written outside the destination


def test_a_symlink_in_the_source_is_not_followed_out_of_it(tmp_path: Path) -> None:
    src, dst, secret = tmp_path / "src", tmp_path / "dst", tmp_path / "secret"
    _tree(src)
    secret.mkdir()
    (secret / "key").write_bytes(b"private")
    (src / "link").symlink_to(secret)
    (src / "key-link").symlink_to(secret / "key")
    sync(src, dst)
    assert b"private" not in _files(dst).values()


def test_a_file_rewritten_while_copied_is_named_and_not_left(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tree(src)

    def rewrite(r: ProgressReport) -> bool:
        if r.phase == "copying" and r.processed_files == 0:
            (src / "sub" / "deep" / "c.bin").write_bytes(b"rewritten")
        return True

    with pytest.raises(FileChangedError) as caught:
        sync(src, dst, progress_callback=rewrite)
    assert caught.value.path == str(src / "sub" / "deep" / "c.bin")
    assert not (dst / "sub" / "deep" / "c.bin").exists()
    assert not [p for p in dst.iterdir() if p.name.startswith(".jobattach")]


def test_overlapping_directories_are_refused(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    for dst in (tmp_path / "src", tmp_path / "src" / "inner"):
        with pytest.raises(ValidationError, match="overlap"):
            sync(tmp_path / "src", dst)
    with pytest.raises(ValidationError, match="overlap"):
        sync(tmp_path / "src" / "sub", tmp_path / "src")


def test_cli_syncs_two_directories(tmp_path: Path) -> None:
    files = _tree(tmp_path / "src")
    cli = str(Path(sys.executable).parent / "jobattach")
    out = subprocess.run(
        [cli, "sync", str(tmp_path / "src"), str(tmp_path / "dst"), "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["processed_files"] == len(files)
    assert _files(tmp_path / "dst") == files

"""Diffs between manifests and against directories, merges, and the manifest CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import xxhash

from conftest import VECTORS, VENV_BIN
from jobattach import (
    ManifestEntry,
    create_manifest,
    decode_manifest,
    diff_directory,
    diff_manifests,
    merge_manifests,
)
from jobattach.manifest import Manifest


def _e(path: str, content: bytes, mtime: int = 1) -> ManifestEntry:
    return ManifestEntry(path, xxhash.xxh3_128_hexdigest(content), len(content), mtime)


def test_diff_of_two_manifests() -> None:
    old = Manifest.from_entries([_e("a", b"1"), _e("b", b"2"), _e("c", b"3"), _e("d", b"4")])
    new = Manifest.from_entries(
        [_e("b", b"2", mtime=9), _e("c", b"X"), _e("d", b"44"), _e("e", b"5")]
    )
    d = diff_manifests(old, new)
    assert [e.path for e in d.added] == ["e"]
    assert [e.path for e in d.deleted] == ["a"]
    assert [(o.hash, n.hash) for o, n in d.modified] == [
        (_e("c", b"3").hash, _e("c", b"X").hash),
        (_e("d", b"4").hash, _e("d", b"44").hash),
    ]
    assert d.unchanged == 1  # "b" only has a new mtime
    assert not diff_manifests(old, old)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    for name in ["keep.txt", "edit.txt", "same-size.txt", "gone.txt", "sub/x.bin"]:
        (root / name).write_text(f"content of {name}")
    return root


def test_diff_against_a_directory_quick_and_by_hash(tree: Path) -> None:
    base = create_manifest(tree, cache=False).manifest
    (tree / "edit.txt").write_text("a longer new content")
    st = (tree / "same-size.txt").stat()
    (tree / "same-size.txt").write_text("CONTENT OF same-size.txt")
    os.utime(tree / "same-size.txt", ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime restored
    (tree / "gone.txt").unlink()
    (tree / "sub" / "new.bin").write_bytes(b"new")

    quick = diff_directory(base, tree)
    assert [e.path for e in quick.added] == ["sub/new.bin"]
    assert [e.path for e in quick.deleted] == ["gone.txt"]
    assert [n.path for _, n in quick.modified] == ["edit.txt"]  # same size and mtime: unseen

    full = diff_directory(base, tree, by_hash=True)
    assert [n.path for _, n in full.modified] == ["edit.txt", "same-size.txt"]
    changed = dict((n.path, n.hash) for _, n in full.modified)
    assert changed["same-size.txt"] == xxhash.xxh3_128_hexdigest(b"CONTENT OF same-size.txt")
    assert full.unchanged == 2


def test_merge_later_manifests_win() -> None:
    a = Manifest.from_entries([_e("x", b"1"), _e("y", b"old")])
    b = Manifest.from_entries([_e("y", b"new"), _e("z", b"3")])
    merged = merge_manifests([a, b])
    assert [(e.path, e.size) for e in merged.entries] == [("x", 1), ("y", 3), ("z", 1)]
    assert merged.entries[1].hash == _e("y", b"new").hash
    assert merge_manifests([b, a]).entries[1].hash == _e("y", b"old").hash


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(VENV_BIN / "jobattach"), *args], capture_output=True, check=False)


def test_cli_snapshot_writes_the_official_bytes(tmp_path: Path) -> None:
    tree = tmp_path / "unicode"
    subprocess.run(
        [sys.executable, str(VECTORS / "unicode" / "gen_tree.py"), str(tree)], check=True
    )
    out = _cli("manifest", "snapshot", str(tree))
    assert out.returncode == 0, out.stderr
    assert out.stdout == (VECTORS / "unicode" / "manifest.json").read_bytes()
    assert b"14 files" in out.stderr
    target = tmp_path / "m.json"
    assert (
        _cli("manifest", "snapshot", str(tree), "-o", str(target), "--exclude", "*.txt").returncode
        == 0
    )
    assert decode_manifest(target.read_bytes()).entries == ()


def test_cli_diff_and_merge(tmp_path: Path, tree: Path) -> None:
    a = tmp_path / "a.json"
    a.write_bytes(create_manifest(tree, cache=False).manifest.encode())
    (tree / "edit.txt").write_text("changed, and longer")
    out = _cli("manifest", "diff", str(a), "--root", str(tree))
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().splitlines() == ["M edit.txt"]
    b = tmp_path / "b.json"
    b.write_bytes(create_manifest(tree, cache=False).manifest.encode())
    as_json = json.loads(_cli("manifest", "diff", str(a), str(b), "--json").stdout)
    assert [c["new"]["path"] for c in as_json["modified"]] == ["edit.txt"]
    merged = _cli("manifest", "merge", str(a), str(b))
    assert decode_manifest(merged.stdout) == decode_manifest(b.read_bytes())
    ignored = _cli("manifest", "diff", str(a), str(b), "--hash")  # means nothing without --root
    assert (ignored.returncode, ignored.stdout) == (1, b"")
    assert b"--hash compares with a directory: give it with --root DIR" in ignored.stderr


def test_cli_reports_bad_manifests_by_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"hashAlg": "xxh128"}')
    out = _cli("manifest", "diff", str(bad), str(bad))
    assert out.returncode == 1
    assert (
        out.stderr.decode().strip()
        == f"jobattach: error: {bad}: manifest.manifestVersion is missing"
    )
    missing = _cli("manifest", "diff", str(tmp_path / "nope.json"), str(bad))
    assert missing.returncode == 1
    assert b"cannot read manifest" in missing.stderr
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe{}")
    out = _cli("manifest", "diff", str(binary), str(binary))
    assert (out.returncode, out.stderr.decode().count("\n")) == (1, 1)  # a message, no traceback
    assert "not UTF-8" in out.stderr.decode()
    nowhere = tmp_path / "no" / "such" / "dir" / "m.json"
    out = _cli("manifest", "snapshot", str(tmp_path), "-o", str(nowhere))
    assert out.returncode == 1
    assert out.stderr.decode().strip() == (
        f"jobattach: error: {nowhere}: cannot write: No such file or directory"
    )


def test_cli_convert_and_snapshot_format(tmp_path: Path) -> None:
    newer = tmp_path / "newer.json"
    vector = VECTORS / "basic" / "manifest.json"
    out = _cli(
        "manifest", "convert", str(vector), "--format", "v2025-12-snapshot", "-o", str(newer)
    )
    assert out.returncode == 0, out.stderr
    assert b"relative-manifest-snapshot-beta-2025-12" in newer.read_bytes()
    back = _cli("manifest", "convert", str(newer), "--format", "v2023-03-03")
    assert back.stdout == vector.read_bytes()
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "empty").mkdir()
    snap = _cli("manifest", "snapshot", str(tmp_path / "tree"), "--format", "v2025-12-snapshot")
    assert snap.returncode == 0, snap.stderr
    assert decode_manifest(snap.stdout).dirs[0].path == "empty"
    refused = _cli("manifest", "convert", str(tmp_path / "missing.json"), "--format", "v2023-03-03")
    assert refused.returncode == 1

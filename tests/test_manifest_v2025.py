"""The newer manifest format: the reference encoder's bytes, validation, conversion, snapshots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import VECTORS
from jobattach import (
    Manifest,
    ManifestDir,
    ManifestEntry,
    ValidationError,
    create_manifest,
    diff_directory,
    diff_manifests,
    merge_manifests,
)
from jobattach.manifest import V2023, V2025_DIFF, V2025_SNAPSHOT

CHUNK = 256 << 20
SPEC = {
    V2025_SNAPSHOT: "relative-manifest-snapshot-beta-2025-12",
    V2025_DIFF: "relative-manifest-diff-beta-2025-12",
}


def reference_encode(
    files: list[ManifestEntry], dirs: list[ManifestDir], parent: str | None
) -> str:
    """The experimental branch's encoder (encode_v2025), restated as the oracle."""
    explicit = {d.path: d.deleted for d in dirs}
    names = [f.path for f in files] + [f.symlink for f in files if f.symlink] + list(explicit)
    every = dict(explicit)
    for p in names:
        parts = p.split("/")
        for i in range(1, len(parts)):
            every.setdefault("/".join(parts[:i]), False)
    ordered = sorted(every)  # Python str order: code points
    index = {d: i for i, d in enumerate(ordered)}

    def name(p: str) -> str:
        if "/" not in p:
            return p
        parent_dir, leaf = p.rsplit("/", 1)
        return f"${index[parent_dir]}/{leaf}"

    files_json = []
    for f in sorted(files, key=lambda f: f.path.encode("utf-16-be", "surrogatepass")):
        e: dict[str, object] = {"name": name(f.path)}
        if f.hash is not None:
            e["hash"] = f.hash
        elif f.chunkhashes is not None:
            e["chunkhashes"] = list(f.chunkhashes)
        elif f.symlink is not None:
            e["symlink"] = {"name": name(f.symlink)}
        if not f.deleted and f.symlink is None:
            e.update({"size": f.size, "mtime": f.mtime})
            if f.runnable:
                e["runnable"] = True
        if f.deleted:
            e["delete"] = True
        files_json.append(e)
    doc: dict[str, object] = {
        "dirs": [{"name": name(d), **({"delete": True} if every[d] else {})} for d in ordered],
        "files": files_json,
        "hashAlg": "xxh128",
        "specificationVersion": SPEC[V2025_DIFF if parent else V2025_SNAPSHOT],
        "totalSize": sum(f.size or 0 for f in files),
    }
    if parent:
        doc["parentManifestHash"] = parent
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _segment() -> st.SearchStrategy[str]:
    chars = st.characters(codec=None, exclude_characters="/\\\x00$")
    return st.text(chars, min_size=1, max_size=6).filter(
        lambda s: (
            s not in (".", "..") and not (s[1:2] == ":" and s[:1].isascii() and s[:1].isalpha())
        )
    )


_paths = st.lists(_segment(), min_size=1, max_size=3).map("/".join)
_hash = st.integers(0, 2**128 - 1).map(lambda n: f"{n:032x}")


@st.composite
def _files(draw: st.DrawFn) -> list[ManifestEntry]:
    paths = draw(st.lists(_paths, min_size=1, max_size=8, unique=True))
    # A name may not be both a file and a directory.
    paths = [p for p in paths if not any(q.startswith(p + "/") for q in paths)]
    entries = []
    for p in paths:
        kind = draw(st.sampled_from(["hash", "hash", "chunks", "symlink"]))
        mtime = draw(st.integers(-(2**40), 2**52))
        if kind == "hash":
            size = draw(st.integers(0, CHUNK))
            entries.append(ManifestEntry(p, draw(_hash), size, mtime, draw(st.booleans())))
        elif kind == "chunks":
            size = draw(st.integers(CHUNK + 1, 4 * CHUNK))
            chunks = tuple(draw(_hash) for _ in range(-(-size // CHUNK)))
            entries.append(ManifestEntry(p, None, size, mtime, chunkhashes=chunks))
        else:
            entries.append(ManifestEntry(p, None, None, None, symlink=draw(st.sampled_from(paths))))
    return entries


@settings(max_examples=150, deadline=None)
@given(_files(), st.lists(_paths, max_size=3, unique=True))
def test_encoding_is_the_reference_encoders(files: list[ManifestEntry], extra: list[str]) -> None:
    file_paths = {f.path for f in files}
    # A name is a file or a directory, not both.
    dirs = [
        ManifestDir(d)
        for d in extra
        if not any(d == p or d.startswith(p + "/") for p in file_paths)
    ]
    m = Manifest.from_entries(files, format=V2025_SNAPSHOT, dirs=dirs)
    assert m.encode().decode() == reference_encode(files, dirs, None)
    assert Manifest.decode(m.encode()) == m
    assert m.format == V2025_SNAPSHOT


def test_a_diff_manifest_carries_its_parent_and_deletions() -> None:
    parent = "ab" * 16
    files = [
        ManifestEntry("kept/new.exr", "0" * 32, 4, 10),
        ManifestEntry("old/gone.exr", None, None, None, deleted=True),
    ]
    dirs = [ManifestDir("removed", deleted=True)]
    m = Manifest.from_entries(files, format=V2025_DIFF, dirs=dirs, parent_hash=parent)
    assert m.encode().decode() == reference_encode(files, dirs, parent)
    assert (m.format, m.parent_hash) == (V2025_DIFF, parent)
    back = Manifest.decode(m.encode())
    assert back.entries[1].deleted
    assert back.dirs == (ManifestDir("kept"), ManifestDir("old"), ManifestDir("removed", True))
    with pytest.raises(ValidationError, match="snapshot manifest cannot delete"):
        Manifest.from_entries(files, format=V2025_SNAPSHOT)


@pytest.mark.parametrize("name", ["basic", "unicode", "invalid-utf8"])
def test_vectors_convert_to_the_newer_format_and_back_byte_for_byte(name: str) -> None:
    data = (VECTORS / name / "manifest.json").read_bytes()
    old = Manifest.decode(data)
    new = old.convert(V2025_SNAPSHOT)
    assert new.format == V2025_SNAPSHOT
    assert [e.path for e in new.entries] == [e.path for e in old.entries]
    assert Manifest.decode(new.encode()).convert(V2023).encode() == data


@pytest.mark.parametrize(
    ("entry", "dirs", "why"),
    [
        (ManifestEntry("a", None, None, None, symlink="b"), [], "is a symlink"),
        (ManifestEntry("a", "0" * 32, 1, 1, runnable=True), [], "is runnable"),
        (ManifestEntry("a", None, CHUNK + 1, 1, chunkhashes=("0" * 32, "1" * 32)), [], "chunk"),
        (ManifestEntry("a", "0" * 32, 1, 1), [ManifestDir("empty")], "holds no file"),
    ],
)
def test_conversion_refuses_to_lose_anything(
    entry: ManifestEntry, dirs: list[ManifestDir], why: str
) -> None:
    m = Manifest.from_entries([entry], format=V2025_SNAPSHOT, dirs=dirs)
    with pytest.raises(ValidationError, match=why):
        m.convert(V2023)


def test_operations_of_the_old_format_only_say_so(tmp_path: Path) -> None:
    newer = Manifest.from_entries([ManifestEntry("a", "0" * 32, 1, 1)], format=V2025_SNAPSHOT)
    why = "takes v2023-03-03 manifests, not v2025-12-snapshot"
    for operation in (
        lambda: diff_manifests(newer, newer),
        lambda: merge_manifests([newer]),
        lambda: diff_directory(newer, tmp_path),
    ):
        with pytest.raises(ValidationError, match=why):
            operation()


def test_large_files_do_not_convert_to_the_newer_format() -> None:
    big = Manifest.from_entries([ManifestEntry("big", "0" * 32, CHUNK + 1, 1)])
    with pytest.raises(ValidationError, match="over 256 MiB"):
        big.convert(V2025_SNAPSHOT)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (
            lambda d: d.update(specificationVersion="absolute-manifest-snapshot-beta-2025-12"),
            "relative",
        ),
        (
            lambda d: d.update(specificationVersion="relative-manifest-snapshot-beta-2099"),
            "not supported",
        ),
        (lambda d: d["files"][0].update(name="$9/x"), "not listed before"),
        (lambda d: d["files"][0].update(name="a/b/c"), "more than one '/'"),
        (lambda d: d["files"][0].pop("hash"), "exactly one of"),
        (lambda d: d["files"][0].update(delete=True), "exactly one of"),
        (lambda d: d["files"][0].update(runnable=False), "true (or be omitted)"),
        (lambda d: d["files"][0].update(extra=1), "not a known field"),
        (lambda d: d.update(totalSize=99), "totalSize"),
        (lambda d: d.update(parentManifestHash="0" * 32), "parentManifestHash"),
    ],
)
def test_malformed_newer_manifests_name_the_problem(change, why: str) -> None:  # type: ignore[no-untyped-def]
    good = Manifest.from_entries([ManifestEntry("d/f.txt", "0" * 32, 3, 1)], format=V2025_SNAPSHOT)
    doc = json.loads(good.encode())
    change(doc)
    with pytest.raises(ValidationError, match=why.replace("(", r"\(").replace(")", r"\)")):
        Manifest.decode(json.dumps(doc))


def test_snapshot_in_the_newer_format(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "bin").mkdir(parents=True)
    (root / "empty").mkdir()
    outside.mkdir()
    (root / "a.txt").write_text("hello")
    (root / "bin" / "run.sh").write_text("#!/bin/sh\n")
    (root / "bin" / "run.sh").chmod(0o755)
    (root / "bin" / "link").symlink_to("../a.txt")
    (root / "bin" / "absolute").symlink_to(root / "a.txt")  # kept, made root-relative
    (root / "through").symlink_to("a.txt/x")  # through a file: broken, and no manifest can hold it
    (root / "out").symlink_to(outside)
    with open(root / "big.bin", "wb") as f:  # sparse: two chunks, the second short
        f.write(b"start")
        f.seek(CHUNK + 99)
        f.write(b"end")
    r = create_manifest(root, format=V2025_SNAPSHOT, cache=False)
    m = r.manifest
    by_path = {e.path: e for e in m.entries}
    assert by_path["bin/run.sh"].runnable
    assert not by_path["a.txt"].runnable
    assert by_path["bin/link"].symlink == by_path["bin/absolute"].symlink == "a.txt"
    big = by_path["big.bin"]
    assert big.hash is None
    with open(root / "big.bin", "rb") as f:
        expected = (xxhash.xxh3_128_hexdigest(f.read(CHUNK)), xxhash.xxh3_128_hexdigest(f.read()))
    assert big.chunkhashes == expected
    assert [d.path for d in m.dirs] == ["bin", "empty"]
    assert r.skipped == {"symlink-outside-root": ["out"], "broken-symlink": ["through"]}
    assert Manifest.decode(m.encode()) == m
    os.chmod(root / "bin" / "run.sh", 0o644)
    assert not {
        e.path: e
        for e in create_manifest(root, format=V2025_SNAPSHOT, cache=False).manifest.entries
    }["bin/run.sh"].runnable

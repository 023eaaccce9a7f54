"""Snapshots: the golden vectors byte for byte, every kind of entry, and the hash cache."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jobattach
from conftest import VECTORS, without_read_override
from jobattach import create_manifest
from jobattach_host.hash_cache import HashCache
from jobattach_host.sqlite import CacheError


@pytest.fixture
def cache(tmp_path_factory: pytest.TempPathFactory) -> HashCache:
    # Kept outside the trees under test, so its own files are not snapshotted.
    return HashCache(tmp_path_factory.mktemp("cache") / "digests.sqlite3")


@pytest.mark.parametrize("name", ["basic", "unicode", "invalid-utf8"])
def test_snapshot_of_a_vector_tree_is_the_official_manifest(
    tmp_path: Path, cache: HashCache, name: str
) -> None:
    tree = tmp_path / name
    subprocess.run([sys.executable, str(VECTORS / name / "gen_tree.py"), str(tree)], check=True)
    expected = (VECTORS / name / "manifest.json").read_bytes()
    cold = create_manifest(tree, cache=cache)
    assert cold.manifest.encode() == expected
    assert cold.manifest.hash() == (VECTORS / name / "manifest.xxh128").read_text().strip()
    assert (cold.hashed_files, cold.cached_files) == (len(cold.manifest), 0)
    warm = create_manifest(tree, cache=cache)
    assert warm.manifest.encode() == expected
    assert (warm.hashed_files, warm.cached_files) == (0, len(cold.manifest))


def test_every_kind_of_entry_has_a_documented_outcome(tmp_path: Path, cache: HashCache) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / ".dotdir").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "plain.txt").write_text("plain")
    (root / ".dotfile").write_text("dot")
    (root / ".dotdir" / "inner").write_text("inner")
    (root / "empty-dir").mkdir()
    (root / "link-in").symlink_to("plain.txt")
    (root / "link-abs").symlink_to(root / "plain.txt")  # absolute, and inside the root
    (root / "link-abs-chain").symlink_to("link-abs")
    (root / "link-out").symlink_to(outside / "secret.txt")
    (root / "link-up").symlink_to("../outside/secret.txt")
    (root / "link-dir").symlink_to(".dotdir")
    (root / "link-broken").symlink_to("nowhere")
    os.mkfifo(root / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
        result = create_manifest(root, cache=cache)
    entries = {e.path: e for e in result.manifest.entries}
    links = ["link-abs", "link-abs-chain", "link-in"]
    assert sorted(entries) == [".dotdir/inner", ".dotfile", *links, "plain.txt"]
    for link in links:  # followed as the official code follows them, absolute ones too
        assert (entries[link].hash, entries[link].size) == (entries["plain.txt"].hash, 5)
        assert entries[link].mtime == entries["plain.txt"].mtime
    assert {why: sorted(paths) for why, paths in result.skipped.items()} == {
        "broken-symlink": ["link-broken"],
        "empty-directory": ["empty-dir"],
        "special-file": ["fifo", "sock"],
        "symlink-outside-root": ["link-out", "link-up"],
        "symlink-to-directory": ["link-dir"],
    }


def test_a_followed_symlink_keeps_its_targets_mtime_before_1970(tmp_path: Path) -> None:
    # WASI's datetime has no time before 1970: the listing carries the target's own.
    (tmp_path / "f").write_text("hi")
    os.utime(tmp_path / "f", ns=(0, -1_500_000_000))
    (tmp_path / "link").symlink_to("f")
    manifest = create_manifest(tmp_path, cache=False).manifest
    assert {e.path: e.mtime for e in manifest.entries} == {"f": -1_500_000, "link": -1_500_000}


def test_include_and_exclude_patterns(tmp_path: Path, cache: HashCache) -> None:
    for rel in ["a/x.exr", "a/y.txt", "b/z.exr", "b/cache/w.exr"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    r = create_manifest(tmp_path, include=["*.exr"], exclude=["b/cache/**"], cache=cache)
    assert [e.path for e in r.manifest.entries] == ["a/x.exr", "b/z.exr"]
    assert r.excluded == 2
    # One pattern may be a plain string (not a sequence of one-character patterns); None is none.
    one = create_manifest(tmp_path, include="*.exr", exclude="b/cache/**", cache=cache)
    assert one.manifest == r.manifest
    everything = create_manifest(tmp_path, include=None, exclude=None, cache=cache)
    assert len(everything.manifest) == 4


def test_a_rewritten_file_is_rehashed_even_with_its_mtime_restored(
    tmp_path: Path, cache: HashCache
) -> None:
    f = tmp_path / "shot.exr"
    f.write_bytes(b"version 1")
    (tmp_path / "latest.exr").symlink_to("shot.exr")  # a link's entry too: keyed by its target
    first = create_manifest(tmp_path, cache=cache)
    before = f.stat()
    f.write_bytes(b"version 2")  # same size
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert f.stat().st_mtime_ns == before.st_mtime_ns
    second = create_manifest(tmp_path, cache=cache)
    assert second.hashed_files == 2
    new = xxhash.xxh3_128_hexdigest(b"version 2")
    assert [e.hash for e in second.manifest.entries] == [new, new]
    assert new not in {e.hash for e in first.manifest.entries}


def test_cache_survives_two_processes_snapshotting_at_once(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for i in range(300):
        (tree / f"d{i % 5}").mkdir(parents=True, exist_ok=True)
        (tree / f"d{i % 5}" / f"f{i}").write_bytes(os.urandom(i))
    script = (
        "import sys, jobattach; from pathlib import Path;"
        "from jobattach_host.hash_cache import HashCache;"
        "r = jobattach.create_manifest(sys.argv[1], cache=HashCache(Path(sys.argv[2])));"
        "print(r.manifest.hash())"
    )
    db = tmp_path / "shared.sqlite3"
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tree), str(db)], stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].decode().strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs[0] == outputs[1]
    warm = create_manifest(tree, cache=HashCache(db))
    assert (warm.hashed_files, warm.manifest.hash()) == (0, outputs[0])


def _names() -> st.SearchStrategy[str]:
    # Any Unicode but '/' and NUL, plus lone surrogates standing for bytes that are not UTF-8.
    chars = st.characters(exclude_characters="/\x00", exclude_categories=["Cs"])
    raw = st.sampled_from(["\udcff", "\udc80", "\udcfe"])
    text = st.lists(st.one_of(chars, raw), min_size=1, max_size=10).map("".join)
    return text.filter(lambda s: s not in (".", ".."))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(
        st.lists(_names(), min_size=1, max_size=3).map(tuple), st.binary(max_size=64), max_size=8
    )
)
def test_snapshot_of_generated_trees_matches_the_official_rules(
    tmp_path_factory: pytest.TempPathFactory, files: dict[tuple[str, ...], bytes]
) -> None:
    root = tmp_path_factory.mktemp("tree")

    def on_disk(p: str) -> bytes:
        return os.path.join(os.fsencode(root), os.fsencode(p))

    written: dict[str, bytes] = {}
    for parts, data in files.items():
        target = on_disk("/".join(parts))
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as fh:
                fh.write(data)
        except OSError:
            continue  # a name used both as a file and as a directory, or too long
        written["/".join(parts)] = data
    written = {p: d for p, d in written.items() if os.path.isfile(on_disk(p))}
    result = create_manifest(root, cache=False)
    assert "unsupported-name" not in result.skipped  # every name, as the official encoder
    official = json.dumps(
        {
            "hashAlg": "xxh128",
            "manifestVersion": "2023-03-03",
            "paths": sorted(
                (
                    {
                        "hash": xxhash.xxh3_128_hexdigest(data),
                        "mtime": os.stat(on_disk(p)).st_mtime_ns // 1000,
                        "path": p,
                        "size": len(data),
                    }
                    for p, data in written.items()
                ),
                key=lambda e: e["path"].encode("utf-16-be", "surrogatepass"),
            ),
            "totalSize": sum(map(len, written.values())),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    assert result.manifest.encode() == official.encode()


_SNAPSHOT_REPORTING_ERRORS = """
import json, sys, jobattach
try:
    jobattach.create_manifest(sys.argv[1], cache=False)
    print(json.dumps({"ok": True}))
except jobattach.AttachmentError as e:
    print(json.dumps({"type": type(e).__name__, "kind": e.kind, "path": e.path, "text": str(e)}))
"""


def test_an_unreadable_file_fails_the_snapshot_naming_it(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("fine")
    locked = tmp_path / "locked.exr"
    locked.write_text("secret")
    locked.chmod(0)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "also.exr").write_text("secret too")
    (tmp_path / "sub" / "also.exr").chmod(0)
    out = without_read_override(_SNAPSHOT_REPORTING_ERRORS, str(tmp_path))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["type"] == "FileAccessError"
    assert report["kind"] == "permission-denied"
    # One is the error's path; the message names the other too.
    assert {report["path"], "locked.exr", "sub/also.exr"} == {"locked.exr", "sub/also.exr"}
    other = ({"locked.exr", "sub/also.exr"} - {report["path"]}).pop()
    assert f"(and 1 more cannot be read: {other})" in report["text"]


def test_an_unreadable_directory_fails_the_snapshot_naming_it(tmp_path: Path) -> None:
    (tmp_path / "closed").mkdir()
    (tmp_path / "closed" / "x.txt").write_text("x")
    (tmp_path / "closed").chmod(0)
    try:
        out = without_read_override(_SNAPSHOT_REPORTING_ERRORS, str(tmp_path))
    finally:
        (tmp_path / "closed").chmod(0o755)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["type"] == "FileAccessError"
    assert "closed" in report["text"]
    assert "Permission denied" in report["text"]


def _files(root: Path, n: int) -> None:
    for i in range(n):
        (root / f"f{i:03d}.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / f"f{i:03d}.txt").write_text(f"file {i}")


def test_a_corrupt_default_cache_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _files(tmp_path / "tree", 20)
    monkeypatch.setenv("JOBATTACH_CACHE_DIR", str(tmp_path / "caches"))
    (tmp_path / "caches").mkdir()
    (tmp_path / "caches" / "digests-v1.sqlite3").write_bytes(b"not a database" * 100)
    first = create_manifest(tmp_path / "tree")
    assert (first.hashed_files, first.cached_files) == (20, 0)
    again = create_manifest(tmp_path / "tree")
    assert (again.hashed_files, again.cached_files) == (0, 20)
    assert again.manifest == first.manifest


def test_a_default_cache_damaged_past_its_header_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _files(tmp_path / "tree", 200)
    monkeypatch.setenv("JOBATTACH_CACHE_DIR", str(tmp_path / "caches"))
    create_manifest(tmp_path / "tree")
    db = tmp_path / "caches" / "digests-v1.sqlite3"
    data = db.read_bytes()
    db.write_bytes(data[:4096] + bytes(len(data) - 4096))  # the header kept, its pages zeroed
    damaged = create_manifest(tmp_path / "tree")
    assert damaged.hashed_files == 200
    assert create_manifest(tmp_path / "tree").cached_files == 200  # a working cache again


_SNAPSHOT_WITH_WARNINGS = """
import json, sys, warnings, jobattach
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    r = jobattach.create_manifest(sys.argv[1])
print(json.dumps({"files": len(r.manifest), "warnings": [str(w.message) for w in seen]}))
"""


def test_a_damaged_default_cache_that_cannot_be_replaced_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _files(tmp_path / "tree", 3)
    caches = tmp_path / "caches"
    caches.mkdir()
    (caches / "digests-v1.sqlite3").write_bytes(b"not a database" * 100)
    caches.chmod(0o555)  # nobody may remove it: a shared directory, another user's file
    monkeypatch.setenv("JOBATTACH_CACHE_DIR", str(caches))
    try:
        out = without_read_override(_SNAPSHOT_WITH_WARNINGS, str(tmp_path / "tree"))
    finally:
        caches.chmod(0o755)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["files"] == 3
    assert any("cannot use this cache" in w for w in report["warnings"]), report


def test_a_default_cache_that_cannot_be_used_warns_and_the_snapshot_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _files(tmp_path / "tree", 5)
    (tmp_path / "not-a-dir").write_text("a file where the cache directory should be")
    monkeypatch.setenv("JOBATTACH_CACHE_DIR", str(tmp_path / "not-a-dir"))
    with pytest.warns(RuntimeWarning, match="cannot use this cache"):
        r = create_manifest(tmp_path / "tree")
    assert r.manifest == create_manifest(tmp_path / "tree", cache=False).manifest


def test_a_cache_opened_by_path_fails_loudly(tmp_path: Path) -> None:
    bad = tmp_path / "digests.sqlite3"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(CacheError, match="cannot use this cache") as raised:
        HashCache(bad)
    assert raised.value.path == str(bad)
    assert isinstance(raised.value, jobattach.FileAccessError)


_SNAPSHOT_WITH_CACHE = """
import sys, jobattach
from pathlib import Path
from jobattach_host.hash_cache import HashCache
try:
    jobattach.create_manifest(sys.argv[1], cache=HashCache(Path(sys.argv[2])), workers=4)
except jobattach.FileAccessError as e:
    print(e.path)
"""


def test_digests_hashed_before_a_failure_are_kept(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    _files(tree, 300)  # several batches on several Stores
    locked = tree / "f299.txt"  # the last in path order, the order plans hash in
    locked.chmod(0)
    cache = tmp_path / "digests.sqlite3"
    out = without_read_override(_SNAPSHOT_WITH_CACHE, str(tree), str(cache))
    assert out.stdout.strip() == "f299.txt", out.stderr
    locked.chmod(0o644)
    rerun = create_manifest(tree, cache=HashCache(cache))
    # Only the failed file's batch (a few dozen files at most) is hashed again.
    assert 0 < rerun.hashed_files <= 50, rerun.hashed_files
    assert rerun.cached_files == 300 - rerun.hashed_files


def test_absolute_links_name_the_root_as_given_or_as_resolved(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "plate.exr").write_text("pixels")
    alias = tmp_path / "alias"  # the root as a pipeline mounts it: a symlink to the real one
    alias.symlink_to(real)
    (real / "via-alias").symlink_to(alias / "plate.exr")
    (real / "via-real").symlink_to(real / "plate.exr")
    (real / "via-alias-up").symlink_to(alias / ".." / "real" / "plate.exr")  # not plain
    r = create_manifest(alias, cache=False)
    assert sorted(e.path for e in r.manifest.entries) == ["plate.exr", "via-alias", "via-real"]
    assert r.skipped == {"symlink-outside-root": ["via-alias-up"]}
    assert len({e.hash for e in r.manifest.entries}) == 1
    # Given the real path, nothing says the alias is the root: those links lead out.
    r = create_manifest(real, cache=False)
    assert sorted(e.path for e in r.manifest.entries) == ["plate.exr", "via-real"]
    assert sorted(r.skipped["symlink-outside-root"]) == ["via-alias", "via-alias-up"]


def test_progress_is_reported_and_a_snapshot_can_be_cancelled(tmp_path: Path) -> None:
    _files(tmp_path / "tree", 300)
    cache = HashCache(tmp_path / "digests.sqlite3")
    reports: list[jobattach.ProgressReport] = []

    def record(report: jobattach.ProgressReport) -> bool:
        reports.append(report)
        return report.phase != "hashing"  # stop as hashing starts

    with pytest.raises(jobattach.Cancelled, match="hashing"):
        create_manifest(tmp_path / "tree", cache=cache, progress_callback=record)
    assert [r.phase for r in reports] == ["scanning", "scanning", "hashing"]
    assert (reports[1].processed_files, reports[2].total_files, reports[2].processed_files) == (
        300,
        300,
        0,
    )
    assert create_manifest(tmp_path / "tree", cache=cache).hashed_files == 300  # none was hashed

    reports.clear()
    create_manifest(tmp_path / "tree", cache=False, progress_callback=lambda r: record(r) or True)
    last = reports[-1]
    assert (last.phase, last.processed_files, last.total_files) == ("hashing", 300, 300)


def test_an_absolute_link_is_not_followed_by_its_text_through_a_symlinked_directory(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    (root / "other" / "deep").mkdir(parents=True)
    (root / "a.txt").write_text("ROOT-A\n")
    (root / "other" / "a.txt").write_text("EVIL-B\n")
    (root / "sub").symlink_to("other/deep")
    # The system reads other/a.txt (sub is followed first); folding "sub/.." by text would
    # hash a.txt instead, and the upload would send the other file under its digest.
    (root / "abs").symlink_to(f"{root}/sub/../a.txt")
    r = create_manifest(root, cache=False)
    assert "abs" not in {e.path for e in r.manifest.entries}
    assert r.skipped["symlink-outside-root"] == ["abs"]

"""Someone who can write inside a granted root tries to make the ``host-files`` imports (the
listing, and reads of names WASI cannot carry) report or read what is outside it: a folder
swapped for a symlink leading out while the engine reads and lists through it, a FIFO where a
file is named, and a tree deep and wide enough to run a walk out of file descriptors. Through
the real component."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
import xxhash

from jobattach_host import engine
from jobattach_host.errors import AttachmentError
from jobattach_host.hashing import hash_files
from jobattach_host.host_files import list_tree
from jobattach_host.sandbox import instance_for
from jobattach_host.snapshot import plan

T = TypeVar("T")

INSIDE = b"inside\n"
OUTSIDE = b"the outside file, longer\n" * 3  # longer: a read that mixes the two shows
BAD = b"bad-\xff"  # a name that is not UTF-8: WASI cannot carry it, so read-raw reads it
BAD_TEXT = "d/bad-\udcff"
FILES = 20  # more files in d/ (and outside), each listed by every listing
PADDING = 200  # files beside d/: time between a listing finding d/ a folder and listing it

#: Swaps root/NAME (argv[2], default d) between what it is and the prepared symlink NAME.link
#: leading outside, by renames, as fast as it can, until its parent (the test) is gone or it
#: is killed.
WRITER = """
import os, sys
parent = os.getppid()
os.chdir(sys.argv[1])
name = sys.argv[2]
real, link = name + ".real", name + ".link"
print("ready", flush=True)
while os.getppid() == parent:
    for _ in range(1000):
        try:
            os.rename(name, real); os.rename(link, name)
            os.rename(name, link); os.rename(real, name)
        except FileNotFoundError:
            pass
"""


def _layout(tmp_path: Path) -> tuple[Path, Path]:
    """A root whose d/ holds ``file``, ``bad-\\xff`` and FILES more; an outside folder holding
    the same names with other content and a file only it has; the link to it prepared."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    outside.mkdir()
    for folder, content in ((root / "d", INSIDE), (outside, OUTSIDE)):
        (folder / "file").write_bytes(content)
        with open(os.path.join(os.fsencode(folder), BAD), "wb") as f:
            f.write(content)
        for i in range(FILES):
            (folder / f"file{i}").write_bytes(content)
    (outside / "only-outside").write_bytes(OUTSIDE)
    (root / "d.link").symlink_to(outside)
    for i in range(PADDING):
        (root / f"pad{i}").write_bytes(INSIDE)
    return root, outside


@contextmanager
def _swapping(root: Path, name: str = "d") -> Iterator[None]:
    """While the body runs, a writer swaps root/``name`` for a symlink out and back."""
    cmd = [sys.executable, "-c", WRITER, str(root), name]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as writer:
        assert writer.stdout is not None
        try:
            assert writer.stdout.readline() == "ready\n"
            yield
        finally:
            writer.kill()


def _outcomes(calls: int, fn: Callable[[], T]) -> list[T | AttachmentError]:
    """``fn()`` ``calls`` times: each result, or the error it raised."""
    out: list[T | AttachmentError] = []
    for _ in range(calls):
        try:
            out.append(fn())
        except AttachmentError as e:
            out.append(e)
    return out


def test_a_name_read_through_read_raw_never_reads_outside_a_swapped_folder(
    tmp_path: Path,
) -> None:
    root, outside = _layout(tmp_path)
    inside_digest = engine.hash_items(instance_for(root), [BAD_TEXT])[0]
    outside_digest = engine.hash_items(instance_for(outside), [BAD_TEXT[2:]])[0]
    assert inside_digest != outside_digest
    s = instance_for(root)
    calls = 3000
    with _swapping(root):
        results = _outcomes(calls, lambda: engine.hash_items(s, [BAD_TEXT])[0])
    counts = Counter(
        "refused"
        if isinstance(r, AttachmentError)
        else "inside"
        if r == inside_digest
        else "outside"
        if r == outside_digest
        else "mixed"
        for r in results
    )
    assert counts["outside"] == 0, f"read outside the root: {counts}"
    assert counts["mixed"] == 0, f"read partly outside the root: {counts}"
    # The race ran: many reads found the folder, and many found the symlink (refused).
    assert counts["inside"] >= calls // 50, counts
    assert counts["refused"] >= calls // 100, counts


@pytest.mark.parametrize("swapped", ["d", "d/file"])
def test_hashing_never_reads_outside_a_swapped_folder_or_file(tmp_path: Path, swapped: str) -> None:
    """The host reads for the hashing kernel: a folder on the way, or the file itself,
    swapped for a symlink leading out (absolute, or climbing out: both refused)."""
    root, _outside = _layout(tmp_path)
    if swapped == "d/file":
        (root / "d" / "file.link").symlink_to("../../outside/file")
    digests = {xxhash.xxh3_128_hexdigest(INSIDE): "inside"}
    digests[xxhash.xxh3_128_hexdigest(OUTSIDE)] = "outside"
    digests[xxhash.xxh3_128_hexdigest(OUTSIDE[: len(INSIDE)])] = "outside"
    items: list[list[str | tuple[str, int]]] = [["d/file"], [("d/file", len(INSIDE))], [BAD_TEXT]]
    turns = itertools.cycle(items)
    calls = 3000
    with _swapping(root, swapped):
        results = _outcomes(calls, lambda: hash_files(root, next(turns)))
    counts = Counter(
        "refused" if isinstance(r, AttachmentError) else digests.get(r[0], "mixed") for r in results
    )
    assert counts["outside"] == 0, f"read outside the root: {counts}"
    assert counts["mixed"] == 0, f"read partly outside the root: {counts}"
    assert counts["inside"] >= calls // 50, counts
    assert counts["refused"] >= calls // 100, counts


def _tally(counts: Counter[str], files: list[tuple[str, int]]) -> None:
    """Counts ``files`` (path, size) of d/ listed from inside, and any listed from outside:
    a name only the outside folder has, or the outside file's size."""
    for path, size in files:
        if "only-outside" in path or size != len(INSIDE):
            counts["outside"] += 1
        elif path.startswith("d/"):
            counts["inside"] += 1


def test_a_listing_never_reports_entries_of_a_swapped_folders_outside(tmp_path: Path) -> None:
    root, _ = _layout(tmp_path)
    counts: Counter[str] = Counter()
    with _swapping(root):
        for listing in _outcomes(2000, lambda: list_tree(root)):
            if isinstance(listing, AttachmentError):
                counts["refused"] += 1
            else:
                _tally(counts, [(r[0], r[2]) for r in json.loads(listing) if r[1] == "f"])
    assert counts["outside"] == 0, f"listed outside the root: {counts}"
    # The race ran both ways: whole listings made, and listings refused as the swap was seen.
    assert counts["inside"] >= FILES, f"the race barely ran: {counts}"
    assert counts["refused"] >= 10, f"the race barely ran: {counts}"


def test_a_plan_never_holds_files_of_a_swapped_folders_outside(tmp_path: Path) -> None:
    """The whole root (the component calls list-tree), and chosen paths (a job's inputs)."""
    root, _ = _layout(tmp_path)
    chosen = ["d/file", BAD_TEXT]
    counts = {"whole": Counter[str](), "chosen": Counter[str]()}
    # Until the race has run both ways, or enough rounds: how often the racer wins depends on
    # the machine's load, not on what is checked.
    enough = {"whole": (FILES, 10), "chosen": (10, 10)}
    with _swapping(root):
        for which, only in (("whole", None), ("chosen", chosen)):
            c = counts[which]
            for _ in range(10):
                inside, refused = enough[which]
                if c["inside"] >= inside and c["refused"] >= refused:
                    break
                for p in _outcomes(300, lambda only=only: plan(root, only=only)):  # type: ignore[misc]
                    if isinstance(p, AttachmentError):
                        c["refused"] += 1
                    else:
                        _tally(c, [(f.path, f.size) for f in p.files])
    assert [c["outside"] for c in counts.values()] == [0, 0], f"planned outside: {counts}"
    # The race ran both ways: whole plans made, and plans refused as the swap was seen.
    whole = counts["whole"]
    assert whole["inside"] >= FILES, f"the race barely ran: {counts}"
    assert whole["refused"] >= 10, f"the race barely ran: {counts}"
    assert counts["chosen"]["inside"] >= 10, f"the race barely ran: {counts}"


#: Lists the tree below argv[1], plans it and reads its deepest file through read-raw, with
#: no more than 64 file descriptors; prints what it found as JSON.
UNDER_64 = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
from jobattach_host import engine
from jobattach_host.host_files import list_tree
from jobattach_host.sandbox import instance_for
from jobattach_host.snapshot import plan
root, deepest = sys.argv[1], sys.argv[2]
rows = json.loads(list_tree(root))
files = plan(root).files
digest = engine.hash_items(instance_for(root), [deepest])[0]
print(json.dumps([len(rows), len(files), digest]))
"""


def test_a_tree_deep_and_wide_lists_with_64_file_descriptors(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    deep = root.joinpath(*["d"] * 150)
    deep.mkdir(parents=True)
    with open(os.path.join(os.fsencode(deep), BAD), "wb") as f:
        f.write(INSIDE)
    for i in range(3000):  # wide: folders side by side, each holding a file
        (root / f"w{i}").mkdir()
        (root / f"w{i}" / "f").write_bytes(INSIDE)
    deepest = "/".join(["d"] * 150) + "/bad-\udcff"
    cmd = [sys.executable, "-c", UNDER_64, str(root), deepest]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    rows, files, digest = json.loads(run.stdout)
    assert rows == 150 + 1 + 2 * 3000  # the deep folders and file, the wide ones and files
    assert files == 1 + 3000
    assert digest == engine.hash_items(instance_for(tmp_path), [f"tree/{deepest}"])[0]


#: Reads, through read-raw, a FIFO nobody writes to; prints the error it gets.
FIFO_READ = """
import sys
from jobattach_host import engine
from jobattach_host.errors import FileAccessError
from jobattach_host.sandbox import instance_for
try:
    engine.hash_items(instance_for(sys.argv[1]), ["fifo-\\udcff"])
except FileAccessError as e:
    print(e)
"""


def test_a_fifo_named_through_read_raw_is_refused_without_waiting(tmp_path: Path) -> None:
    os.mkfifo(os.path.join(os.fsencode(tmp_path), b"fifo-\xff"))
    cmd = [sys.executable, "-c", FIFO_READ, str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert "not a regular file" in run.stdout


def test_read_raw_follows_symlinks_on_the_way_only_inside_the_root(tmp_path: Path) -> None:
    root, _ = _layout(tmp_path)
    (root / "x").mkdir()
    (root / "via").symlink_to("d")
    (root / "back").symlink_to("x/../via")  # climbs, but stays inside
    (root / "up").symlink_to("../outside")
    (root / "loop").symlink_to("loop")
    raw_root = os.fsencode(root)
    os.symlink(b"d/" + BAD, os.path.join(raw_root, b"last-\xff"))
    os.mkdir(os.path.join(raw_root, b"dir-\xff"))
    s = instance_for(root)
    inside = engine.hash_items(s, [BAD_TEXT])[0]
    for path in ("via/bad-\udcff", "back/bad-\udcff"):
        assert engine.hash_items(s, [path]) == [inside], path
    refused = {
        "d.link/bad-\udcff": "leads out of the root",  # an absolute symlink on the way
        "up/bad-\udcff": "climbs out of the root",
        "loop/bad-\udcff": "too many symlinks",
        "last-\udcff": "symbolic links",  # a symlink as the last segment is not followed
        "dir-\udcff": "is a directory, not a regular file",
    }
    for path, why in refused.items():
        with pytest.raises(AttachmentError, match=why):
            engine.hash_items(s, [path])

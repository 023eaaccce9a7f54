"""The Node host (host/node) and the Python host give the same manifests, plans and digests.

Random trees hold what makes hosts differ: Unicode names in both normal forms, control
characters, names that are not UTF-8, backslashes and colons, symlinks of every kind, empty
directories and files, files past one read buffer, executable bits and odd mtimes. The package
is the one `./just test` built (`scripts/node-host.sh build`); these tests build nothing.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import jobattach
from conftest import ROOT
from jobattach import ManifestFormat
from jobattach_host import snapshot
from jobattach_host.engine import Item
from jobattach_host.hashing import digests

NODE_HOST = ROOT / "host" / "node"
CLI = NODE_HOST / "bin" / "jobattach-engine.mjs"
FORMATS: list[ManifestFormat] = ["v2023-03-03", "v2025-12-snapshot"]
SEEDS = [1, 2, 3, 4]
MIB = 1 << 20

# Names as bytes: NFC and NFD spellings of one word side by side, control characters, bytes
# that are not UTF-8, and characters Windows refuses.
NAMES = [
    b"plain.txt",
    "caf\u00e9.txt".encode(),
    "cafe\u0301.txt".encode(),
    "\u65e5\u672c\u8a9e".encode(),
    "\U0001f600 smile".encode(),
    b"tab\there",
    b"ctl\x01x",
    b"del\x7fx",
    b"back\\slash",
    b"co:lon",
    b"latin\xe9.txt",
    b"\xff\xfe",
    "\ufeffbom-first".encode(),  # a byte-order mark is a name's character, not a marker
    b"mixed-\xc3\xa9-\xe9",
    b" lead and trail ",
    b".dotfile",
    b"glob*?[x]",
    b"quote\"'",
    b"CON.txt",
]
# mtimes in ns: before 1970 with and without a fraction, the epoch, one ns, far ahead.
MTIMES = [
    -1_234_567_890_123_456_789,
    -1_500_000_000,
    -1,
    0,
    1,
    999_999_999,
    1_700_000_000_123_456_789,
    4_102_444_800_000_000_001,
]


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, and a package built by `./just test` (or `./just node`)."""
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not on PATH: install Node.js 20 or newer (Debian: nodejs, npm)")
    if not (NODE_HOST / "dist" / "index.js").is_file():
        pytest.fail(f"{NODE_HOST / 'dist'} is missing: build the package with ./just node")
    return found


def run(args: Sequence[str | bytes], stdin: bytes = b"") -> bytes:
    out = subprocess.run(args, input=stdin, capture_output=True, check=False)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return out.stdout


def is_utf8(name: bytes) -> bool:
    try:
        name.decode()
    except UnicodeDecodeError:
        return False
    return True


def make_tree(base: Path, seed: int) -> Path:
    """A tree of every kind of entry, its layout, sizes, modes and times chosen by ``seed``."""
    rng = random.Random(seed)
    root, outside = base / "root", base / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    broot = os.fsencode(root)
    os.mkdir(broot)
    dirs = [b""]
    for name in rng.sample(NAMES, 5):
        d = os.path.join(rng.choice(dirs), name + b".d")
        os.mkdir(os.path.join(broot, d))
        dirs.append(d)
    files: list[bytes] = []

    def write(rel: bytes, size: int) -> None:
        full = os.path.join(broot, rel)
        with open(full, "wb") as f:
            f.write(rng.randbytes(size))
        os.chmod(full, 0o755 if rng.random() < 0.3 else 0o644)
        os.utime(full, ns=(0, rng.choice(MTIMES)))
        files.append(rel)

    for name, size in zip(
        rng.sample(NAMES, len(NAMES)), [0, *(rng.randrange(5000) for _ in NAMES)]
    ):
        write(os.path.join(rng.choice(dirs), name), size)
    # Past one read buffer, at a size and over it; under names WASI carries, as the Python
    # host reads the others through host-files at about 1 MB/s (one seed has one of them).
    plain_dirs = [d for d in dirs if is_utf8(d)]
    write(os.path.join(rng.choice(plain_dirs), b"big-exact"), MIB)
    write(os.path.join(rng.choice(plain_dirs), b"big-over"), MIB + 1 + rng.randrange(300_000))
    if seed == SEEDS[0]:
        write(b"big-\xe9", MIB + 1)
    os.makedirs(os.path.join(broot, b"empty", b"inner"))
    os.mkdir(os.path.join(broot, rng.choice(dirs), b"also-empty"))
    target, folder = rng.choice(files), rng.choice(dirs[1:])
    latin = next((f for f in files if b"\xe9" in f), target)
    links: dict[bytes, Callable[[bytes], bytes]] = {
        b"in": lambda at: os.path.relpath(target, at),
        b"abs-in": lambda at: os.path.join(broot, target),
        b"abs-dir": lambda at: os.path.join(broot, folder),
        b"dir": lambda at: os.path.relpath(folder or b".", at),
        b"out": lambda at: os.path.relpath(
            os.fsencode(outside / "secret"), os.path.join(broot, at)
        ),
        b"abs-out": lambda at: os.fsencode(outside / "secret"),
        b"broken": lambda at: b"nowhere",
        b"loop": lambda at: b"link-loop",
        b"root": lambda at: os.path.relpath(b".", at),
        b"not-utf8": lambda at: os.path.relpath(latin, at),
    }
    placed = {}
    for kind, text in links.items():
        at = placed[kind] = rng.choice(dirs)
        link = os.path.join(broot, at, b"link-" + kind)
        os.symlink(text(at), link)
        if rng.random() < 0.5:
            os.utime(link, ns=(0, rng.choice(MTIMES)), follow_symlinks=False)
    # Chains: to the link inside, and to the absolute one.
    os.symlink(os.path.join(placed[b"in"], b"link-in"), os.path.join(broot, b"chain-in"))
    os.symlink(os.path.join(placed[b"abs-in"], b"link-abs-in"), os.path.join(broot, b"chain-abs"))
    os.mkfifo(os.path.join(broot, rng.choice(dirs), b"fifo"))
    return root


def regular_files(root: Path) -> list[str]:
    """Every regular file below ``root``, ``/``-separated in the contract's spelling."""
    out = []
    for top, _, names in os.walk(os.fsencode(root)):
        for name in names:
            full = os.path.join(top, name)
            if os.path.isfile(full) and not os.path.islink(full):
                out.append(os.fsdecode(os.path.relpath(full, os.fsencode(root))))
    return sorted(out)


# What each plan is asked for: both formats, and patterns with the names' odd characters.
PLANS: list[dict[str, Any]] = [
    *({"format": f} for f in FORMATS),
    {"format": "v2023-03-03", "exclude": ["*.txt", "**/link-*", "*\\*"]},
    {"format": "v2025-12-snapshot", "include": ["**/*.d/**", "co:lon"]},
]


def node_api(node: str, root: Path, items: list[Item]) -> dict[str, Any]:
    """The plans of ``PLANS``, and the digests of ``items``, from the package's API."""
    index = json.dumps((NODE_HOST / "dist" / "index.js").as_uri())
    script = (
        f"import {{ hashFiles, planSnapshot }} from {index};\n"
        'import { readFileSync } from "node:fs";\n'
        "const [root, asked] = process.argv.slice(1);\n"
        "const plans = JSON.parse(asked).map((o) => planSnapshot(root, o));\n"
        'const digests = hashFiles(root, JSON.parse(readFileSync(0, "utf8")));\n'
        "process.stdout.write(JSON.stringify({ plans, digests }));\n"
    )
    args = [node, "--input-type=module", "-e", script, str(root), json.dumps(PLANS)]
    doc: dict[str, Any] = json.loads(run(args, json.dumps(items).encode()))
    return doc


def python_plan(root: Path, asked: dict[str, Any]) -> dict[str, Any]:
    """``snapshot.plan`` in the JSON shape the component gives (nanoseconds as strings)."""
    p = snapshot.plan(root, **asked)
    return {
        "files": [
            [
                f.path,
                f.size,
                f.mtime,
                str(f.mtime_ns),
                str(f.ctime_ns),
                f.runnable,
                f.chunk,
                f.source,
            ]
            for f in p.files
        ],
        "symlinks": [list(s) for s in p.symlinks],
        "dirs": p.dirs,
        "skipped": p.skipped,
        "excluded": p.excluded,
    }


@pytest.fixture(scope="module", params=SEEDS)
def tree(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp(f"seed{request.param}"), request.param)


def test_both_hosts_write_the_same_manifest_bytes(node: str, tree: Path, tmp_path: Path) -> None:
    for format in FORMATS:
        expected = jobattach.create_manifest(tree, cache=False, format=format).manifest.encode()
        assert expected.count(b'"size"') > 10  # the tree's entries are in it
        got = run([node, str(CLI), "snapshot", str(tree), "--format", format])
        assert got == expected, format
        if format == "v2023-03-03":  # the default, and to a file
            run([node, str(CLI), "snapshot", str(tree), "-o", str(tmp_path / "out")])
            assert (tmp_path / "out").read_bytes() == expected


def test_both_hosts_plan_the_same_snapshot_and_hash_alike(node: str, tree: Path) -> None:
    paths = regular_files(tree)
    # Paths alone; the small files also with the size from a listing, and in chunks.
    sizes = [os.lstat(os.fsencode(tree / p)).st_size for p in paths]
    small = [(p, n) for p, n in zip(paths, sizes) if n < 65536]
    items: list[Item] = [*paths, *small, *((p, n, 4096) for p, n in small)]
    got = node_api(node, tree, items)
    for asked, plan in zip(PLANS, got["plans"]):
        expected = python_plan(tree, asked)
        assert expected["skipped"] or expected["excluded"]
        assert plan == expected, asked
    assert [p["excluded"] > 0 for p in got["plans"]] == [False, False, True, True]
    assert got["digests"][: len(paths)] == jobattach.hash_files(tree, paths)
    assert got["digests"][len(paths) :] == digests(tree, items[len(paths) :])


def test_the_hash_command_prints_what_hash_files_gives(node: str, tree: Path) -> None:
    # argv carries text: names that are not UTF-8 cannot be named on Node's command line.
    paths = [p for p in regular_files(tree) if not any(0xDC80 <= ord(c) <= 0xDCFF for c in p)]
    named = [str(tree / p) if i % 2 else p for i, p in enumerate(paths)]  # absolute ones too
    out = run([node, str(CLI), "hash", "--root", str(tree), *named]).decode()
    expected = jobattach.hash_files(tree, paths)
    assert out.split("\n") == [f"{d}  {p}" for d, p in zip(expected, named)] + [""]

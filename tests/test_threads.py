"""The threads jobattach leaves in a host process (README, "Inside a host application").

Each run is a fresh interpreter, so that the threads counted (``/proc/self/task``, Linux) are
that run's alone: hashing, snapshots and S3 transfers leave none; a call in which the component
reads files through WASI (a diff by hash) leaves only tokio's (wasmtime's WASI runtime), within
their bound; our own Python threads (hashing workers, S3 transfers) all end with their
operation.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from conftest import python_json
from jobattach import S3Config, create_manifest
from jobattach_host.storage import Bucket

#: Threads beyond the start that a call with WASI may leave: one tokio worker per core and
#: the blocking threads the calls made (a few per thread calling the component at once, which
#: end after 10 s idle); tokio itself stops at 512.
WASI_BOUND = (os.cpu_count() or 1) + 64

#: Runs the operations in argv[2] (a JSON list) on the tree argv[1], counting native threads
#: by name after each, beyond those running once the engine and kernel were loaded.
_SCRIPT = """
import collections, json, os, sys, tempfile, threading, time
from pathlib import Path
import jobattach

def native():
    names = collections.Counter()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names[f.read().strip()] += 1
        except FileNotFoundError:  # ended meanwhile
            pass
    return names

def settled():
    # A joined Python thread's native thread may take a moment to leave /proc: give it one.
    deadline = time.monotonic() + 5
    while (left := native() - start)["python"] and time.monotonic() < deadline:
        time.sleep(0.01)
    return dict(left)

root = Path(sys.argv[1])
files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
jobattach.hash_file(root / files[0])  # loads (or compiles) the engine's kernel
jobattach.diff_manifests(*[jobattach.Manifest.from_entries([])] * 2)  # and the engine
start, python = native(), [t.name for t in threading.enumerate()]
left = {}
for op in json.loads(sys.argv[2]):
    if op == "hash":
        assert len(jobattach.hash_files(root, files, workers=8)) == len(files)
    elif op == "snapshot":
        manifest = jobattach.create_manifest(root, cache=False, workers=8).manifest
    elif op == "diff-by-hash":
        assert not jobattach.diff_directory(manifest, root, by_hash=True).modified
    elif op == "sync":
        jobattach.sync(str(root), "s3://threads-test/p")
        jobattach.sync("s3://threads-test/p", tempfile.mkdtemp())
    left[op] = settled()
after = [t.name for t in threading.enumerate()]
print(json.dumps({"left": left, "python": [python, after]}))
"""


def _run(root: Path, *ops: str) -> dict[str, Any]:
    result: dict[str, Any] = python_json(_SCRIPT, str(root), json.dumps(ops), timeout=300)
    return result


def _tree(root: Path, count: int) -> Path:
    for i in range(count):
        d = root / f"d{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.bin").write_bytes(os.urandom(1 + i % 5000))
    return root


def test_hashing_and_snapshots_leave_no_thread_behind(tmp_path: Path) -> None:
    result = _run(_tree(tmp_path / "tree", 1000), "hash", "snapshot")
    assert result["left"] == {"hash": {}, "snapshot": {}}
    start, after = result["python"]
    assert after == start


def test_s3_transfers_leave_none_and_wasi_only_tokios(aws_env: S3Config, tmp_path: Path) -> None:
    Bucket("threads-test", aws_env).create()
    root = _tree(tmp_path / "tree", 300)
    result = _run(root, "snapshot", "sync", "diff-by-hash")
    assert result["left"]["sync"] == {}  # an upload and a download
    wasi = result["left"]["diff-by-hash"]
    assert set(wasi) <= {"tokio-rt-worker", "tokio-runtime-w"}, wasi  # the name by tokio's age
    assert sum(wasi.values()) <= WASI_BOUND, wasi
    start, after = result["python"]
    assert after == start  # the hashing workers and S3 transfer threads all ended
    assert len(Bucket("threads-test", aws_env).keys("p/")) == len(create_manifest(root).manifest)

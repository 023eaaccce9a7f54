"""Snapshot speed: jobattach against the official deadline-job-attachments, in the same run.

For each tree (made once under .bench/, read once untimed), each side makes a manifest with
an empty hash cache (cold), then again with the cache it filled (warm). The official code
runs in its own benchmark-only environment (.bench/venv-official, made by `just bench`) as
a child process; its own timer measures only the snapshot call. Both manifests must be
byte-identical, or the run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from jobattach import Manifest, ManifestEntry, create_manifest
from jobattach_host import default_engine
from jobattach_host.hash_cache import HashCache
from servers import OFFICIAL
from trees import TREES, read_untimed, tree

HERE = Path(__file__).parent


def official(root: Path, scratch: Path, cache: Path) -> tuple[float, bytes]:
    out = scratch / "out"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "HOME": str(scratch)}  # its settings and caches live in ~/.deadline
    run = subprocess.run(
        [str(OFFICIAL), str(HERE / "official_snapshot.py"), str(root), str(out), str(cache)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    doc = json.loads(run.stdout.strip().splitlines()[-1])
    return float(doc["seconds"]), Path(doc["manifest"]).read_bytes()


def ours(root: Path, cache: HashCache) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    r = create_manifest(root, cache=cache)
    return time.perf_counter() - t0, r.manifest.encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path(".bench"))
    ap.add_argument("--tree", choices=sorted(TREES), action="append")
    args = ap.parse_args()
    default_engine()
    print(f"{'tree':<10} {'':>5} {'official s':>11} {'jobattach s':>12} {'speed-up':>9}")
    for name in args.tree or list(TREES):
        t = tree(args.dir, name)
        read_untimed(t)
        with tempfile.TemporaryDirectory(prefix="jobattach-bench-") as tmp:
            scratch = Path(tmp)
            cache = HashCache(scratch / "ours.sqlite3")
            off_cold, off_bytes = official(t.root, scratch, scratch / "official-cache")
            our_cold, our_bytes = ours(t.root, cache)
            if off_bytes != our_bytes:
                raise SystemExit(f"{name}: the manifests differ from the official one")
            off_warm, _ = official(t.root, scratch, scratch / "official-cache")
            our_warm, _ = ours(t.root, cache)
        for label, off, our in (("cold", off_cold, our_cold), ("warm", off_warm, our_warm)):
            print(f"{name:<10} {label:>5} {off:>11.3f} {our:>12.3f} {off / our:>8.1f}x")
    print("speed-up = official seconds / jobattach seconds; manifests byte-identical")
    decode_100k()


def decode_100k() -> None:
    """A manifest of 100,000 entries through the boundary (DESIGN §2: one string)."""
    entries = [
        ManifestEntry(f"shot_{i // 1000:03d}/frame_{i:06d}.exr", f"{i:032x}", i, i)
        for i in range(100_000)
    ]
    data = Manifest.from_entries(entries).encode()
    t0 = time.perf_counter()
    m = Manifest.decode(data)
    decoded = time.perf_counter() - t0
    t0 = time.perf_counter()
    objects = len(m.entries)
    print(
        f"decode of a {len(data) / 1e6:.1f} MB manifest of {objects} entries: {decoded:.3f} s,"
        f" then {time.perf_counter() - t0:.3f} s to make its entries Python objects"
    )


if __name__ == "__main__":
    main()

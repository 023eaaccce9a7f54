"""Runs the official snapshot (deadline-job-attachments) once; run by snapshot_bench.py with
the benchmark-only environment's Python. Prints a JSON object: seconds, manifest path."""

from __future__ import annotations

import json
import sys
import time

from deadline.job_attachments.api.manifest import _manifest_snapshot


def main() -> None:
    root, destination, cache_dir = sys.argv[1:4]
    t0 = time.perf_counter()
    snap = _manifest_snapshot(
        root=root, destination=destination, name="bench", hash_cache_dir=cache_dir
    )
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "manifest": snap.manifest if snap else None}))


if __name__ == "__main__":
    main()

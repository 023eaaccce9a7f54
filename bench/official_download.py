"""Runs the official download (deadline-job-attachments) of a job's inputs once, as its worker
does: the input manifest fetched, then download_files_from_manifests. Run by
download_bench.py with the benchmark-only environment's Python, its endpoint and credentials
in the environment. Prints a JSON object: seconds and the CPU seconds of this process."""

from __future__ import annotations

import json
import sys
import time

from deadline.job_attachments.download import download_files_from_manifests, get_manifest_from_s3


def main() -> None:
    bucket, manifest_key, dest = sys.argv[1:4]
    t0, c0 = time.perf_counter(), time.process_time()
    manifest = get_manifest_from_s3(manifest_key, bucket)
    download_files_from_manifests(bucket, {dest: manifest}, "JA/Data")
    print(json.dumps({"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}))


if __name__ == "__main__":
    main()

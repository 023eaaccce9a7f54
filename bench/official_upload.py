"""Runs the official upload (deadline-job-attachments) once; run by upload_bench.py with the
benchmark-only environment's Python, its endpoint and credentials in the environment.
Prints a JSON object: seconds and the CPU seconds of this process."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from deadline.job_attachments.models import JobAttachmentS3Settings
from deadline.job_attachments.upload import S3AssetManager


def main() -> None:
    bucket, root, cache = sys.argv[1:4]
    inputs = [str(p) for p in Path(root).rglob("*") if p.is_file()]
    t0, c0 = time.perf_counter(), time.process_time()
    manager = S3AssetManager(
        farm_id="farm-bench",
        queue_id="queue-bench",
        job_attachment_settings=JobAttachmentS3Settings(s3BucketName=bucket, rootPrefix="JA"),
    )
    group = manager.prepare_paths_for_upload(inputs, [], [])
    _, manifests = manager.hash_assets_and_create_manifest(
        group.asset_groups, group.total_input_files, group.total_input_bytes, hash_cache_dir=cache
    )
    manager.upload_assets(manifests, s3_check_cache_dir=cache)
    print(json.dumps({"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}))


if __name__ == "__main__":
    main()

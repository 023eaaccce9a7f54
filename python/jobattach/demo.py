"""``jobattach demo``: the main job on an embedded default.

Generates a sample tree, hashes it through the engine component, and uploads each distinct
content to ``{prefix}/Data/{xxh128}.xxh128`` (the Deadline Cloud layout) on a local S3 server
that it starts and stops itself, unless given an endpoint.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from jobattach_host import hash_files
from jobattach_host.storage import Bucket, S3Config

from .local_s3 import ACCESS_KEY, SECRET_KEY, LocalS3Server
from .sample import make_tree


@dataclass(frozen=True)
class DemoResult:
    endpoint_url: str
    bucket: str
    data_prefix: str
    files: int
    bytes: int
    distinct_contents: int
    uploaded: int
    already_present: int
    hash_seconds: float
    upload_seconds: float
    objects_in_bucket: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        mib = self.bytes / (1 << 20)
        rate = mib / self.hash_seconds if self.hash_seconds else float("inf")
        return "\n".join(
            [
                f"jobattach demo against {self.endpoint_url}, bucket {self.bucket}",
                f"  sample tree  {self.files} files, {mib:.1f} MiB",
                f"  hashed       by the engine component in {self.hash_seconds:.3f} s"
                f" ({rate:.0f} MiB/s), {self.distinct_contents} distinct contents",
                f"  uploaded     {self.uploaded} new objects to s3://{self.bucket}/"
                f"{self.data_prefix} in {self.upload_seconds:.2f} s"
                f" ({self.already_present} already there)",
                f"  verified     {self.objects_in_bucket} objects under {self.data_prefix},"
                " one per distinct content",
            ]
        )


def run(
    *,
    endpoint_url: str | None = None,
    bucket: str = "jobattach-demo",
    root_prefix: str = "JobAttachments",
    files: int = 200,
    work_dir: Path | None = None,
) -> DemoResult:
    """Runs the demo; starts a local S3 server when ``endpoint_url`` is None."""
    with tempfile.TemporaryDirectory(prefix="jobattach-demo-", dir=work_dir) as tmp:
        tree = make_tree(
            Path(tmp) / "assets", count=files, min_size=0, max_size=64 << 10, duplicates=files // 10
        )
        t0 = time.perf_counter()
        digests = hash_files(tree.root, tree.files)
        hash_seconds = time.perf_counter() - t0
        if endpoint_url is not None:
            return _upload(
                tree.root,
                tree.files,
                digests,
                endpoint_url,
                bucket,
                root_prefix,
                tree.total_bytes,
                hash_seconds,
            )
        with LocalS3Server() as server:
            return _upload(
                tree.root,
                tree.files,
                digests,
                server.endpoint_url,
                bucket,
                root_prefix,
                tree.total_bytes,
                hash_seconds,
            )


def _upload(
    root: Path,
    files: list[str],
    digests: list[str],
    endpoint_url: str,
    bucket_name: str,
    root_prefix: str,
    total_bytes: int,
    hash_seconds: float,
) -> DemoResult:
    config = S3Config(
        endpoint_url=endpoint_url,
        region="us-west-2",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
    bucket = Bucket(bucket_name, config)
    bucket.create()
    prefix = f"{root_prefix}/Data/"
    first_path = {digest: rel for rel, digest in reversed(list(zip(files, digests)))}
    present = bucket.keys(prefix)
    t0 = time.perf_counter()
    uploaded = 0
    for digest, rel in first_path.items():
        key = f"{prefix}{digest}.xxh128"
        if key not in present:
            bucket.upload_file(key, root / rel)
            uploaded += 1
    upload_seconds = time.perf_counter() - t0
    return DemoResult(
        endpoint_url=endpoint_url,
        bucket=bucket_name,
        data_prefix=prefix,
        files=len(files),
        bytes=total_bytes,
        distinct_contents=len(first_path),
        uploaded=uploaded,
        already_present=len(first_path) - uploaded,
        hash_seconds=hash_seconds,
        upload_seconds=upload_seconds,
        objects_in_bucket=len(bucket.keys(prefix)),
    )

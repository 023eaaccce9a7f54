"""``jobattach demo``: the main job on an embedded default.

Generates a sample tree and submits it as a job's attachments, as a DCC plugin would, to a
local S3 server that it starts and stops itself (unless given an endpoint): content goes to
``{prefix}/Data/{xxh128}.xxh128``, the manifest under ``{prefix}/Manifests/``. Then it submits
the unchanged tree again, which must send nothing, and downloads the inputs elsewhere as a
worker would, checking every file against the manifest.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jobattach_host import hash_files
from jobattach_host.hash_cache import HashCache
from jobattach_host.s3_check_cache import S3CheckCache
from jobattach_host.s3config import S3Config
from jobattach_host.storage import Bucket
from jobattach_host.sync import layout

from .asset_references import AssetReferences
from .local_s3 import ACCESS_KEY, SECRET_KEY, LocalS3Server
from .manifest import Manifest
from .sample import make_tree
from .submit import (
    BundleSubmitResult,
    ManifestLocation,
    S3Location,
    submit_bundle_attachments,
)
from .worker import sync_inputs

FARM = ManifestLocation(
    "farm-00000000000000000000000000demo", "queue-0000000000000000000000000demo"
)


@dataclass(frozen=True)
class DemoResult:
    endpoint_url: str
    bucket: str
    #: The sample tree's files and bytes.
    total_files: int
    total_bytes: int
    distinct_contents: int
    uploaded: int
    first_seconds: float
    resubmitted_uploaded: int
    resubmit_seconds: float
    manifest_entries: int
    downloaded: int
    download_seconds: float
    #: Every downloaded file hashes to its manifest entry's hash.
    verified: bool
    attachments: dict[str, Any]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        mib = self.total_bytes / (1 << 20)
        return "\n".join(
            [
                f"jobattach demo against {self.endpoint_url}, bucket {self.bucket}",
                f"  sample tree   {self.total_files} files, {mib:.1f} MiB, {self.distinct_contents}"
                " distinct contents",
                f"  submitted     {self.uploaded} objects uploaded in {self.first_seconds:.2f} s",
                f"  resubmitted   {self.resubmitted_uploaded} uploaded in"
                f" {self.resubmit_seconds:.2f} s (the caches knew the rest)",
                f"  downloaded    {self.downloaded} files elsewhere, as a worker would, in"
                f" {self.download_seconds:.2f} s",
                f"  verified      the manifest in S3 lists {self.manifest_entries} files, and"
                + (" every download matches it" if self.verified else " a download DIFFERS"),
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
    if endpoint_url is not None:
        return _submit(endpoint_url, bucket, root_prefix, files, work_dir)
    with LocalS3Server() as server:
        return _submit(server.endpoint_url, bucket, root_prefix, files, work_dir)


def _submit(
    endpoint_url: str, bucket_name: str, root_prefix: str, files: int, work_dir: Path | None
) -> DemoResult:
    config = S3Config(
        endpoint_url=endpoint_url,
        region="us-west-2",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
    bucket = Bucket(bucket_name, config)
    bucket.create()
    with tempfile.TemporaryDirectory(prefix="jobattach-demo-", dir=work_dir) as tmp:
        tree = make_tree(
            Path(tmp) / "assets", count=files, min_size=0, max_size=64 << 10, duplicates=files // 10
        )
        # Caches of its own, so the demo shows a first submission and a warm one.
        hashes = HashCache(Path(tmp) / "caches" / "digests.sqlite3")
        checks = S3CheckCache(Path(tmp) / "caches" / "s3-check.sqlite3")
        try:

            def submit() -> BundleSubmitResult:
                return submit_bundle_attachments(
                    "us-west-2",
                    S3Location(bucket_name, root_prefix),
                    FARM,
                    AssetReferences([str(tree.root / f) for f in tree.files]),
                    s3=config,
                    hash_cache=hashes,
                    check_cache=checks,
                )

            first, again = submit(), submit()
        finally:
            hashes.close()
            checks.close()
        entry = first.attachments["manifests"][0]
        data, _ = bucket.get_bytes(
            layout(root_prefix).manifests_prefix + entry["inputManifestPath"]
        )
        manifest = Manifest.decode(data)
        where = S3Location(bucket_name, root_prefix)
        synced = sync_inputs(where, first.attachments, Path(tmp) / "worker", s3=config)
        (local,) = synced.roots.values()
        digests = hash_files(local, [e.path for e in manifest.entries])
        verified = digests == [e.hash for e in manifest.entries]
    return DemoResult(
        endpoint_url=endpoint_url,
        bucket=bucket_name,
        total_files=len(tree.files),
        total_bytes=tree.total_bytes,
        distinct_contents=len({e.hash for e in manifest.entries}),
        uploaded=first.statistics.processed_files,
        first_seconds=first.statistics.total_time,
        resubmitted_uploaded=again.statistics.processed_files,
        resubmit_seconds=again.statistics.total_time,
        manifest_entries=len(manifest),
        downloaded=synced.processed_files,
        download_seconds=synced.total_time,
        verified=verified,
        attachments=first.attachments,
    )

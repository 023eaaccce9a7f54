"""jobattach: job attachments for AWS Deadline Cloud, from one WebAssembly component.

The rules of the format (manifests, hashing, diffing, transfer plans) live in the engine
component; this package is the API around it. Files are read by the component inside its
sandbox or by boto3 by path: their bytes never pass through Python.
"""

from __future__ import annotations

from jobattach_host import (
    AttachmentError,
    Cancelled,
    FileAccessError,
    FileChangedError,
    StorageError,
    ValidationError,
    engine_version,
    hash_file,
    hash_files,
    wasmtime_version,
)
from jobattach_host.s3config import ClientOptions, S3Config
from jobattach_host.sync import PathMappingRule

from .manifest import (
    Manifest,
    ManifestDiff,
    ManifestDir,
    ManifestEntry,
    decode_manifest,
    diff_directory,
    diff_manifests,
    merge_manifests,
)
from .mirror import S3Path, SyncOptions, SyncStats, parse_path, sync, sync_with_options
from .progress import ProgressReport
from .snapshot import SnapshotResult, create_manifest
from .submit import (
    AssetReferences,
    BundleSubmitOptions,
    BundleSubmitResult,
    FileSystemLocation,
    ManifestLocation,
    S3Location,
    StorageProfile,
    SummaryStatistics,
    submit_bundle_attachments,
    submit_bundle_attachments_async,
)
from .worker import (
    DownloadResult,
    SessionAction,
    SyncOutputsResult,
    download_job_outputs,
    sync_inputs,
    sync_outputs,
)

__version__ = "0.1.0"

__all__ = [
    "AssetReferences",
    "AttachmentError",
    "BundleSubmitOptions",
    "BundleSubmitResult",
    "Cancelled",
    "ClientOptions",
    "DownloadResult",
    "FileAccessError",
    "FileChangedError",
    "FileSystemLocation",
    "Manifest",
    "ManifestDiff",
    "ManifestDir",
    "ManifestEntry",
    "ManifestLocation",
    "PathMappingRule",
    "ProgressReport",
    "S3Config",
    "S3Location",
    "S3Path",
    "SessionAction",
    "SnapshotResult",
    "StorageError",
    "StorageProfile",
    "SummaryStatistics",
    "SyncOptions",
    "SyncOutputsResult",
    "SyncStats",
    "ValidationError",
    "__version__",
    "create_manifest",
    "decode_manifest",
    "diff_directory",
    "diff_manifests",
    "download_job_outputs",
    "hash_file",
    "hash_files",
    "merge_manifests",
    "parse_path",
    "submit_bundle_attachments",
    "submit_bundle_attachments_async",
    "sync",
    "sync_inputs",
    "sync_outputs",
    "sync_with_options",
    "versions",
]


def versions() -> dict[str, str]:
    """The versions of this package, of the engine component it carries, and of wasmtime."""
    return {"jobattach": __version__, "engine": engine_version(), "wasmtime": wasmtime_version()}

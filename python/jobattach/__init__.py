"""jobattach: job attachments for AWS Deadline Cloud, from one WebAssembly component.

The rules of the format (manifests, hashing, diffing, transfer plans) live in the engine
component; this package is the API around it. Files are read by the component inside its
sandbox or by boto3 by path: their bytes never pass through Python.
"""

from __future__ import annotations

from jobattach_host import (
    AttachmentError,
    Cancelled,
    ErrorKind,
    FileAccessError,
    FileChangedError,
    Grant,
    StorageError,
    ValidationError,
    engine_version,
    hash_file,
    hash_files,
    wasmtime_version,
)
from jobattach_host.choices import (
    ConflictPolicy,
    FileSystemMode,
    LeftOutReason,
    LocationType,
    ManifestFormat,
    PathFormat,
    Phase,
    SkipReason,
)
from jobattach_host.hash_cache import HashCache
from jobattach_host.s3_check_cache import S3CheckCache
from jobattach_host.s3config import ClientOptions, S3Config
from jobattach_host.snapshot import Patterns
from jobattach_host.sqlite import CacheError
from jobattach_host.sync import PathMappingRule

from .manifest import (
    V2023,
    V2025_DIFF,
    V2025_SNAPSHOT,
    Manifest,
    ManifestDiff,
    ManifestDir,
    ManifestEntry,
    decode_manifest,
    diff_directory,
    diff_manifests,
    merge_manifests,
)
from .mirror import (
    LocalPath,
    S3Path,
    SyncOptions,
    SyncPath,
    SyncStats,
    parse_path,
    sync,
    sync_with_options,
)
from .progress import ProgressCallback, ProgressReport
from .snapshot import SnapshotResult, create_manifest
from .submit import (
    LEFT_OUT,
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
    "LEFT_OUT",
    "V2023",
    "V2025_DIFF",
    "V2025_SNAPSHOT",
    "AssetReferences",
    "AttachmentError",
    "BundleSubmitOptions",
    "BundleSubmitResult",
    "CacheError",
    "Cancelled",
    "ClientOptions",
    "ConflictPolicy",
    "DownloadResult",
    "ErrorKind",
    "FileAccessError",
    "FileChangedError",
    "FileSystemLocation",
    "FileSystemMode",
    "Grant",
    "HashCache",
    "LeftOutReason",
    "LocalPath",
    "LocationType",
    "Manifest",
    "ManifestDiff",
    "ManifestDir",
    "ManifestEntry",
    "ManifestFormat",
    "ManifestLocation",
    "PathFormat",
    "PathMappingRule",
    "Patterns",
    "Phase",
    "ProgressCallback",
    "ProgressReport",
    "S3CheckCache",
    "S3Config",
    "S3Location",
    "S3Path",
    "SessionAction",
    "SkipReason",
    "SnapshotResult",
    "StorageError",
    "StorageProfile",
    "SummaryStatistics",
    "SyncOptions",
    "SyncOutputsResult",
    "SyncPath",
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

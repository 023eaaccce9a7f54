"""jobattach: job attachments for AWS Deadline Cloud, from one WebAssembly component.

The rules of the format (manifests, hashing, diffing, transfer plans) live in the engine
component; this package is the API around it. Files are read by the component inside its
sandbox or by boto3 by path: their bytes never pass through Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobattach_host import lazy_attribute

if TYPE_CHECKING:
    from jobattach_host import (
        AttachmentError,
        Cancelled,
        DiskSpaceError,
        ErrorKind,
        FileAccessError,
        FileChangedError,
        Grant,
        StorageError,
        ValidationError,
        hash_file,
        hash_files,
    )
    from jobattach_host import (
        engine_version as engine_version,
    )
    from jobattach_host import (
        wasmtime_version as wasmtime_version,
    )
    from jobattach_host.choices import (
        ConflictPolicy,
        FileSystemMode,
        LeftOutReason,
        LocationType,
        ManifestFormat,
        ManifestKind,
        PathFormat,
        Phase,
        SkipReason,
    )
    from jobattach_host.gcs_store import GcsConfig
    from jobattach_host.hash_cache import HashCache
    from jobattach_host.s3_check_cache import S3CheckCache
    from jobattach_host.s3config import ClientOptions, CloudClientOptions, S3Config
    from jobattach_host.snapshot import Patterns
    from jobattach_host.sqlite import CacheError
    from jobattach_host.sync import PathMappingRule

    from .asset_references import AssetReferences, read_asset_references
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
    from .manifest_store import (
        ManifestDownload,
        ManifestDownloadResult,
        ManifestUpload,
        download_manifests,
        upload_manifest,
    )
    from .mirror import SyncOptions, SyncStats, sync, sync_with_options
    from .progress import ProgressCallback, ProgressReport
    from .queue_outputs import QueueOutputsResult, download_queue_outputs
    from .snapshot import SnapshotResult, create_manifest
    from .ssh import HostKeyPolicy, SshConfig
    from .submit import (
        LEFT_OUT,
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
    from .sync_paths import GcsPath, LocalPath, S3Path, SshPath, SyncPath, parse_path
    from .verify import BadObject, VerifyResult, verify_content
    from .virtual import MountError, unmount
    from .worker import (
        DownloadResult,
        JobUser,
        SessionAction,
        SyncOutputsResult,
        download_job_outputs,
        sync_inputs,
        sync_outputs,
    )

#: Each public name and the module that defines it.
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
            "AttachmentError",
            "Cancelled",
            "ErrorKind",
            "FileAccessError",
            "FileChangedError",
            "Grant",
            "DiskSpaceError",
            "StorageError",
            "ValidationError",
            "engine_version",
            "hash_file",
            "hash_files",
            "wasmtime_version",
        ),
        "jobattach_host",
    ),
    **dict.fromkeys(
        (
            "ConflictPolicy",
            "FileSystemMode",
            "LeftOutReason",
            "LocationType",
            "ManifestFormat",
            "ManifestKind",
            "PathFormat",
            "Phase",
            "SkipReason",
        ),
        "jobattach_host.choices",
    ),
    **dict.fromkeys(("GcsConfig",), "jobattach_host.gcs_store"),
    **dict.fromkeys(("HashCache",), "jobattach_host.hash_cache"),
    **dict.fromkeys(("S3CheckCache",), "jobattach_host.s3_check_cache"),
    **dict.fromkeys(("ClientOptions", "CloudClientOptions", "S3Config"), "jobattach_host.s3config"),
    **dict.fromkeys(("Patterns",), "jobattach_host.snapshot"),
    **dict.fromkeys(("CacheError",), "jobattach_host.sqlite"),
    **dict.fromkeys(("PathMappingRule",), "jobattach_host.sync"),
    **dict.fromkeys(
        (
            "V2023",
            "V2025_DIFF",
            "V2025_SNAPSHOT",
            "Manifest",
            "ManifestDiff",
            "ManifestDir",
            "ManifestEntry",
            "decode_manifest",
            "diff_directory",
            "diff_manifests",
            "merge_manifests",
        ),
        ".manifest",
    ),
    **dict.fromkeys(
        (
            "ManifestDownload",
            "ManifestDownloadResult",
            "ManifestUpload",
            "download_manifests",
            "upload_manifest",
        ),
        ".manifest_store",
    ),
    **dict.fromkeys(
        ("SyncOptions", "SyncStats", "sync", "sync_with_options"),
        ".mirror",
    ),
    **dict.fromkeys(
        ("GcsPath", "LocalPath", "S3Path", "SshPath", "SyncPath", "parse_path"), ".sync_paths"
    ),
    **dict.fromkeys(("AssetReferences", "read_asset_references"), ".asset_references"),
    **dict.fromkeys(("ProgressCallback", "ProgressReport"), ".progress"),
    **dict.fromkeys(("QueueOutputsResult", "download_queue_outputs"), ".queue_outputs"),
    **dict.fromkeys(("SnapshotResult", "create_manifest"), ".snapshot"),
    **dict.fromkeys(("HostKeyPolicy", "SshConfig"), ".ssh"),
    **dict.fromkeys(
        (
            "LEFT_OUT",
            "BundleSubmitOptions",
            "BundleSubmitResult",
            "FileSystemLocation",
            "ManifestLocation",
            "S3Location",
            "StorageProfile",
            "SummaryStatistics",
            "submit_bundle_attachments",
            "submit_bundle_attachments_async",
        ),
        ".submit",
    ),
    **dict.fromkeys(
        (
            "DownloadResult",
            "JobUser",
            "SessionAction",
            "SyncOutputsResult",
            "download_job_outputs",
            "sync_inputs",
            "sync_outputs",
        ),
        ".worker",
    ),
    **dict.fromkeys(("BadObject", "VerifyResult", "verify_content"), ".verify"),
    **dict.fromkeys(("MountError", "unmount"), ".virtual"),
}

__version__ = "0.1.0"

__all__ = [
    "LEFT_OUT",
    "V2023",
    "V2025_DIFF",
    "V2025_SNAPSHOT",
    "AssetReferences",
    "AttachmentError",
    "BadObject",
    "BundleSubmitOptions",
    "BundleSubmitResult",
    "CacheError",
    "Cancelled",
    "ClientOptions",
    "CloudClientOptions",
    "ConflictPolicy",
    "DiskSpaceError",
    "DownloadResult",
    "ErrorKind",
    "FileAccessError",
    "FileChangedError",
    "FileSystemLocation",
    "FileSystemMode",
    "GcsConfig",
    "GcsPath",
    "Grant",
    "HashCache",
    "HostKeyPolicy",
    "JobUser",
    "LeftOutReason",
    "LocalPath",
    "LocationType",
    "Manifest",
    "ManifestDiff",
    "ManifestDir",
    "ManifestDownload",
    "ManifestDownloadResult",
    "ManifestEntry",
    "ManifestFormat",
    "ManifestKind",
    "ManifestLocation",
    "ManifestUpload",
    "MountError",
    "PathFormat",
    "PathMappingRule",
    "Patterns",
    "Phase",
    "ProgressCallback",
    "ProgressReport",
    "QueueOutputsResult",
    "S3CheckCache",
    "S3Config",
    "S3Location",
    "S3Path",
    "SessionAction",
    "SkipReason",
    "SnapshotResult",
    "SshConfig",
    "SshPath",
    "StorageError",
    "StorageProfile",
    "SummaryStatistics",
    "SyncOptions",
    "SyncOutputsResult",
    "SyncPath",
    "SyncStats",
    "ValidationError",
    "VerifyResult",
    "__version__",
    "create_manifest",
    "decode_manifest",
    "diff_directory",
    "diff_manifests",
    "download_job_outputs",
    "download_manifests",
    "download_queue_outputs",
    "hash_file",
    "hash_files",
    "merge_manifests",
    "parse_path",
    "read_asset_references",
    "submit_bundle_attachments",
    "submit_bundle_attachments_async",
    "sync",
    "sync_inputs",
    "sync_outputs",
    "sync_with_options",
    "unmount",
    "upload_manifest",
    "verify_content",
    "versions",
]


def versions() -> dict[str, str]:
    """The versions of this package, of the engine component it carries, and of wasmtime."""
    from jobattach_host import engine_version, wasmtime_version

    return {"jobattach": __version__, "engine": engine_version(), "wasmtime": wasmtime_version()}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""jobattach: job attachments for AWS Deadline Cloud, from one WebAssembly component.

The rules of the format (manifests, hashing, diffing, transfer plans) live in the engine
component; this package is the API around it. Files are read by the component inside its
sandbox or by boto3 by path: their bytes never pass through Python.
"""

from __future__ import annotations

from jobattach_host import (
    AttachmentError,
    FileAccessError,
    StorageError,
    ValidationError,
    engine_version,
    hash_file,
    hash_files,
    wasmtime_version,
)

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
from .snapshot import SnapshotResult, create_manifest

__version__ = "0.1.0"

__all__ = [
    "AttachmentError",
    "FileAccessError",
    "Manifest",
    "ManifestDiff",
    "ManifestDir",
    "ManifestEntry",
    "SnapshotResult",
    "StorageError",
    "ValidationError",
    "__version__",
    "create_manifest",
    "decode_manifest",
    "diff_directory",
    "diff_manifests",
    "hash_file",
    "hash_files",
    "merge_manifests",
    "versions",
]


def versions() -> dict[str, str]:
    """The versions of this package, of the engine component it carries, and of wasmtime."""
    return {"jobattach": __version__, "engine": engine_version(), "wasmtime": wasmtime_version()}

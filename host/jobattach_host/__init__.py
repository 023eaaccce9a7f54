"""The jobattach host: runs the engine component under wasmtime and grants it capabilities.

It knows nothing of manifest rules; those live in the component (``wit/``, ``component/``).
"""

from .component import WASM_PATH, Engine, default_engine, wasmtime_version
from .engine import version as engine_version
from .errors import (
    AttachmentError,
    Cancelled,
    ErrorKind,
    FileAccessError,
    FileChangedError,
    StorageError,
    ValidationError,
)
from .hashing import hash_file, hash_files
from .sandbox import Grant, Instance, instance_for

__all__ = [
    "WASM_PATH",
    "AttachmentError",
    "Cancelled",
    "Engine",
    "ErrorKind",
    "FileAccessError",
    "FileChangedError",
    "Grant",
    "Instance",
    "StorageError",
    "ValidationError",
    "default_engine",
    "engine_version",
    "hash_file",
    "hash_files",
    "instance_for",
    "wasmtime_version",
]

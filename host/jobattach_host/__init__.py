"""The jobattach host: runs the engine component under wasmtime and grants it capabilities.

It knows nothing of manifest rules; those live in the component (``wit/``, ``component/``).
Names load on first use (PEP 562), so a command imports only the modules it uses.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .component import Engine, default_engine
    from .errors import (
        AttachmentError,
        Cancelled,
        DiskSpaceError,
        ErrorKind,
        FileAccessError,
        FileChangedError,
        StorageError,
        ValidationError,
    )
    from .hashing import hash_file, hash_files
    from .installed import WASM_PATH, engine_version, wasmtime_version
    from .sandbox import Grant, Instance, instance_for

#: Each public name and the module that defines it (``module:name`` where the name differs).
_LAZY: dict[str, str] = {
    **dict.fromkeys(("Engine", "default_engine"), ".component"),
    **dict.fromkeys(("WASM_PATH", "engine_version", "wasmtime_version"), ".installed"),
    **dict.fromkeys(
        (
            "AttachmentError",
            "Cancelled",
            "ErrorKind",
            "FileAccessError",
            "FileChangedError",
            "DiskSpaceError",
            "StorageError",
            "ValidationError",
        ),
        ".errors",
    ),
    **dict.fromkeys(("hash_file", "hash_files"), ".hashing"),
    **dict.fromkeys(("Grant", "Instance", "instance_for"), ".sandbox"),
}

__all__ = [
    "WASM_PATH",
    "AttachmentError",
    "Cancelled",
    "DiskSpaceError",
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


def lazy_attribute(package: str, table: dict[str, str], name: str) -> Any:
    """PEP 562's ``__getattr__`` for a package whose public names ``table`` maps to modules:
    imports the module on first use of the name."""
    try:
        module, _, attr = table[name].partition(":")
    except KeyError:
        raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, package), attr or name)
    setattr(sys.modules[package], name, value)  # found directly from now on
    return value


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

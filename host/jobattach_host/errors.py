"""The exceptions every jobattach operation raises, and the mapping from component errors."""

from __future__ import annotations

import os
from typing import Literal, cast

#: The component's error categories (empty for an error raised by the host itself).
ErrorKind = Literal["", "invalid-input", "not-found", "permission-denied", "wrong-type", "io"]


class AttachmentError(Exception):
    """Base of every error jobattach raises on purpose.

    ``kind`` is the component's error category (``invalid-input``, ``not-found``, ...) when the
    error came from the component; ``path`` is the file concerned, when there is one.
    """

    def __init__(self, message: str, *, kind: ErrorKind = "", path: str | None = None) -> None:
        super().__init__(f"{_shown(path)}: {message}" if path else message)
        self.reason = message
        self.kind = kind
        self.path = path

    def below(self, root: str) -> AttachmentError:
        """The same error with its root-relative path spelled from ``root``."""
        path = os.path.join(root, self.path) if self.path else root
        return type(self)(self.reason, kind=self.kind, path=path)


def _shown(path: str) -> str:
    """``path`` for a message: characters that would garble a terminal or a log line (control
    characters, lone surrogates) escaped, every other one as it is."""
    if path.isprintable():
        return path
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in path)


class Cancelled(AttachmentError):
    """The caller's progress callback (or the caller, cancelling an ``await``) asked to stop."""


class ValidationError(AttachmentError):
    """Input that breaks a rule: a path escaping its root, a malformed manifest or argument."""


class FileAccessError(AttachmentError):
    """A local file or directory could not be read or written: missing, refused, wrong type."""


class FileChangedError(FileAccessError):
    """A file changed between being hashed and being uploaded: what went up may not be the
    content its digest names, so it stays in S3 only where it is exactly that content, and
    no manifest points at it."""


class DiskSpaceError(FileAccessError):
    """A download would not fit in the free space of its destination's file system; it was
    refused before anything was fetched. ``needed`` and ``free`` are the bytes."""

    def __init__(
        self,
        message: str,
        *,
        needed: int = 0,
        free: int = 0,
        kind: ErrorKind = "",
        path: str | None = None,
    ) -> None:
        super().__init__(message, kind=kind, path=path)
        self.needed = needed
        self.free = free


class StorageError(AttachmentError):
    """The object store failed or refused an operation."""


_BY_KIND: dict[str, type[AttachmentError]] = {
    "invalid-input": ValidationError,
    "not-found": FileAccessError,
    "permission-denied": FileAccessError,
    "wrong-type": FileAccessError,
    "io": FileAccessError,
}


def from_component(kind: str, message: str, path: str | None) -> AttachmentError:
    """Builds the exception for a component ``error`` record."""
    return _BY_KIND.get(kind, AttachmentError)(message, kind=cast(ErrorKind, kind), path=path)

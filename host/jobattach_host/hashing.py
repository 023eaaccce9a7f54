"""Hashing files through the component: the bytes are read inside the sandbox, never here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import AttachmentError
from .parallel import default_workers, map_batches
from .sandbox import Session, StrPath, session_for


def hash_file(path: StrPath, **session: Any) -> str:
    """xxh3-128 of a file's contents as 32 lowercase hex digits.

    Only the file's directory is granted to the component, read-only.
    """
    p = Path(path).absolute()
    s = session_for(p.parent, **session)
    try:
        return str(s.call("hashing", "hash-file", s.roots[0], p.name))
    except AttachmentError as e:
        raise e.below(str(p.parent)) from None


def hash_files(
    root: StrPath,
    paths: Sequence[str | tuple[str, int]],
    *,
    workers: int | None = None,
    **session: Any,
) -> list[str]:
    """Digests of many files below ``root``, in the order of ``paths`` (relative, ``/``-separated).

    An item may be ``(path, size)`` when the size is known from a listing: exactly that many
    bytes are hashed, without a ``stat``, and a file found shorter raises ``FileAccessError``.

    Only ``root`` is granted, read-only: a path that would leave it raises ``ValidationError``
    (or ``FileAccessError`` when the sandbox refuses it, as for a symlink leading out). The
    files are hashed in batches by ``workers`` Stores in parallel (default: a few per core).
    """

    def call(s: Session, batch: list[str | tuple[str, int]]) -> list[str]:
        digests = json.loads(s.call("hashing", "hash-files", s.roots[0], json.dumps(batch)))
        return [str(d) for d in digests]

    n = default_workers() if workers is None else workers
    return map_batches(lambda: session_for(root, **session), call, paths, n)

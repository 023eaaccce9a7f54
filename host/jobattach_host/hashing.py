"""Hashing files through the component: the bytes are read inside the sandbox, never here."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from . import engine
from .engine import Digest as Digest
from .engine import Item as Item
from .errors import AttachmentError, Cancelled
from .parallel import default_workers, map_batches
from .sandbox import Grant, Instance, StrPath, instance_for


def hash_file(path: StrPath, *, memory_limit: int | None = None) -> str:
    """xxh3-128 of a file's contents as 32 lowercase hex digits.

    Only the file's directory is granted to the component, read-only. ``memory_limit`` bounds
    the component's memory, in bytes (default: no bound but WebAssembly's own).
    """
    p = Path(path).absolute()
    s = instance_for(p.parent, memory_limit=memory_limit)
    try:
        return engine.hash_file(s, p.name)
    except AttachmentError as e:
        raise e.below(str(p.parent)) from None


def hash_files(
    root: StrPath | Grant, paths: Sequence[str | tuple[str, int]], *, workers: int | None = None
) -> list[str]:
    """Digests of many files below ``root``, in the order of ``paths`` (relative, ``/``-separated).

    An item may be ``(path, size)`` when the size is known from a listing: exactly that many
    bytes are hashed, without a ``stat``, and a file found shorter raises ``FileAccessError``.
    Only ``root`` is granted, read-only: a path that would leave it raises ``ValidationError``
    (or ``FileAccessError`` when the sandbox refuses it, as for a symlink leading out). The
    files are hashed in batches by ``workers`` Stores in parallel (default: a few per core).
    """
    return [str(d) for d in digests(root, paths, workers=workers)]


def digests(
    root: StrPath | Grant,
    items: Sequence[Item],
    *,
    workers: int | None = None,
    done: Callable[[int, list[Digest]], None] | None = None,
    cancelled: threading.Event | None = None,
) -> list[Digest]:
    """:func:`hash_files` for any :data:`Item`; ``(path, size, chunk)`` gives the list of
    digests of each ``chunk`` bytes (the newer format's ``chunkhashes``). ``done(start,
    digests)`` hears of each batch hashed (see :func:`map_batches`); once ``cancelled`` is
    set, no batch starts and ``Cancelled`` is raised."""

    def call(s: Instance, batch: list[Item]) -> list[Digest]:
        if cancelled is not None and cancelled.is_set():
            raise Cancelled("cancelled while hashing")
        return engine.hash_items(s, batch)

    n = default_workers() if workers is None else workers
    return map_batches(lambda: instance_for(root), call, items, n, done)

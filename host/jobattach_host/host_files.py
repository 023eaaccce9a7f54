"""The ``host-files`` imports: a native listing of a root, and reads of files WASI cannot name.

The component calls these during an Instance's call; they act on the roots granted to the
Instance making that call (set per thread by :func:`serving`), and on nothing else.

Names cross by the contract's one escape (``wit/engine.wit``): a byte B of a name that is not
part of valid UTF-8 is the character U+DC00+B, written ``\\udcXX`` in JSON. :func:`name_text`
and :func:`name_bytes` apply it whatever this system's locale, rather than through
``os.fsdecode``, whose encoding the locale decides.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from wasmtime import component as wc

from .errors import FileAccessError

INTERFACE = "jobattach:engine/host-files@0.1.0"

_serving = threading.local()


def name_text(name: bytes) -> str:
    """A name's bytes as the contract's text: each byte that is not part of valid UTF-8
    becomes U+DC00 + the byte (the ``surrogateescape`` error handler is exactly that rule)."""
    return name.decode("utf-8", "surrogateescape")


def name_bytes(name: str) -> bytes:
    """The bytes :func:`name_text` spelled as ``name``."""
    return name.encode("utf-8", "surrogateescape")


@contextmanager
def serving(roots: Mapping[str, Path]) -> Iterator[None]:
    """Makes ``roots`` (guest name to host directory) the ones the imports act on, on this
    thread, for the duration of one component call."""
    previous = getattr(_serving, "roots", None)
    _serving.roots = roots
    try:
        yield
    finally:
        _serving.roots = previous


def define(linker: wc.Linker) -> None:
    """Adds the imports to ``linker``."""
    with linker.root() as root, root.add_instance(INTERFACE) as iface:
        iface.add_func("list-tree", _list_tree_import)
        iface.add_func("read-raw", _read_raw_import)


def _granted(guest: str) -> Path:
    roots: Mapping[str, Path] | None = getattr(_serving, "roots", None)
    if not roots or guest not in roots:
        raise PermissionError(f"root {guest!r} was not granted")
    return roots[guest]


def _list_tree_import(_store: Any, guest: str) -> wc.Variant:
    try:
        return wc.Variant("ok", list_tree(_granted(guest)))
    except FileAccessError as e:
        return wc.Variant("err", str(e))
    except OSError as e:  # a root not granted
        return wc.Variant("err", f"cannot list {guest}: {e.strerror or e}")


def _read_raw_import(_store: Any, guest: str, path_json: str, offset: int, length: int) -> Any:
    try:
        return read_raw(_granted(guest), json.loads(path_json), offset, length)
    except (OSError, ValueError) as e:
        return f"cannot read: {e}"


_KINDS = {stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l"}


def list_tree(top: Path) -> str:
    """Every entry below ``top``, without following symlinks, as the JSON ``list-tree`` returns
    (a symlink's row ends with its target as written). A directory that cannot be read, or an
    entry that vanishes while it is listed, raises ``FileAccessError`` naming it."""
    rows: list[list[object]] = []
    pending = [b""]
    base = name_bytes(os.fspath(top))
    with _listing_errors(os.fspath(top)):
        while pending:
            rel = pending.pop()
            with os.scandir(os.path.join(base, rel)) as entries:  # bytes: names as they are
                for entry in entries:
                    raw = rel + b"/" + entry.name if rel else entry.name
                    rows.append(_row(name_text(raw), entry.stat(follow_symlinks=False), entry.path))
                    if rows[-1][1] == "d":
                        pending.append(raw)
    return _listing(rows)


def list_paths(top: Path, paths: list[str]) -> str:
    """The same listing for chosen ``/``-separated paths below ``top`` (a job's inputs); one
    that cannot be found (deleted since it was named) raises ``FileAccessError`` naming it."""
    base = name_bytes(os.fspath(top))
    full = [os.path.join(base, name_bytes(p)) for p in paths]
    with _listing_errors(os.fspath(top)):
        return _listing([_row(p, os.lstat(f), f) for p, f in zip(paths, full)])


@contextmanager
def _listing_errors(top: str) -> Iterator[None]:
    """Turns an ``OSError`` of a listing into a ``FileAccessError`` naming what failed."""
    try:
        yield
    except OSError as e:
        why = "vanished while it was listed" if e.errno == errno.ENOENT else e.strerror or str(e)
        where = name_text(e.filename) if isinstance(e.filename, bytes) else e.filename
        raise FileAccessError(f"cannot list: {why}", path=where or top) from e


def _row(path: str, st: os.stat_result, full: bytes) -> list[object]:
    kind = _KINDS.get(stat.S_IFMT(st.st_mode), "o")
    executable = bool(st.st_mode & 0o111)
    # Nanosecond times as strings of digits: over 2^53, more than some JSON readers hold.
    row = [path, kind, st.st_size, str(st.st_mtime_ns), str(st.st_ctime_ns), executable]
    if kind == "l":
        # Its text (the sandbox will not tell the component an absolute one), and its
        # target's ctime and mtime (the sandbox reports a birth time as the ctime, which a
        # rewrite keeps, and no time before 1970).
        with contextlib.suppress(OSError):
            row.append(name_text(os.readlink(full)))
            target = os.stat(full)
            row += [str(target.st_ctime_ns), str(target.st_mtime_ns)]
    return row


def _listing(rows: list[list[object]]) -> str:
    # The contract's escape for names that are not UTF-8 (wit/engine.wit): os.scandir spells
    # such a byte B as the lone surrogate U+DC00+B, which ensure_ascii writes as \udcXX.
    return json.dumps(rows, ensure_ascii=True, separators=(",", ":"))  # as engine.bulk


def read_raw(top: Path, path: str, offset: int, length: int) -> bytes:
    """Up to ``length`` bytes at ``offset`` of ``top/path``, refusing anything outside ``top``."""
    full = os.path.join(name_bytes(os.fspath(top)), name_bytes(path))
    real_top = os.path.realpath(name_bytes(os.fspath(top)))
    parent = os.path.realpath(os.path.dirname(full))
    if os.path.commonpath([real_top, parent]) != real_top:
        raise PermissionError(f"{path!r} leads out of the root")
    fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)

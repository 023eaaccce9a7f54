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
import sys
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
    except OSError as e:  # the component names the path
        return f"cannot read: {e.strerror or e}"
    except ValueError as e:
        return f"cannot read: {e}"


_KINDS = {stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l"}

# Every path below a root is walked one segment at a time, relative to an open handle of the
# folder above it, never letting the kernel follow a symlink (O_NOFOLLOW on each segment): a
# symlink met on the way is read and its text walked by the same rules, refused when it is
# absolute or climbs above the root. A writer swapping a folder for a symlink meanwhile then
# changes only what is found inside the root, never leads out of it. Without handles of
# folders (Windows) the same walk goes by full paths, checking each segment before using it,
# which such a writer can get around.
_AT = {os.open, os.stat, os.readlink} <= os.supports_dir_fd and os.scandir in os.supports_fd
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO fails at once instead of awaiting a writer
#: A folder on the way, searched and not read (O_PATH: one that may be searched but not read
#: still leads on, as in a lookup by full path).
_SEARCH = getattr(os, "O_PATH", os.O_RDONLY) | _DIRECTORY | _NOFOLLOW
_LIST = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _NONBLOCK
_READ = os.O_RDONLY | _NOFOLLOW | _NONBLOCK
_JUNCTION = 0xA0000003  # Windows' IO_REPARSE_TAG_MOUNT_POINT: a link by another name
_MAX_LINKS = 40  # symlinks followed in one path, as Linux's own lookups allow
_FS = (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())  # str names as bytes
_HELD = 32  # folders a listing keeps open: a deeper tree costs reopenings, not descriptors


class _Dir:
    """An open folder: its handle (-1 on systems without handles of folders), its full path."""

    __slots__ = ("fd", "path")

    def __init__(self, fd: int, path: bytes) -> None:
        self.fd, self.path = fd, path

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _root(top: Path, flags: int = _SEARCH & ~_NOFOLLOW) -> _Dir:
    """The root ``top``, open (a place the user named: its own symlinks are followed)."""
    path = name_bytes(os.fspath(top))
    return _Dir(os.open(path, flags) if _AT else -1, path)


@contextmanager
def _opened_root(top: Path, flags: int = _SEARCH & ~_NOFOLLOW) -> Iterator[_Dir]:
    """:func:`_root`, closed at the end."""
    root = _root(top, flags)
    try:
        yield root
    finally:
        root.close()


def _at(d: _Dir, name: bytes) -> tuple[bytes, int | None]:
    return (name, d.fd) if _AT else (os.path.join(d.path, name), None)


def _lstat(d: _Dir, name: bytes) -> os.stat_result:
    path, fd = _at(d, name)
    return os.stat(path, dir_fd=fd, follow_symlinks=False)


def _readlink(d: _Dir, name: bytes) -> bytes:
    path, fd = _at(d, name)
    return os.readlink(path, dir_fd=fd)


def _open_dir(d: _Dir, name: bytes, flags: int) -> _Dir:
    """The folder ``name`` of ``d``, never through a symlink (ELOOP or ENOTDIR for one)."""
    path = os.path.join(d.path, name)
    if _AT:
        return _Dir(os.open(name, flags, dir_fd=d.fd), path)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or getattr(st, "st_reparse_tag", None) == _JUNCTION:
        raise OSError(errno.ELOOP, "is a symlink", path)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
    return _Dir(-1, path)


def _scandir(d: _Dir) -> os._ScandirIterator[Any]:
    """The entries of the folder ``d``: their stats are relative to it. Through a handle
    names come as str, which :data:`_FS` encodes back exactly (as ``os.fsencode`` does,
    without a Python call per entry)."""
    return os.scandir(d.fd) if _AT else os.scandir(d.path)


def _segments(path: bytes) -> list[bytes]:
    return [s for s in path.split(b"/") if s]


@contextmanager
def _walked(root: _Dir, path: bytes) -> Iterator[tuple[_Dir, bytes]]:
    """:func:`_walk`, closing the folder it gives at the end."""
    here, leaf = _walk(root, path)
    try:
        yield here, leaf
    finally:
        _moved(here, root, root)


def _walk(root: _Dir, path: bytes) -> tuple[_Dir, bytes]:
    """The open folder holding the last segment of ``path`` (relative, ``/``-separated)
    below ``root``, and that segment (``.`` for the folder itself); the caller closes it
    unless it is ``root``."""
    here = root
    trail: list[bytes] = []  # the folders from the root to here, by name
    todo = _segments(path)[::-1]
    links = 0
    try:
        if path.startswith(b"/"):
            raise PermissionError(errno.EPERM, "an absolute path leads out of the root")
        while todo:
            seg = todo.pop()
            if seg == b"." and todo:
                continue
            if seg == b"..":
                if not trail:
                    raise PermissionError(errno.EPERM, "climbs out of the root")
                trail.pop()
                here = _moved(here, root, _reopened(root, trail))
                todo = todo or [b"."]
                continue
            if not todo:
                return here, seg
            found = _enter(here, seg)
            if isinstance(found, _Dir):
                here = _moved(here, root, found)
                trail.append(seg)
                continue
            # A symlink: its text is walked in its place, never by the kernel.
            links += 1
            if links > _MAX_LINKS:
                raise OSError(errno.ELOOP, "too many symlinks on the way")
            if found.startswith(b"/"):
                raise PermissionError(errno.EPERM, "a symlink on the way leads out of the root")
            todo += _segments(found)[::-1] or [b""]  # an empty text names nothing
        return here, b"."
    except BaseException:
        _moved(here, root, root)
        raise


def _moved(here: _Dir, root: _Dir, to: _Dir) -> _Dir:
    """Goes from the folder ``here`` of a walk to ``to``, closing ``here`` (never the root)."""
    if here is not root and here is not to:
        here.close()
    return to


def _enter(d: _Dir, seg: bytes) -> _Dir | bytes:
    """The folder ``seg`` of ``d``, opened to walk on, or the text of the symlink there."""
    try:
        return _open_dir(d, seg, _SEARCH)
    except OSError as e:
        if e.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        try:
            return _readlink(d, seg)
        except OSError:
            raise e from None  # not a symlink: a file, or something swapped in meanwhile


def _reopened(root: _Dir, trail: list[bytes]) -> _Dir:
    """The folder ``trail`` names below ``root``, opened again, each segment no-follow."""
    here = root
    try:
        for seg in trail:
            here = _moved(here, root, _open_dir(here, seg, _SEARCH))
    except BaseException:
        _moved(here, root, root)
        raise
    return here


class _Folders:
    """The folders of a root a listing goes through depth first, each opened by its path,
    never through a symlink. The ones along the path last opened stay open (the first
    ``_HELD - 1`` and the deepest), so each is opened once however wide the tree, and the
    handles held stay bounded however deep (a folder deeper than that is reached again by
    reopening the ones above it)."""

    def __init__(self, root: _Dir) -> None:
        self.root = root
        self.chain: list[tuple[bytes, _Dir | None]] = []

    def open(self, rel: bytes) -> _Dir:
        """The folder ``rel`` (``/``-separated, as listed; empty for the root), open."""
        segs = rel.split(b"/") if rel else []
        keep = 0
        while keep < min(len(segs), len(self.chain)) and self.chain[keep][0] == segs[keep]:
            keep += 1
        self.close(keep)
        here, start = self.root, 0
        for i in range(keep - 1, -1, -1):  # the deepest one still open on the way
            held = self.chain[i][1]
            if held is not None:
                here, start = held, i + 1
                break
        for i in range(start, len(segs)):
            try:
                d = _open_dir(here, segs[i], _LIST)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                raise OSError(e.errno, "changed while it was listed: no longer a folder") from e
            if i > _HELD - 1:  # past the first ones: only the deepest stays open
                here.close()
                self.chain[i - 1] = (segs[i - 1], None)
            if i < len(self.chain):
                self.chain[i] = (segs[i], d)
            else:
                self.chain.append((segs[i], d))
            here = d
        return here

    def close(self, keep: int = 0) -> None:
        """Closes the folders below the first ``keep`` of the chain."""
        for _, d in self.chain[keep:]:
            if d is not None:
                d.close()
        del self.chain[keep:]


def list_tree(top: Path) -> str:
    """Every entry below ``top``, without following symlinks, as the JSON ``list-tree`` returns
    (a symlink's row ends with its target as written). A directory that cannot be read, or an
    entry that vanishes or changes while it is listed, raises ``FileAccessError`` naming it."""
    rows: list[list[object]] = []
    where = b""
    try:
        with _opened_root(top, _LIST & ~_NOFOLLOW) as root:
            folders = _Folders(root)
            try:
                pending = [b""]
                while pending:
                    where = rel = pending.pop()
                    d = folders.open(rel)
                    with _scandir(d) as entries:
                        for entry in entries:
                            name = entry.name.encode(*_FS) if _AT else entry.name
                            where = raw = rel + b"/" + name if rel else name
                            st = entry.stat(follow_symlinks=False)
                            rows.append(_row(name_text(raw), st, d, name))
                            if rows[-1][1] == "d":
                                pending.append(raw)
            finally:
                folders.close()
    except OSError as e:
        raise _listing_error(e, top, where) from e
    return _listing(rows)


def list_paths(top: Path, paths: list[str]) -> str:
    """The same listing for chosen ``/``-separated paths below ``top`` (a job's inputs); one
    that cannot be found (deleted since it was named), or that leads out of ``top``, raises
    ``FileAccessError`` naming it."""
    named = [name_bytes(p) for p in paths]
    rows: list[list[object]] = [[] for _ in paths]
    where = b""
    try:
        with _opened_root(top) as root:
            here, folder = root, None  # the folder walked last, and the path naming it
            try:
                # Folder by folder, each walked once; each row in its path's place.
                for i in sorted(range(len(paths)), key=lambda i: named[i].rpartition(b"/")[0]):
                    where = named[i]
                    up, _, leaf = where.rpartition(b"/")
                    named_in = leaf not in (b"", b".", b"..")  # else a folder of its own
                    if up != folder or not named_in:
                        here = _moved(here, root, root)
                        here, leaf = _walk(root, where)
                        folder = up if named_in else None
                    rows[i] = _row(paths[i], _lstat(here, leaf), here, leaf)
            finally:
                _moved(here, root, root)
    except OSError as e:
        raise _listing_error(e, top, where) from e
    return _listing(rows)


def _listing_error(e: OSError, top: Path, where: bytes) -> FileAccessError:
    """A ``FileAccessError`` naming what a listing failed at, ``where`` below ``top``."""
    why = "vanished while it was listed" if e.errno == errno.ENOENT else e.strerror or str(e)
    path = os.path.join(os.fspath(top), name_text(where)) if where else os.fspath(top)
    return FileAccessError(f"cannot list: {why}", path=path)


def _row(path: str, st: os.stat_result, d: _Dir, name: bytes) -> list[object]:
    """The listing row, as ``path``, of the entry ``name`` of the folder ``d``, which ``st``
    says (not followed) what it is."""
    kind = _KINDS.get(stat.S_IFMT(st.st_mode), "o")
    executable = bool(st.st_mode & 0o111)
    # Nanosecond times as strings of digits: over 2^53, more than some JSON readers hold.
    row = [path, kind, st.st_size, str(st.st_mtime_ns), str(st.st_ctime_ns), executable]
    if kind == "l":
        # Its text (the sandbox will not tell the component an absolute one), and its
        # target's ctime and mtime (the sandbox reports a birth time as the ctime, which a
        # rewrite keeps, and no time before 1970): metadata only, read through the link.
        with contextlib.suppress(OSError):
            row.append(name_text(_readlink(d, name)))
            at, fd = _at(d, name)
            target = os.stat(at, dir_fd=fd)
            row += [str(target.st_ctime_ns), str(target.st_mtime_ns)]
    return row


def _listing(rows: list[list[object]]) -> str:
    # The contract's escape for names that are not UTF-8 (wit/engine.wit): name_text spells
    # such a byte B as the lone surrogate U+DC00+B, which ensure_ascii writes as \udcXX.
    return json.dumps(rows, ensure_ascii=True, separators=(",", ":"))  # as engine.bulk


def read_raw(top: Path, path: str, offset: int, length: int) -> bytes:
    """Up to ``length`` bytes at ``offset`` of the regular file ``path`` below ``top``, never
    outside ``top`` (a symlink as the last segment is not followed)."""
    with _opened_root(top) as root, _walked(root, name_bytes(path)) as (d, leaf):
        at, dir_fd = _at(d, leaf)
        fd = os.open(at, _READ, dir_fd=dir_fd)
    try:
        regular_size(fd)
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def regular_size(fd: int) -> int:
    """The size of the open file ``fd``; OSError unless it is a regular file."""
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a regular file")
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "is not a regular file")
    return st.st_size


class Opener:
    """Opens files below a root to read, never outside it: each path is walked by the rules
    above, and a symlink in its last segment is read and its text walked in its place, as
    for the folders on the way. The folder walked last stays open, so the files of a folder,
    taken in a listing's order, cost one open each."""

    def __init__(self, top: Path) -> None:
        self._root = _root(top)
        self._here = self._root
        self._folder: bytes | None = b""  # the path naming ``_here``, when it is reusable

    def open(self, path: str) -> int:
        """A read-only descriptor of the file ``path`` (relative, ``/``-separated) leads to,
        opened non-blocking (a FIFO is not awaited); the caller closes it. Raises OSError:
        ``EPERM`` for a symlink out of the root, ``ELOOP`` for too many in a row."""
        raw = name_bytes(path)
        for _ in range(_MAX_LINKS + 1):
            up, _, leaf = raw.rpartition(b"/")
            if up != self._folder or leaf in (b"", b".", b".."):
                self._here = _moved(self._here, self._root, self._root)
                self._folder = None
                self._here, leaf = _walk(self._root, raw)
                self._folder = up if leaf == raw.rpartition(b"/")[2] else None
            at, dir_fd = _at(self._here, leaf)
            try:
                return os.open(at, _READ, dir_fd=dir_fd)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.EMLINK):  # EMLINK: the BSDs' answer
                    raise
                try:
                    text = _readlink(self._here, leaf)
                except OSError:
                    raise e from None
            if text.startswith(b"/"):
                raise PermissionError(errno.EPERM, "a symlink leads out of the root")
            raw = up + b"/" + text if up else text
        raise OSError(errno.ELOOP, "too many symlinks in a row")

    def close(self) -> None:
        _moved(self._here, self._root, self._root)
        self._here = self._root
        self._root.close()

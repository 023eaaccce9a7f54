"""Writing below a destination directory without ever leaving it.

Everything a download creates, renames, times or deletes is done relative to an open handle
of a directory, one path segment at a time, never following a symlink: each folder is opened
with ``O_NOFOLLOW | O_DIRECTORY`` from the handle of its parent, created with ``mkdir`` there
first when missing. A directory swapped for a symlink while a download runs is then refused
at the next segment opened through it, and a handle already open keeps naming the directory
that was checked, so no write lands outside the destination whatever another process does
inside it.

Content arrives in a :class:`Staging` folder of the destination's root that one process owns
(a random name, mode 1700, created exclusively and locked while in use), under names only
this process chooses there; each file is timed through its handle, then renamed into place.
So no manifest entry can take an internal name, a name of 255 bytes fits (the staged name is
the digest's), two workers downloading into one destination never touch each other's files,
and a killed download leaves only its staging folder, which the next download removes once no
process holds its lock.

POSIX systems get all of the above (``os.supports_dir_fd``). Elsewhere (Windows) the same
operations go by path under the destination, refusing a segment that is a symlink or a
junction before using it: that check and the use are separate lookups, so a writer racing
inside the destination is not kept out there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .engine import internal_kinds, internal_name
from .errors import FileAccessError, ValidationError
from .sandbox import Grant
from .storage import Sink

#: The staging folder's mode: the sticky bit marks it ours, as no folder a download makes for
#: a manifest's entries has it (they are made 0777 less the umask; a umask of 077 makes 0700).
_STAGING_MODE = 0o1700

_AT = os.open in os.supports_dir_fd and os.rename in os.supports_dir_fd
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
#: Seconds after which an empty, unlocked staging folder is taken as left behind.
_EMPTY_STALE_AFTER = 3600
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


class Blocked(ValidationError):
    """Something other than a directory (a symlink, a file) stands where a folder of the
    destination goes: nothing is written through it, lest it lead outside."""


class Directory:
    """An open directory of the destination, ``rel`` below its root (``""`` for the root)."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd, self.path = fd, path

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def child(self, name: str, *, create: bool) -> Directory | None:
        """The folder ``name`` in this one, made when missing and ``create``; None when it is
        missing otherwise. Raises :class:`Blocked`, naming it, when anything else stands there."""
        path = os.path.join(self.path, name)
        if create:
            try:
                _mkdir(self, name)
            except FileExistsError:
                pass
            except OSError as e:
                raise FileAccessError(f"cannot make the folder: {e.strerror}", path=path) from e
        try:
            return Directory(_open_dir(self, name), path)
        except FileNotFoundError:
            if create:
                raise Blocked("the folder vanished as it was made", path=path) from None
            return None
        except (NotADirectoryError, OSError) as e:
            if isinstance(e, NotADirectoryError) or e.errno in (errno.ELOOP, errno.ENOTDIR):
                what = _what_stands(self, name, e)
                why = f"{what} stands where a folder goes: nothing is written through it, lest"
                why += " it lead outside the destination"
                raise Blocked(why, path=path) from None
            raise FileAccessError(f"cannot open the folder: {e.strerror}", path=path) from e


def open_root(base: str | os.PathLike[str], name: str | None = None) -> Directory:
    """The destination directory ``base`` (a place the caller chose: its own symlinks are
    followed), or its folder ``name``, which must be a real folder (made when missing)."""
    base_path = os.fspath(base)
    try:
        os.makedirs(base_path, exist_ok=True)
        top = Directory(os.open(base_path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)), base_path)
    except OSError as e:
        why = f"cannot write to the destination: {e.strerror}"
        raise FileAccessError(why, path=base_path) from e
    if name is None:
        return top
    try:
        inner = top.child(name, create=True)
    finally:
        top.close()
    assert inner is not None  # made when missing
    return inner


class Tree:
    """The folders below a root, opened segment by segment and kept open along the current
    path: entries visited in sorted order open each folder once."""

    def __init__(self, root: Directory) -> None:
        self.root = root
        self._chain: list[tuple[str, Directory]] = []

    def parent(self, rel: str, *, create: bool) -> tuple[Directory, str] | None:
        """The open folder that holds ``rel`` (``/``-separated), and its last segment; None
        when a folder on the way is missing and not ``create``."""
        *folders, leaf = rel.split("/")
        keep = 0
        while (
            keep < len(self._chain)
            and keep < len(folders)
            and self._chain[keep][0] == folders[keep]
        ):
            keep += 1
        for _, d in self._chain[keep:]:
            d.close()
        del self._chain[keep:]
        here = self._chain[-1][1] if self._chain else self.root
        for name in folders[keep:]:
            found = here.child(name, create=create)
            if found is None:
                return None
            self._chain.append((name, found))
            here = found
        return here, leaf

    def folders(self) -> list[Directory]:
        """The root and the folders open along the current path, outermost first."""
        return [self.root, *(d for _, d in self._chain)]

    def lstat(self, rel: str) -> os.stat_result | None:
        """What stands at ``rel`` (a symlink is not followed), or None when nothing does."""
        found = self.parent(rel, create=False)
        if found is None:
            return None
        folder, leaf = found
        try:
            return _lstat(folder, leaf)
        except FileNotFoundError:
            return None

    def unlink(self, rel: str) -> bool:
        """Removes the file (or symlink) at ``rel``; False when it was not there."""
        found = self.parent(rel, create=False)
        if found is None:
            return False
        folder, leaf = found
        try:
            _unlink(folder, leaf)
        except FileNotFoundError:
            return False
        return True

    def close(self) -> None:
        for _, d in self._chain:
            d.close()
        self._chain.clear()

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class GroupAccess:
    """What a download gives another user's group over what it writes, as the official worker
    does for a job's user: each file and folder set to group ``gid``, ``file_mode`` and
    ``dir_mode`` OR'd into their modes (POSIX only)."""

    gid: int
    file_mode: int = 0o020
    dir_mode: int = 0o020

    def grant(self, fd: int, mode: int, path: str) -> None:
        """Gives ``fd`` (an open file or folder, never a path: no symlink is followed) to the
        group with ``mode`` added."""
        try:
            os.fchown(fd, -1, self.gid)
            os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) | mode)
        except OSError as err:
            why = (
                f"cannot give it to group {self.gid}: {err.strerror} (only root, or a member"
                " of the group, can)"
            )
            raise FileAccessError(why, path=path) from err


class Staging:
    """A private folder in ``root`` for content on its way in (see the module's doc).

    ``avoid``: the names the download itself puts in ``root``, never taken for the folder.
    """

    def __init__(self, root: Directory, avoid: Sequence[str] = ()) -> None:
        self.root = root
        _remove_stale(root)
        taken = set(avoid)
        while True:
            name = internal_name("staging")
            if name in taken:
                continue
            try:
                _mkdir(root, name, _STAGING_MODE)
                break
            except FileExistsError:
                continue
        self.name = name
        try:
            self.dir = Directory(_open_dir(root, name), os.path.join(root.path, name))
            _lock(self.dir)
            if _AT:
                os.chmod(self.dir.fd, _STAGING_MODE)  # whatever the umask and file system
        except BaseException:
            with contextlib.suppress(OSError):
                _rmdir(root, name)
            raise
        self._made: set[str] = set()
        self._copies = 0

    def create(self, name: str) -> Sink:
        """A new file ``name`` here, and the way to (re)open it empty for writing."""
        os.close(_open_at(self.dir, name, _NEW_FILE, 0o666))  # the umask makes the final mode
        self._made.add(name)

        def sink() -> IO[bytes]:
            return os.fdopen(_open_at(self.dir, name, _rewrite_flags(), 0), "wb")

        return sink

    def size(self, name: str) -> int:
        return _lstat(self.dir, name).st_size

    def grant(self) -> Grant:
        return grant_of(self.dir)

    def place(
        self,
        name: str,
        folder: Directory,
        leaf: str,
        mtime_ns: int,
        *,
        copy: bool,
        access: GroupAccess | None = None,
    ) -> None:
        """Puts the staged ``name`` at ``leaf`` of ``folder`` with the modification time
        ``mtime_ns``, set through its handle; ``copy`` keeps ``name`` for another place;
        ``access`` is given while the file is still in the private staging folder."""
        if copy:
            name = self._copy(name)
        target = os.path.join(folder.path, leaf)
        if access is not None:
            fd = _open_at(self.dir, name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), 0)
            try:
                access.grant(fd, access.file_mode, target)
            finally:
                os.close(fd)
        try:
            kept = _set_mtime(self.dir, name, mtime_ns)
            if kept // 1000 != mtime_ns // 1000:
                why = f"the file system cannot hold its modification time ({mtime_ns} ns)"
                raise FileAccessError(why, path=target)
            try:
                _rename(self.dir, name, folder, leaf)
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
                self._place_across(name, folder, leaf)
        except IsADirectoryError:
            raise FileAccessError("a folder stands where a file goes", path=target) from None
        except FileAccessError:
            raise
        except OSError as e:
            raise FileAccessError(f"cannot write: {e.strerror}", path=target) from e
        self._made.discard(name)

    def _copy(self, name: str) -> str:
        self._copies += 1
        twin = f"{name}.{self._copies}"
        _copy_file(self.dir, name, self.dir, twin)
        self._made.add(twin)
        return twin

    def _place_across(self, name: str, folder: Directory, leaf: str) -> None:
        """``folder`` is on another file system (a mount inside the destination): copied to a
        new name there, then renamed over ``leaf``."""
        while True:
            temporary = internal_name("temporary")
            with contextlib.suppress(FileExistsError):
                _copy_file(self.dir, name, folder, temporary)
                break
        try:
            _set_mtime(folder, temporary, _lstat(self.dir, name).st_mtime_ns)
            _rename(folder, temporary, folder, leaf)
        except BaseException:
            with contextlib.suppress(OSError):
                _unlink(folder, temporary)
            raise
        _unlink(self.dir, name)

    def close(self) -> None:
        """Removes what this process staged, then the folder, when it is still the one made."""
        for name in self._made:
            with contextlib.suppress(OSError):
                _unlink(self.dir, name)
        self._made.clear()
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(self.dir.fd), _lstat(self.root, self.name)):
                _rmdir(self.root, self.name)
        self.dir.close()

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def free_space(d: Directory) -> tuple[int, int]:
    """The file system ``d`` is on (an id of it) and the bytes an unprivileged user may still
    write there."""
    if _AT:
        st, vfs = os.fstat(d.fd), os.fstatvfs(d.fd)
        return st.st_dev, vfs.f_bavail * vfs.f_frsize
    return os.stat(d.path).st_dev, shutil.disk_usage(d.path).free


def claim(folder: Directory, leaf: str) -> os.stat_result | None:
    """Takes the name ``leaf`` of ``folder`` for a file to be renamed over it, by creating it
    empty and exclusively (a kept file's copy must never replace anything); None when
    something stands there already."""
    try:
        os.close(_open_at(folder, leaf, _NEW_FILE, 0o666))
    except FileExistsError:
        return None
    return _lstat(folder, leaf)


def release(folder: Directory, leaf: str, claimed: os.stat_result) -> None:
    """Removes the empty file :func:`claim` made, when it still is that file."""
    with contextlib.suppress(OSError):
        if os.path.samestat(_lstat(folder, leaf), claimed):
            _unlink(folder, leaf)


def compare_file(folder: Directory, leaf: str, data: bytes) -> bool | None:
    """Whether the regular file ``leaf`` of ``folder`` holds exactly ``data``: None when
    nothing stands there, False for a different file or anything else (a symlink is not
    followed)."""
    try:
        fd = _open_at(folder, leaf, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), 0)
    except FileNotFoundError:
        return None
    except OSError:  # a symlink (ELOOP), or what cannot be read: not that content
        return False
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return False
        return f.read(len(data) + 1) == data


def open_file(folder: Directory, leaf: str) -> int:
    """A read-only descriptor of the file ``leaf`` of ``folder``; a symlink there is refused
    (``OSError``), never followed."""
    return _open_at(folder, leaf, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), 0)


def read_file(folder: Directory, leaf: str) -> bytes | None:
    """The bytes of the file ``leaf`` of ``folder`` (a symlink there is refused), or None
    when there is none."""
    try:
        fd = _open_at(folder, leaf, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), 0)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def replace_file(folder: Directory, leaf: str, data: bytes) -> None:
    """Makes ``data`` the file ``leaf`` of ``folder`` whole or not at all: written to a new
    internal name there and flushed to disk, renamed over ``leaf`` (whatever stood there, a
    symlink too, is replaced, never written through), the folder flushed too, so that a crash
    at any point leaves the old file or the new one."""
    target = os.path.join(folder.path, leaf)
    while True:
        temporary = internal_name("temporary")
        try:
            fd = _open_at(folder, temporary, _NEW_FILE, 0o666)
            break
        except FileExistsError:
            continue
        except OSError as e:
            raise FileAccessError(f"cannot write: {e.strerror}", path=target) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _rename(folder, temporary, folder, leaf)
        if _AT:  # the folder's handle flushes its entries (Windows has none to flush)
            os.fsync(folder.fd)
    except BaseException as e:
        with contextlib.suppress(OSError):
            _unlink(folder, temporary)
        if isinstance(e, IsADirectoryError):
            raise FileAccessError("a folder stands where a file goes", path=target) from None
        if isinstance(e, OSError):
            raise FileAccessError(f"cannot write: {e.strerror}", path=target) from e
        raise


def _remove_stale(root: Directory) -> None:
    """Removes staging folders of ``root`` that no process holds (a killed download's): only
    folders of our name and mode, owned by this user, holding files alone. A process locks its
    folder before it stages anything, so an empty one may be another's not yet locked: those
    are left for an hour."""
    if not _AT or not hasattr(os, "geteuid"):
        return
    with os.scandir(root.fd) as entries:
        folders = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    for name in staging_names(folders):
        try:
            d = Directory(_open_dir(root, name), os.path.join(root.path, name))
        except OSError:
            continue
        try:
            st = os.fstat(d.fd)
            if not is_staging(st) or not _try_lock(d):
                continue
            with os.scandir(d.fd) as entries:
                inside = list(entries)
            old = time.time() - st.st_mtime > _EMPTY_STALE_AFTER
            if (inside or old) and all(e.is_file(follow_symlinks=False) for e in inside):
                for e in inside:
                    _unlink(d, e.name)
                _rmdir(root, name)
        except OSError:
            continue  # another process's, or being removed by one: left alone
        finally:
            d.close()


def staging_names(names: Sequence[str]) -> list[str]:
    """Those of ``names`` that have a staging folder's name (the component's rule); whether
    such a folder is one is :func:`is_staging`'s question."""
    return [n for n, kind in zip(names, internal_kinds(names)) if kind == "staging"]


def is_staging(st: os.stat_result) -> bool:
    """Whether a folder of a staging folder's name (:func:`staging_names`), of this
    ``lstat``, is a staging folder of this user's (a user's folder of that name is not)."""
    mine = not hasattr(os, "geteuid") or st.st_uid == os.geteuid()
    return stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == _STAGING_MODE and mine


def _lock(d: Directory) -> None:
    """Locks a fresh staging folder, waiting while another process's :func:`_remove_stale`
    holds it to look inside (briefly: it finds it empty and leaves it)."""
    try:
        import fcntl
    except ImportError:
        return  # no flock (Windows): stale folders are not removed there
    try:
        fcntl.flock(d.fd, fcntl.LOCK_EX)
    except OSError as e:
        raise FileAccessError(f"cannot lock the staging folder: {e.strerror}", path=d.path) from e


def _try_lock(d: Directory) -> bool:
    try:
        import fcntl
    except ImportError:
        return True  # no flock (Windows): stale folders are not removed there
    try:
        fcntl.flock(d.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _set_mtime(d: Directory, name: str, mtime_ns: int) -> int:
    """Sets the times of the file ``name`` through its handle; the mtime it then has."""
    if os.utime not in os.supports_fd:
        path = _checked(d, name)
        os.utime(path, ns=(mtime_ns, mtime_ns))
        return os.lstat(path).st_mtime_ns
    fd = _open_at(d, name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), 0)
    try:
        os.utime(fd, ns=(mtime_ns, mtime_ns))
        return os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)


def grant_of(d: Directory) -> Grant:
    """``d`` as a read-only grant for the component, by its handle where the system names
    one (``/proc/self/fd``), so the component reads the very folder that was checked."""
    linux = sys.platform.startswith("linux") and d.fd >= 0
    return Grant(Path(f"/proc/self/fd/{d.fd}" if linux else d.path))


def _rewrite_flags() -> int:
    return os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)


# The primitives: relative to a handle on POSIX, by path (checked for links) elsewhere.


def _open_at(d: Directory, name: str, flags: int, mode: int) -> int:
    if _AT:
        return os.open(name, flags, mode, dir_fd=d.fd)
    return os.open(_checked(d, name), flags | getattr(os, "O_BINARY", 0), mode)


def _open_dir(d: Directory, name: str) -> int:
    if _AT:
        return os.open(name, _DIR_FLAGS, dir_fd=d.fd)
    path = _checked(d, name)
    if not os.path.isdir(path):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
    return -1  # no handles here: Directory.path is used


def _mkdir(d: Directory, name: str, mode: int = 0o777) -> None:
    if _AT:
        os.mkdir(name, mode, dir_fd=d.fd)
    else:
        os.mkdir(_checked(d, name), mode)


def _lstat(d: Directory, name: str) -> os.stat_result:
    if _AT:
        return os.stat(name, dir_fd=d.fd, follow_symlinks=False)
    return os.lstat(os.path.join(d.path, name))


def _unlink(d: Directory, name: str) -> None:
    if _AT:
        os.unlink(name, dir_fd=d.fd)
    else:
        os.unlink(_checked(d, name))


def _rmdir(d: Directory, name: str) -> None:
    if _AT:
        os.rmdir(name, dir_fd=d.fd)
    else:
        os.rmdir(_checked(d, name))


def _rename(src: Directory, name: str, dst: Directory, leaf: str) -> None:
    if _AT:
        os.rename(name, leaf, src_dir_fd=src.fd, dst_dir_fd=dst.fd)
    else:
        os.replace(_checked(src, name), _checked(dst, leaf))


def _copy_file(src: Directory, name: str, dst: Directory, twin: str) -> None:
    """Copies ``name`` of ``src`` to a new file ``twin`` of ``dst`` by the kernel where it can
    (no bytes through Python on Linux)."""
    fin = _open_at(src, name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), 0)
    try:
        fout = _open_at(dst, twin, _NEW_FILE, 0o666)
        try:
            copy_fds(fin, fout, os.fstat(fin).st_size)
        except BaseException:
            os.close(fout)
            with contextlib.suppress(OSError):
                _unlink(dst, twin)
            raise
        os.close(fout)
    finally:
        os.close(fin)


def copy_fds(fin: int, fout: int, size: int) -> None:
    """Copies `size` bytes from the start of `fin` into `fout`, in the kernel where it can."""
    copy_range = getattr(os, "copy_file_range", None)
    done = 0
    if copy_range is not None:
        with contextlib.suppress(OSError):
            while done < size:
                n = copy_range(fin, fout, size - done)
                if n == 0:
                    break
                done += n
            if done == size:
                return
    os.lseek(fin, done, os.SEEK_SET)
    os.lseek(fout, done, os.SEEK_SET)
    with open(fin, "rb", closefd=False) as r, open(fout, "wb", closefd=False) as w:
        shutil.copyfileobj(r, w, 1 << 20)  # not Linux: no kernel copy between files here


def _what_stands(d: Directory, name: str, error: OSError) -> str:
    """What the open of a folder found instead (it may have changed since)."""
    if error.errno == errno.ELOOP:
        return "a symlink"
    try:
        mode = _lstat(d, name).st_mode
    except OSError:
        mode = 0
    kinds = (
        (stat.S_ISLNK, "a symlink"),
        (stat.S_ISREG, "a file"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    )
    # Gone or unreadable since the open failed: say what the open's error allows.
    return next((what for test, what in kinds if test(mode)), "a symlink or a file")


def _checked(d: Directory, name: str) -> str:
    """``name`` below ``d`` by path, refused when ``d``'s path has become a link (no handles
    on this system)."""
    if os.path.islink(d.path) or _is_junction(d.path):
        raise Blocked(
            "a link stands where a folder goes: nothing is written through it", path=d.path
        )
    return os.path.join(d.path, name)


def _is_junction(path: str) -> bool:
    is_junction = getattr(os.path, "isjunction", None)
    return bool(is_junction(path)) if is_junction else False
